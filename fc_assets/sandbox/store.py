"""The sandbox's in-memory Fluent account: generated tables, lookups, and the writes that mutations, batches
and events make.

Write semantics (what a client observes):
- creates refuse an existing ref (locations: `C0123E`, products: `C0128E`, inventory: `C0123E`) and an
  unknown catalogue, retailer or parent (`C0120E`); updates of a missing entity give `C0120E`;
- updates change only the fields given; `attributes` are upserted by `name`, `prices` by `(type, currency)`
  (the behaviour documented in the schema's update inputs);
- every write sets `updatedOn` to the sandbox clock;
- a batch inventory entity upserts the quantity `<position>:<type>` under the position
  `<skuRef>:<locationRef>:DEFAULT` (created when missing) and a LAST_ON_HAND quantity sets `onHand`;
- mutations never recompute `onHand` from quantities (Fluent's workflows would; the sandbox has none).

All access happens on the server's event loop thread, so there are no locks.
"""

from __future__ import annotations

from typing import Any

from fc_assets.sandbox.clock import SandboxClock
from fc_assets.sandbox.config import SandboxConfig
from fc_assets.sandbox.datetimes import parse_iso_ms
from fc_assets.sandbox.generate import generate
from fc_assets.sandbox.table import Table


class FluentError(Exception):
    """An error Fluent reports with a code (`C0120E` ...): the message is prefixed with the code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def not_found(kind: str, key: Any) -> FluentError:
    return FluentError("C0120E", f"{kind} {key} not found")


def upsert_attributes(
    old: list[dict[str, Any]] | None, new: list[dict[str, Any]] | None
) -> list[dict[str, Any]]:
    merged = {a["name"]: dict(a) for a in old or []}
    for a in new or []:
        if a is not None:
            merged[a["name"]] = {
                "name": a["name"],
                "type": a.get("type") or "STRING",
                "value": a.get("value"),
            }
    return list(merged.values())


def set_given(node: dict[str, Any], inp: dict[str, Any], keys: tuple[str, ...]) -> None:
    """An update mutation's input on `node`: the `keys` it gives replace theirs, its attributes are merged by
    name; a field the input leaves out or sets null keeps its value."""
    for key in keys:
        if inp.get(key) is not None:
            node[key] = inp[key]
    if inp.get("attributes") is not None:
        node["attributes"] = upsert_attributes(node.get("attributes"), inp["attributes"])


def upsert_prices(old: list[dict[str, Any]] | None, new: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    merged = {(p["type"], p["currency"]): dict(p) for p in old or []}
    for p in new or []:
        if p is not None:
            merged[(p["type"], p["currency"])] = {
                "type": p["type"],
                "currency": p["currency"],
                "value": float(p["value"]),
            }
    return list(merged.values())


class Store:
    """Tables by kind (`orders`, `fulfilments`, `locations`, `standard_products`, `variant_products`,
    `product_catalogues`, `inventory_catalogues`, `inventory_positions`, `inventory_quantities`,
    `virtual_catalogues`, `virtual_positions`) and the indexes between them."""

    def __init__(self, config: SandboxConfig, clock: SandboxClock) -> None:
        generated = generate(config)
        self.config = config
        self.clock = clock
        self.tables: dict[str, Table] = generated.tables
        self.retailer = generated.retailer
        self.retailer_id = str(config.retailer_id)
        self.children = generated.catalogue_children
        self.quantities_of: dict[tuple[str, str], list[int]] = self.children["quantities_of"]
        variants = self.tables["variant_products"]
        self.variants_of: dict[tuple[str, str], list[int]] = {}
        for row in range(variants.n):
            self.variants_of.setdefault(variants.node(row)["_standard"], []).append(row)

    # ---------------------------------------------------------------------------------------- reads

    def catalogue(self, kind: str, ref: str) -> dict[str, Any] | None:
        return self.tables[kind].find(ref)

    def location_by_ref(self, ref: str | None) -> dict[str, Any] | None:
        return self.tables["locations"].find(ref) if ref else None

    def product(self, catalogue_ref: str, ref: str) -> dict[str, Any] | None:
        return self.tables["variant_products"].find((catalogue_ref, ref)) or self.tables[
            "standard_products"
        ].find((catalogue_ref, ref))

    def scoped_keys(
        self, catalogue_kind: str, refs: list[str], catalogue_ref: str | None
    ) -> list[tuple[str, str]]:
        """`by_ref` keys of catalogue-scoped entities for a ref filter (every catalogue when none is given)."""
        cats = [catalogue_ref] if catalogue_ref else list(self.tables[catalogue_kind].by_ref)
        return [(c, r) for c in cats for r in refs]

    def now(self) -> tuple[int, int]:
        """(ms, ms): the sandbox clock, as the sort key and as the node's DateTime (nodes hold epoch ms)."""
        ms = self.clock.now_ms()
        return ms, ms

    # ------------------------------------------------------------------------------------ locations

    def create_location(self, inp: dict[str, Any]) -> dict[str, Any]:
        table = self.tables["locations"]
        if inp["ref"] in table.by_ref:
            raise FluentError("C0123E", f"Location with ref '{inp['ref']}' already exists")
        if str(inp["retailer"]["id"]) != self.retailer_id:
            raise not_found("Retailer", inp["retailer"]["id"])
        ms, now = self.now()
        addr = dict(inp["primaryAddress"])
        node = {
            "ref": inp["ref"],
            "type": inp["type"],
            "status": "ACTIVE",
            "name": inp["name"],
            "supportPhoneNumber": inp.get("supportPhoneNumber"),
            "defaultCarrier": inp.get("defaultCarrier"),
            "defaultCarrierName": None,
            "workflowRef": f"LOCATION::{inp['type']}",
            "workflowVersion": 1,
            "createdOn": now,
            "updatedOn": now,
            "retailer": self.retailer,
            "attributes": upsert_attributes([], inp.get("attributes")),
            "primaryAddress": self._address(None, addr, inp["ref"], now, table.n + 1),
            "openingSchedule": {
                "id": str(table.n + 1),
                "createdOn": now,
                "updatedOn": now,
                **inp["openingSchedule"],
            },
        }
        table.put(None, node, ms)
        return node

    @staticmethod
    def _address(
        old: dict[str, Any] | None, new: dict[str, Any], location_ref: str, now: str, address_id: int
    ) -> dict[str, Any]:
        base = (
            dict(old)
            if old
            else {
                "__typename": "StoreAddress",
                "id": str(address_id),
                "type": "STORE",
                "createdOn": now,
                "_location": location_ref,
                **dict.fromkeys(
                    [
                        "companyName",
                        "name",
                        "street",
                        "street2",
                        "city",
                        "state",
                        "postcode",
                        "region",
                        "country",
                        "latitude",
                        "longitude",
                        "timeZone",
                        "email",
                        "directions",
                    ]
                ),
            }
        )
        base.update({k: v for k, v in new.items() if k != "id" and v is not None})
        base["ref"] = base.get("ref") or location_ref
        base["updatedOn"] = now
        return base

    def update_location(self, inp: dict[str, Any]) -> dict[str, Any]:
        table = self.tables["locations"]
        row = table.row_of_id(inp["id"])
        if row is None:
            raise not_found("Location with id", inp["id"])
        node = dict(table.node(row))
        ms, now = self.now()
        set_given(node, inp, ("type", "status", "name", "supportPhoneNumber", "defaultCarrier"))
        if inp.get("primaryAddress") is not None:
            node["primaryAddress"] = self._address(
                node.get("primaryAddress"), inp["primaryAddress"], node["ref"], now, row + 1
            )
        if inp.get("openingSchedule") is not None:
            node["openingSchedule"] = {
                **node["openingSchedule"],
                **{k: v for k, v in inp["openingSchedule"].items() if v is not None},
                "updatedOn": now,
            }
        node["updatedOn"] = now
        table.put(row, node, ms)
        return node

    # ------------------------------------------------------------------------------------- products

    def _product_catalogue(self, key: dict[str, Any]) -> dict[str, Any]:
        cat = self.catalogue("product_catalogues", key["ref"])
        if cat is None:
            raise not_found("ProductCatalogue", key["ref"])
        return cat

    def create_product(self, variant: bool, inp: dict[str, Any]) -> dict[str, Any]:
        kind = "variant_products" if variant else "standard_products"
        table = self.tables[kind]
        cat = self._product_catalogue(inp["catalogue"])
        key = (cat["ref"], inp["ref"])
        if self.product(*key) is not None:
            raise FluentError(
                "C0128E", f"Product with ref '{inp['ref']}' already exists in catalogue {cat['ref']}"
            )
        ms, now = self.now()
        node: dict[str, Any] = {
            "__typename": "VariantProduct" if variant else "StandardProduct",
            "ref": inp["ref"],
            "type": inp["type"],
            "status": "CREATED",
            "name": inp["name"],
            "summary": inp.get("summary"),
            "gtin": inp["gtin"],
            "catalogue": cat,
            "prices": upsert_prices([], inp.get("prices")),
            "tax": self._tax(inp.get("taxType")),
            "attributes": upsert_attributes([], inp.get("attributes")),
            "workflowRef": f"PRODUCT_CATALOGUE::{cat['type']}",
            "workflowVersion": 1,
            "createdOn": now,
            "updatedOn": now,
        }
        if variant:
            node["_standard"] = self._standard_key(inp.get("product"), cat["ref"])
        row = table.put(None, node, ms)
        if variant and node["_standard"]:
            self.variants_of.setdefault(node["_standard"], []).append(row)
        return node

    def _standard_key(self, product: dict[str, Any] | None, default_catalogue: str) -> tuple[str, str] | None:
        if not product:
            return None
        cat_ref = (product.get("catalogue") or {}).get("ref") or default_catalogue
        if self.tables["standard_products"].find((cat_ref, product["ref"])) is None:
            raise not_found("StandardProduct", product["ref"])
        return cat_ref, product["ref"]

    @staticmethod
    def _tax(tax: dict[str, Any] | None) -> dict[str, Any] | None:
        return (
            None
            if not tax
            else {"country": tax["country"], "group": tax["group"], "tariff": tax.get("tariff")}
        )

    def update_product(self, variant: bool, inp: dict[str, Any]) -> dict[str, Any]:
        table = self.tables["variant_products" if variant else "standard_products"]
        cat = self._product_catalogue(inp["catalogue"])
        row = table.by_ref.get((cat["ref"], inp["ref"]))
        if row is None:
            raise not_found("VariantProduct" if variant else "StandardProduct", inp["ref"])
        node = dict(table.node(row))
        set_given(node, inp, ("type", "status", "name", "summary", "gtin"))
        if inp.get("prices") is not None:
            node["prices"] = upsert_prices(node.get("prices"), inp["prices"])
        if inp.get("taxType") is not None:
            node["tax"] = self._tax(inp["taxType"])
        if variant and inp.get("product") is not None:
            node["_standard"] = self._standard_key(inp["product"], cat["ref"])
            if row not in self.variants_of.setdefault(node["_standard"], []):
                self.variants_of[node["_standard"]].append(row)
        ms, node["updatedOn"] = self.now()
        table.put(row, node, ms)
        return node

    # ------------------------------------------------------------------------------------ inventory

    def _inventory_catalogue(self, key: dict[str, Any] | str) -> dict[str, Any]:
        ref = key if isinstance(key, str) else key["ref"]
        cat = self.catalogue("inventory_catalogues", ref)
        if cat is None:
            raise not_found("InventoryCatalogue", ref)
        return cat

    def create_position(self, inp: dict[str, Any]) -> dict[str, Any]:
        table = self.tables["inventory_positions"]
        cat = self._inventory_catalogue(inp["catalogue"])
        if (cat["ref"], inp["ref"]) in table.by_ref:
            raise FluentError("C0123E", f"InventoryPosition with ref '{inp['ref']}' already exists")
        ms, now = self.now()
        node = {
            "ref": inp["ref"],
            "type": inp["type"],
            "status": "CREATED",
            "productRef": inp["productRef"],
            "locationRef": inp["locationRef"],
            "onHand": inp.get("onHand"),
            "catalogue": cat,
            "attributes": upsert_attributes([], inp.get("attributes")),
            "workflowRef": f"INVENTORY_CATALOGUE::{cat['type']}",
            "workflowVersion": 1,
            "createdOn": now,
            "updatedOn": now,
        }
        table.put(None, node, ms)
        self.quantities_of.setdefault((cat["ref"], inp["ref"]), [])
        return node

    def update_position(self, inp: dict[str, Any]) -> dict[str, Any]:
        table = self.tables["inventory_positions"]
        cat = self._inventory_catalogue(inp["catalogue"])
        row = table.by_ref.get((cat["ref"], inp["ref"]))
        if row is None:
            raise not_found("InventoryPosition", inp["ref"])
        node = dict(table.node(row))
        set_given(node, inp, ("status", "type", "productRef", "onHand", "locationRef"))
        ms, node["updatedOn"] = self.now()
        table.put(row, node, ms)
        return node

    def create_quantity(self, inp: dict[str, Any]) -> dict[str, Any]:
        table = self.tables["inventory_quantities"]
        cat = self._inventory_catalogue(inp["catalogue"])
        if (cat["ref"], inp["ref"]) in table.by_ref:
            raise FluentError("C0123E", f"InventoryQuantity with ref '{inp['ref']}' already exists")
        pos_key = (inp["position"]["catalogue"]["ref"], inp["position"]["ref"])
        if pos_key not in self.tables["inventory_positions"].by_ref:
            raise not_found("InventoryPosition", inp["position"]["ref"])
        ms, now = self.now()
        node = {
            "ref": inp["ref"],
            "type": inp["type"],
            "status": "CREATED",
            "quantity": inp["quantity"],
            "condition": inp.get("condition"),
            "expectedOn": self._iso(inp.get("expectedOn")),
            "storageAreaRef": inp.get("storageAreaRef"),
            "catalogue": cat,
            "_position": pos_key,
            "attributes": upsert_attributes([], inp.get("attributes")),
            "workflowRef": f"INVENTORY_CATALOGUE::{cat['type']}",
            "workflowVersion": 1,
            "createdOn": now,
            "updatedOn": now,
        }
        row = table.put(None, node, ms)
        self.quantities_of.setdefault(pos_key, []).append(row)
        return node

    @staticmethod
    def _iso(value: int | str | None) -> int | None:
        """A DateTime input (already epoch ms from the scalar, or ISO text from a batch) as epoch ms."""
        return parse_iso_ms(value) if isinstance(value, str) else value

    def update_quantity(self, inp: dict[str, Any]) -> dict[str, Any]:
        table = self.tables["inventory_quantities"]
        cat = self._inventory_catalogue(inp["catalogue"])
        row = table.by_ref.get((cat["ref"], inp["ref"]))
        if row is None:
            raise not_found("InventoryQuantity", inp["ref"])
        node = dict(table.node(row))
        set_given(node, inp, ("status", "type", "quantity", "condition", "storageAreaRef"))
        if inp.get("expectedOn") is not None:
            node["expectedOn"] = self._iso(inp["expectedOn"])
        ms, node["updatedOn"] = self.now()
        table.put(row, node, ms)
        return node

    def upsert_inventory(self, entity: dict[str, Any], catalogue_ref: str) -> None:
        """One Batch API inventory entity (already validated): position and quantity upsert."""
        cat = self._inventory_catalogue(catalogue_ref)
        positions, quantities = self.tables["inventory_positions"], self.tables["inventory_quantities"]
        sku, loc, qty = entity["skuRef"], entity["locationRef"], int(entity["qty"])
        qtype = entity.get("type") or "LAST_ON_HAND"
        pos_ref = f"{sku}:{loc}:DEFAULT"
        ms, now = self.now()
        pos_row = positions.by_ref.get((cat["ref"], pos_ref))
        if pos_row is None:
            pos = {
                "ref": pos_ref,
                "type": "DEFAULT",
                "status": entity.get("status") or "ACTIVE",
                "productRef": sku,
                "locationRef": loc,
                "onHand": 0,
                "catalogue": cat,
                "attributes": [],
                "workflowRef": f"INVENTORY_CATALOGUE::{cat['type']}",
                "workflowVersion": 1,
                "createdOn": now,
            }
        else:
            pos = dict(positions.node(pos_row))
        if qtype == "LAST_ON_HAND":
            pos["onHand"] = qty
        pos["updatedOn"] = now
        positions.put(pos_row, pos, ms)
        pos_key = (cat["ref"], pos_ref)
        self.quantities_of.setdefault(pos_key, [])
        q_ref = f"{pos_ref}:{qtype}"
        q_row = quantities.by_ref.get((cat["ref"], q_ref))
        if q_row is None:
            q = {
                "ref": q_ref,
                "type": qtype,
                "condition": None,
                "storageAreaRef": None,
                "catalogue": cat,
                "_position": pos_key,
                "attributes": [],
                "workflowRef": f"INVENTORY_CATALOGUE::{cat['type']}",
                "workflowVersion": 1,
                "createdOn": now,
            }
        else:
            q = dict(quantities.node(q_row))
        attrs = entity.get("attributes") if isinstance(entity.get("attributes"), dict) else {}
        q.update(
            status=entity.get("status") or q.get("status") or "ACTIVE",
            quantity=qty,
            updatedOn=now,
            expectedOn=self._iso(entity.get("expectedOn") or attrs.get("expectedOn")) or q.get("expectedOn"),
        )
        for key in ("condition", "storageAreaRef"):
            if attrs.get(key) is not None:
                q[key] = attrs[key]
        if attrs:
            q["attributes"] = upsert_attributes(
                q.get("attributes"), [{"name": k, "type": "STRING", "value": v} for k, v in attrs.items()]
            )
        row = quantities.put(q_row, q, ms)
        if q_row is None:
            self.quantities_of[pos_key].append(row)
