"""Fluent's Event API (fluent-api.md §5) and the product upserts the sandbox applies from events.

- `POST /api/v4.1/event/async` → 200 `{"id": "<uuid>"}`; `POST /api/v4.1/event/sync` → 200
  `{"eventId", "entityId", "eventStatus": "COMPLETE"}` (`"FAILED"` when a product event cannot be applied).
  `name`, `entityType` (strings) and `retailerId` are required, otherwise 400 `{"message": ...}`.
- `GET /api/v4.1/event` → `{start, count, hasMore, results}`, newest first; filters `name`, `category`,
  `retailerId`, `eventType`, `eventStatus`, `eventId`, `context.<entityType|entityId|entityRef|
  rootEntityType|rootEntityId|rootEntityRef>`, `from`/`to` (ISO, inclusive; without `from` only the last
  30 days of the sandbox clock), `start` (offset, default 0), `count` (default 100, `count` in the answer is
  the number of results returned). `GET /api/v4.1/event/{id}` → one item, 404 if unknown.
- Item: `{id, name, type, accountId, retailerId (string), category, context: {sourceEvents, entityType,
  entityId, entityRef, rootEntityType, rootEntityId, rootEntityRef}, eventStatus, attributes, source,
  generatedBy, generatedOn}` with `attributes` as posted.
- Batch completion is logged as `BATCH_COMPLETE` (category `BATCH`, context JOB/BATCH) like Fluent's audit.

Product upserts: an event whose name is one of `UPSERT_PRODUCT`, `CREATE_PRODUCT`, `UPDATE_PRODUCT`,
`PRODUCT_UPSERT`, `ProductUpsert`, `UpsertProduct` (any case, `_` optional) with entityType `PRODUCT`,
`PRODUCT_CATALOGUE`, `STANDARD_PRODUCT` or `VARIANT_PRODUCT` is applied to the product store, so GraphQL
`standardProducts`/`variantProducts` show it. Its `attributes` is the product record — an object, or a
list of `{name, value}` — with `ref` (else the event's `entityRef` when entityType is a product), `type`
(`STANDARD` default | `VARIANT`), `status`, `name`, `summary`, `gtin`, the standard product of a variant in
`parent_ref`/`parentRef`/`product`, `prices` (list of `{type, currency, value}`) or `price`+`currency`
(+ `special_price`/`special_currency`), tax in `tax_country`/`tax_group`/`tax_tariff`; any other key
becomes a product attribute. Catalogue: `catalogue_ref`/`catalogueRef` in the record, else the event's
`rootEntityRef` (or `entityRef` for a PRODUCT_CATALOGUE entity), else `PC:MASTER:<retailerId>`. An
unknown catalogue or a variant without an existing standard product fails the event (`FAILED`).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from fc_assets.sandbox.datetimes import DAY_MS, iso_ms, parse_iso_ms
from fc_assets.sandbox.store import FluentError, Store

PRODUCT_EVENT_NAMES = {"upsertproduct", "createproduct", "updateproduct", "productupsert"}
PRODUCT_ENTITY_TYPES = {"PRODUCT", "PRODUCT_CATALOGUE", "STANDARD_PRODUCT", "VARIANT_PRODUCT"}
CONTEXT_KEYS = ("entityType", "entityId", "entityRef", "rootEntityType", "rootEntityId", "rootEntityRef")
PRODUCT_KEYS = {
    "ref",
    "type",
    "productType",
    "status",
    "name",
    "summary",
    "gtin",
    "catalogue_ref",
    "catalogueRef",
    "parent_ref",
    "parentRef",
    "product",
    "standardProductRef",
    "prices",
    "price",
    "currency",
    "special_price",
    "special_currency",
    "tax_country",
    "tax_group",
    "tax_tariff",
    "tax",
    "attributes",
    "categories",
}


class EventError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def record_of(attributes: Any) -> dict[str, Any]:
    if isinstance(attributes, dict):
        return attributes
    if isinstance(attributes, list):
        return {a["name"]: a.get("value") for a in attributes if isinstance(a, dict) and "name" in a}
    return {}


class Events:
    def __init__(self, state: Any) -> None:
        self.state = state
        self.log: list[dict[str, Any]] = []
        self.by_id: dict[str, dict[str, Any]] = {}

    def post(self, body: Any, mode: str) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise EventError(400, "body must be a JSON object")
        for key in ("name", "entityType"):
            if not isinstance(body.get(key), str) or not body[key].strip():
                raise EventError(400, f"'{key}' is required")
        if body.get("retailerId") in (None, ""):
            raise EventError(400, "'retailerId' is required")
        status, entity_id = "COMPLETE", body.get("entityId")
        if self._is_product_upsert(body):
            try:
                node = self.apply_product(body)
                entity_id = node["id"]
            except (FluentError, KeyError, ValueError, TypeError) as exc:
                status = "FAILED"
                body = {**body, "_error": str(exc)}
        item = self._item(body, status)
        self.state.received.events.append(
            {
                **{k: v for k, v in body.items() if k != "_error"},
                "id": item["id"],
                "mode": mode,
                "eventStatus": status,
            }
        )
        if mode == "sync":
            return {"eventId": item["id"], "entityId": entity_id, "eventStatus": status}
        return {"id": item["id"]}

    def _item(self, body: dict[str, Any], status: str, category: str | None = None) -> dict[str, Any]:
        item = {
            "id": str(uuid.uuid4()),
            "name": body.get("name"),
            "type": body.get("type") or "NORMAL",
            "accountId": "SANDBOX",
            "retailerId": str(body.get("retailerId")),
            "category": category or body.get("category") or "ORDER_WORKFLOW",
            "context": {"sourceEvents": [], **{k: body.get(k) for k in CONTEXT_KEYS}},
            "eventStatus": status,
            "attributes": body.get("attributes"),
            "source": body.get("source"),
            "generatedBy": "fc-sandbox",
            "generatedOn": iso_ms(self.state.clock.now_ms()),
            "_ms": self.state.clock.now_ms(),
        }
        if "_error" in body:
            item["message"] = body["_error"]
        self.log.append(item)
        self.by_id[item["id"]] = item
        return item

    def audit_batch(self, job_id: str, batch_id: str, retailer_id: str) -> None:
        self._item(
            {
                "name": "BATCH_COMPLETE",
                "entityType": "BATCH",
                "entityId": batch_id,
                "rootEntityType": "JOB",
                "rootEntityId": job_id,
                "retailerId": retailer_id,
                "type": "ORCHESTRATION_AUDIT",
            },
            "COMPLETE",
            category="BATCH",
        )

    @staticmethod
    def public(item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if not k.startswith("_")}

    def get(self, event_id: str) -> dict[str, Any]:
        item = self.by_id.get(event_id)
        if item is None:
            raise EventError(404, f"Event {event_id} not found")
        return self.public(item)

    def search(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            start = int(params.get("start", 0))
            count = int(params.get("count", 100))
            lo = (
                parse_iso_ms(params["from"])
                if params.get("from")
                else self.state.clock.now_ms() - 30 * DAY_MS
            )
            hi = parse_iso_ms(params["to"]) if params.get("to") else None
        except ValueError as exc:
            raise EventError(400, f"bad query parameter: {exc}") from None
        if start < 0 or count < 1:
            raise EventError(400, "'start' must be >= 0 and 'count' >= 1")
        plain = {
            "name": "name",
            "category": "category",
            "retailerId": "retailerId",
            "eventType": "type",
            "eventStatus": "eventStatus",
            "eventId": "id",
        }
        hits = []
        for item in reversed(self.log):
            if item["_ms"] < lo or (hi is not None and item["_ms"] > hi):
                continue
            if any(params.get(p) is not None and str(item.get(k)) != params[p] for p, k in plain.items()):
                continue
            if any(
                params.get(f"context.{k}") is not None
                and str(item["context"].get(k)) != params[f"context.{k}"]
                for k in CONTEXT_KEYS
            ):
                continue
            hits.append(item)
        page = hits[start : start + count]
        return {
            "start": start,
            "count": len(page),
            "hasMore": start + count < len(hits),
            "results": [self.public(i) for i in page],
        }

    # ------------------------------------------------------------------------------------- products

    @staticmethod
    def _is_product_upsert(body: dict[str, Any]) -> bool:
        name = re.sub(r"[^a-z]", "", body["name"].lower())
        return name in PRODUCT_EVENT_NAMES and body["entityType"].upper() in PRODUCT_ENTITY_TYPES

    def apply_product(self, body: dict[str, Any]) -> dict[str, Any]:
        store: Store = self.state.store
        rec = record_of(body.get("attributes"))
        entity_type = body["entityType"].upper()
        ref = rec.get("ref") or (body.get("entityRef") if entity_type != "PRODUCT_CATALOGUE" else None)
        if not ref:
            raise ValueError("the product record has no 'ref'")
        catalogue = (
            rec.get("catalogue_ref")
            or rec.get("catalogueRef")
            or body.get("rootEntityRef")
            or (body.get("entityRef") if entity_type == "PRODUCT_CATALOGUE" else None)
            or f"PC:MASTER:{body['retailerId']}"
        )
        ptype = str(
            rec.get("type")
            or rec.get("productType")
            or ("VARIANT" if entity_type == "VARIANT_PRODUCT" else "STANDARD")
        ).upper()
        variant = ptype == "VARIANT"
        prices = rec.get("prices")
        if not isinstance(prices, list):
            prices = []
            for value, currency, kind in (
                ("price", "currency", "DEFAULT"),
                ("special_price", "special_currency", "SPECIAL"),
            ):
                if rec.get(value) is not None:
                    prices.append(
                        {"type": kind, "currency": rec.get(currency) or "AUD", "value": float(rec[value])}
                    )
        tax = (
            rec.get("tax")
            if isinstance(rec.get("tax"), dict)
            else (
                {
                    "country": rec["tax_country"],
                    "group": rec.get("tax_group") or "DEFAULT",
                    "tariff": rec.get("tax_tariff"),
                }
                if rec.get("tax_country")
                else None
            )
        )
        attrs = [
            {"name": k, "type": "STRING", "value": v}
            for k, v in rec.items()
            if k not in PRODUCT_KEYS and v is not None
        ]
        if isinstance(rec.get("attributes"), list):
            attrs += [a for a in rec["attributes"] if isinstance(a, dict) and "name" in a]
        parent = (
            rec.get("parent_ref")
            or rec.get("parentRef")
            or rec.get("standardProductRef")
            or rec.get("product")
        )
        inp: dict[str, Any] = {
            "ref": ref,
            "catalogue": {"ref": catalogue},
            "type": ptype,
            "status": rec.get("status"),
            "name": rec.get("name"),
            "summary": rec.get("summary"),
            "gtin": rec.get("gtin"),
            "prices": prices or None,
            "taxType": tax,
            "attributes": attrs or None,
        }
        if variant and parent:
            inp["product"] = {
                "ref": parent if isinstance(parent, str) else parent.get("ref"),
                "catalogue": {"ref": catalogue},
            }
        table = store.tables["variant_products" if variant else "standard_products"]
        if (catalogue, ref) in table.by_ref:
            return store.update_product(variant, {k: v for k, v in inp.items() if v is not None})
        inp["name"] = inp["name"] or ref
        inp["gtin"] = inp["gtin"] or ""
        node = store.create_product(variant, inp)
        if rec.get("status"):
            node = store.update_product(
                variant, {"ref": ref, "catalogue": {"ref": catalogue}, "status": rec["status"]}
            )
        return node
