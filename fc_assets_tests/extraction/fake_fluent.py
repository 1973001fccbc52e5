"""An in-memory stand-in for `FluentClient.paginate` (unit tests of extraction without HTTP).

It serves node lists per connection path with Fluent's semantics: inclusive `updatedOn` DateRange, edge
cursors, `hasNextPage`, nested `items(first: N)` with their own pageInfo and a `xById.items` follow-up.
`fail_after_pages` raises on the N-th page of a path to test complete-or-fail.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from fc_assets.resources.fluent import ClientStats, DecodedPage, FluentHTTPError, Page


def ts(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class FakeFluent:
    nodes: dict[str, list[dict[str, Any]]]  # connection path -> nodes (top-level, full nested lists)
    nested_field: str = "items"
    retailer_id: str = "1"
    fail_after_pages: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # the FluentClient surface the asset uses
    def __enter__(self) -> FakeFluent:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def stats_snapshot(self) -> ClientStats:
        return ClientStats(pages=len(self.calls))

    def authenticate_early(self) -> None:
        """(No token here.)"""

    def paginate(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        connection_path: str | None = None,
        page_size: int | None = None,
        cancel: threading.Event | None = None,
        decode: Callable[[bytes], DecodedPage | None] | None = None,
    ) -> Iterator[Page | DecodedPage]:
        """`decode` (as `FluentClient.paginate`'s) gets each top-level page as the JSON body the API sends;
        the pages it does not take stay dicts."""
        variables = dict(variables or {})
        size = page_size or 100
        if connection_path and connection_path.endswith("ById.items"):
            parent = self._by_id(variables["id"])
            rows = parent[self.nested_field]
            start = int(variables["after"]) + 1
            yield from self._pages(connection_path, rows, start, size, variables)
            return
        rows = [n for n in self.nodes[connection_path] if self._matches(n, variables)]
        for page in self._pages(connection_path, rows, 0, size, variables):
            decoded = None if decode is None else decode(self._body(connection_path, page))
            yield page if decoded is None else replace(decoded, number=page.number)

    @staticmethod
    def _body(path: str, page: Page) -> bytes:
        conn: dict[str, Any] = {"edges": page.edges, "pageInfo": {"hasNextPage": page.has_next_page}}
        for step in reversed(path.split(".")):
            conn = {step: conn}
        return orjson.dumps({"data": conn})

    def _pages(
        self, path: str, rows: list[dict[str, Any]], start: int, size: int, variables: dict[str, Any]
    ) -> Iterator[Page]:
        number = 0
        while True:
            number += 1
            with self._lock:
                self.calls.append((path, variables))
                page_calls = sum(1 for p, _ in self.calls if p == path)
            if path in self.fail_after_pages and page_calls > self.fail_after_pages[path]:
                raise FluentHTTPError("POST", "/graphql", 503, "injected", attempts=6)
            chunk = rows[start : start + size]
            edges = [
                {"cursor": str(start + i), "node": self._shape(n, variables)} for i, n in enumerate(chunk)
            ]
            has_next = start + size < len(rows)
            yield Page(
                number, [e["node"] for e in edges], edges, has_next, edges[-1]["cursor"] if edges else None
            )
            if not has_next:
                return
            start += size

    def _shape(self, node: dict[str, Any], variables: dict[str, Any]) -> dict[str, Any]:
        """A node as the API returns it: the nested list becomes a first page of a connection."""
        if self.nested_field not in node or not isinstance(node[self.nested_field], list):
            return dict(node)
        first = variables.get("itemsFirst") or 50
        items = node[self.nested_field]
        shaped = dict(node)
        shaped[self.nested_field] = {
            "edges": [{"cursor": str(i), "node": it} for i, it in enumerate(items[:first])],
            "pageInfo": {"hasNextPage": len(items) > first},
        }
        return shaped

    def _by_id(self, id_: str) -> dict[str, Any]:
        for rows in self.nodes.values():
            for n in rows:
                if n.get("id") == id_:
                    return n
        raise KeyError(id_)

    @staticmethod
    def _matches(node: dict[str, Any], variables: dict[str, Any]) -> bool:
        rng = variables.get("updated")
        if rng:
            updated = datetime.fromisoformat(node["updatedOn"])
            if updated < datetime.fromisoformat(rng["from"]) or updated > datetime.fromisoformat(rng["to"]):
                return False
        cat = variables.get("catalogue")
        return not cat or (node.get("catalogue") or {}).get("ref") == cat["ref"]


def make_orders(
    day: datetime, n: int, *, items: int = 2, midnight: int = 2, prefix: str = "O"
) -> list[dict[str, Any]]:
    """`n` orders updated during `day` (the first `midnight` exactly at 00:00), each with `items` items."""
    orders = []
    for i in range(n):
        updated = day if i < midnight else day + timedelta(seconds=(i * 86399) // max(1, n))
        orders.append(
            {
                "id": f"{prefix}{day:%m%d}-{i:05d}",
                "ref": f"REF-{prefix}{day:%m%d}-{i}",
                "type": "HD",
                "status": "BOOKED",
                "workflowRef": "ORDER::HD",
                "workflowVersion": 1,
                "createdOn": ts(updated - timedelta(hours=1)),
                "updatedOn": ts(updated),
                "totalPrice": 10.0 * (i % 7 + 1),
                "totalTaxPrice": 1.0,
                "retailer": {"id": "1", "ref": "R1"},
                "customer": {
                    "id": f"C{i}",
                    "ref": f"CUST{i}",
                    "firstName": "Ada",
                    "lastName": "L",
                    "primaryEmail": "ada@example.com",
                    "primaryPhone": None,
                },
                "fulfilmentChoice": {
                    "id": f"FC{i}",
                    "ref": f"FC{i}",
                    "type": "HD",
                    "status": "CREATED",
                    "deliveryType": "STANDARD",
                    "pickupLocationRef": None,
                    "currency": "AUD",
                    "fulfilmentPrice": 5.0,
                    "deliveryFirstName": "Ada",
                    "deliveryLastName": "L",
                    "deliveryEmail": None,
                    "deliveryAddress": {
                        "name": "Ada",
                        "street": "1 Main St",
                        "street2": None,
                        "city": "Sydney",
                        "state": "NSW",
                        "postcode": "2000",
                        "country": "AU",
                    },
                },
                "attributes": [
                    {"name": "channel", "type": "STRING", "value": "web"},
                    {"name": "meta", "type": "JSON", "value": {"a": 1}},
                ],
                "items": [
                    {
                        "id": f"{prefix}{day:%m%d}-{i:05d}-{k}",
                        "ref": f"L{k}",
                        "status": "ACTIVE",
                        "quantity": k + 1,
                        "price": 2.5,
                        "paidPrice": 2.5,
                        "taxPrice": 0.25,
                        "totalPrice": 2.5 * (k + 1),
                        "currency": "AUD",
                        "createdOn": ts(updated),
                        "updatedOn": ts(updated),
                        "product": {"ref": f"SKU{k}", "name": f"Product {k}"},
                    }
                    for k in range(items)
                ],
            }
        )
    return orders
