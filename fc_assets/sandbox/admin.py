"""The admin API under `/_sandbox/` (no bearer token, never faulted) — a contract other tests rely on:

Every admin request needs the header `X-Sandbox-Admin: 1`, and a POST needs `Content-Type:
application/json` (403 / 415 `{"message"}` otherwise). A web page the developer visits can make the browser
send a "simple" cross-origin request (form or `text/plain` POST, no custom header) but cannot add a custom
header or a JSON content type without a CORS preflight, which the sandbox never answers: so no page can
reset the sandbox or inject faults behind the developer's back (CSRF). Scripts and curl just set the header.

| call | answer |
|---|---|
| `GET /_sandbox/faults` | the current faults (faults.py) |
| `POST /_sandbox/faults` JSON | merged into the current faults (`expire_tokens: true` expires tokens now); the faults |
| `DELETE /_sandbox/faults` | clears them; `{}` |
| `GET /_sandbox/received` | what was received (received.py) |
| `POST /_sandbox/reset` | reseeds the store with the start-up flags, clears jobs, events, received, faults, clock |
| `GET /_sandbox/clock` | `{"now": ISO, "now_ms": n}` |
| `POST /_sandbox/clock` `{"now": ISO}` or `{"advance_s": n}` | moves the sandbox clock (it keeps running) |
| `POST /_sandbox/touch` `{"entity", "id", "updatedOn": ISO}` | sets one entity's `updatedOn` (an update at that time, e.g. across midnight); `{"entity", "id", "updatedOn"}`, 404 if no such id |
| `GET /_sandbox/counts?entity=orders&from=ISO&to=ISO` | `{"entity", "from", "to", "count", "ids"}`: entities with `from <= updatedOn < to` (half-open; either bound optional), ids in connection order |

Entities for `counts`: orders, fulfilments, locations, products (standard + variant), standard_products,
variant_products, product_catalogues, inventory_catalogues, inventory_positions, inventory_quantities,
virtual_catalogues, virtual_positions (camelCase names work too). Bad input → 400 `{"message"}`.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import orjson
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from fc_assets.sandbox.datetimes import iso_ms, parse_iso_ms
from fc_assets.sandbox.faults import FaultError
from fc_assets.sandbox.table import MAX_MS

ENTITY_TABLES = {
    "products": ("standard_products", "variant_products"),
    **{
        name: (name,)
        for name in (
            "orders",
            "fulfilments",
            "locations",
            "standard_products",
            "variant_products",
            "product_catalogues",
            "inventory_catalogues",
            "inventory_positions",
            "inventory_quantities",
            "virtual_catalogues",
            "virtual_positions",
        )
    },
}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


ADMIN_HEADER = "X-Sandbox-Admin"


def admin_refusal(scope: Scope) -> Response | None:
    """The answer refusing an admin request that a browser could have sent cross-origin, else None."""
    headers = Headers(scope=scope)
    if headers.get(ADMIN_HEADER) != "1":
        return json({"message": f"admin requests need the header '{ADMIN_HEADER}: 1'"}, 403)
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if scope["method"] == "POST" and media_type != "application/json":
        return json({"message": "admin POSTs need 'Content-Type: application/json'"}, 415)
    return None


def admin_routes(state: Any) -> list[Route]:
    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            state.faults.clear()
            return json({})
        if request.method == "POST":
            try:
                patch = orjson.loads(await request.body() or b"{}")
                state.faults.merge(patch)
            except (orjson.JSONDecodeError, FaultError, TypeError, ValueError, AttributeError) as exc:
                return json({"message": str(exc)}, 400)
            if patch.get("expire_tokens"):
                state.tokens.expire_all()
        return json(state.faults.snapshot())

    async def received(_: Request) -> Response:
        return json(state.received.snapshot())

    async def reset(_: Request) -> Response:
        state.reset()
        return json({"status": "reset"})

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = orjson.loads(await request.body() or b"{}")
                if body.get("now") is not None:
                    state.clock.set(parse_iso_ms(body["now"]))
                elif body.get("advance_s") is not None:
                    state.clock.advance(float(body["advance_s"]))
                else:
                    return json({"message": "give 'now' (ISO) or 'advance_s'"}, 400)
            except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError) as exc:
                return json({"message": str(exc)}, 400)
        now = state.clock.now_ms()
        return json({"now": iso_ms(now), "now_ms": now})

    async def counts(request: Request) -> Response:
        q = request.query_params
        entity = snake(q.get("entity", ""))
        if entity not in ENTITY_TABLES:
            return json(
                {"message": f"unknown entity {q.get('entity')!r}; one of {sorted(ENTITY_TABLES)}"}, 400
            )
        try:
            lo = parse_iso_ms(q["from"]) if q.get("from") else 0
            hi = parse_iso_ms(q["to"]) if q.get("to") else MAX_MS
        except ValueError as exc:
            return json({"message": str(exc)}, 400)
        ids: list[str] = []
        for name in ENTITY_TABLES[entity]:
            table = state.store.tables[name]
            rows = table.rows_updated_between(lo, hi)
            ids.extend(table.id_of(int(r)) for r in np.asarray(rows).tolist())
        return json(
            {"entity": entity, "from": q.get("from"), "to": q.get("to"), "count": len(ids), "ids": ids}
        )

    async def touch(request: Request) -> Response:
        try:
            body = orjson.loads(await request.body() or b"{}")
            entity = snake(str(body.get("entity", "")))
            ms = parse_iso_ms(body["updatedOn"])
        except (orjson.JSONDecodeError, KeyError, ValueError, TypeError, AttributeError) as exc:
            return json({"message": f"give 'entity', 'id' and 'updatedOn' (ISO): {exc}"}, 400)
        for name in ENTITY_TABLES.get(entity, ()):
            table = state.store.tables[name]
            row = table.row_of_id(body.get("id"))
            if row is not None:
                node = dict(table.node(row))
                node["updatedOn"] = ms
                table.put(row, node, ms)
                return json({"entity": entity, "id": table.id_of(row), "updatedOn": iso_ms(ms)})
        return json({"message": f"no {body.get('entity')!r} with id {body.get('id')!r}"}, 404)

    return [
        Route("/_sandbox/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/_sandbox/received", received, methods=["GET"]),
        Route("/_sandbox/reset", reset, methods=["POST"]),
        Route("/_sandbox/clock", clock, methods=["GET", "POST"]),
        Route("/_sandbox/counts", counts, methods=["GET"]),
        Route("/_sandbox/touch", touch, methods=["POST"]),
    ]
