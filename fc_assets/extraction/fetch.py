"""Reading one (sub-)window of an entity from Fluent: top-level paging, nested connections, fan-out scopes.

The client's `paginate` already refuses to stop early (no cursor, repeated cursor, malformed page); this
module adds the same guarantee for nested connections: an order whose `items` has `hasNextPage: true` gets
the rest through the follow-up query of its `NestedConnection`, and a nested connection that cannot be
completed raises `FluentPagingError` — items are never truncated.

`prefetch` pipelines a cursor chain: a fetch thread sends the request for page k+1 as soon as page k is
parsed (its `endCursor` known), while the caller converts page k, so the chain waits on the API, not on
our per-page CPU. Pages still arrive in order, at most `depth + 2` of them in memory per chain.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import closing, nullcontext
from functools import lru_cache
from typing import Any, Protocol

from fc_assets.extraction.entities import EntitySpec, NestedConnection, Scope, Source, load_query
from fc_assets.extraction.windows import Window
from fc_assets.resources.fluent_errors import FluentPagingError


class PageLike(Protocol):
    number: int
    nodes: Any  # list[dict[str, Any]], or what `decode` made of the page (`node_batches.ArrowNodes`)


class GraphQLPager(Protocol):
    """What extraction needs from `FluentClient` (a fake implements it in unit tests)."""

    retailer_id: str

    def paginate(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        connection_path: str | None = None,
        page_size: int | None = None,
        cancel: threading.Event | None = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> Iterator[PageLike]: ...


class Cancelled(Exception):  # noqa: N818 - control flow: another stream failed, stop this one
    """Raised before a request when the extraction was cancelled (another stream failed)."""


def check_cancelled(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled


@lru_cache(maxsize=64)
def query_text(name: str) -> str:
    return load_query(name)


def window_variables(
    spec: EntitySpec, window: Window, retailer_id: str, scope_value: dict[str, Any] | None = None
) -> dict[str, Any]:
    variables: dict[str, Any] = {"updated": window.date_range}
    if spec.retailer_scoped:
        variables["retailerId"] = [int(retailer_id)]
    for conn in spec.nested:
        variables[conn.first_var] = conn.page_size
    if spec.scope is not None:
        if scope_value is None:
            raise ValueError(f"{spec.name} is queried per {spec.scope.variable}; none given")
        variables[spec.scope.variable] = scope_value
    return variables


def list_scope_values(client: GraphQLPager, scope: Scope, page_size: int) -> list[dict[str, Any]]:
    """The fan-out values (e.g. `[{"ref": "VC1"}, ...]`), sorted so task order is deterministic."""
    keys = set()
    for page in client.paginate(
        query_text(scope.query), {}, connection_path=scope.connection_path, page_size=page_size
    ):
        for node in page.nodes:
            value = node.get(scope.key_field)
            if value is None:
                raise FluentPagingError(f"a node has no {scope.key_field!r}", path=scope.connection_path)
            keys.add(value)
    return [{scope.key_field: k} for k in sorted(keys)]


def complete_nested(
    client: GraphQLPager,
    conn: NestedConnection,
    nodes: list[dict[str, Any]],
    cancel: threading.Event | None = None,
) -> int:
    """Fetch the rest of `conn` for every node whose first nested page was not the last; return pages fetched.

    Edges are appended in place, so the node then holds the whole nested list. `cancel` is checked before
    every follow-up request.
    """
    from fc_assets.resources.fluent_query import connection_plan  # graphql-core: at run time, not at load

    follow_up = query_text(conn.query)
    after_var = connection_plan(follow_up, conn.connection_path).after_var
    pages = 0
    for node in nodes:
        nested = node.get(conn.field)
        if nested is None:
            continue  # null connection: no children
        has_next = (nested.get("pageInfo") or {}).get("hasNextPage")
        if has_next is False:
            continue
        where = f"{conn.field} of node {node.get('id')!r}"
        if has_next is not True:
            raise FluentPagingError(f"{where}: pageInfo.hasNextPage is {has_next!r}; cannot tell if complete")
        edges = nested.get("edges") or []
        cursor = edges[-1].get("cursor") if edges else None
        if not cursor or node.get("id") is None:
            raise FluentPagingError(f"{where}: hasNextPage is true but there is no cursor or id to continue")
        check_cancelled(cancel)
        for page in client.paginate(
            follow_up,
            {"id": node["id"], after_var: cursor},
            connection_path=conn.connection_path,
            page_size=conn.page_size,
            cancel=cancel,
        ):
            check_cancelled(cancel)
            edges.extend({"cursor": None, "node": n} for n in page.nodes)
            pages += 1
        nested["edges"] = edges
        nested["pageInfo"] = {"hasNextPage": False}
    return pages


def fetch_pages(
    client: GraphQLPager,
    spec: EntitySpec,
    source: Source,
    window: Window,
    *,
    scope_value: dict[str, Any] | None = None,
    page_size: int | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[tuple[list[dict[str, Any]], int]]:
    """Yield `(nodes, requests)` per top-level page of `source` over `window` (inclusive query: the caller
    drops rows at `window.end`), nested connections completed; `requests` counts follow-up pages too.
    `nodes` is a list of dicts, or `ArrowNodes` where `json_pages` read the body (no nested page left).

    `cancel` is checked before every request and again when its answer arrives, and it ends the client's
    wait before a retry, so a cancelled chain sends nothing more: at most the request in flight completes.
    """
    from fc_assets.extraction.json_pages import decoder_for  # pyarrow: at run time, not at load

    variables = window_variables(spec, window, client.retailer_id, scope_value)
    pages = iter(
        client.paginate(
            query_text(source.query),
            variables,
            connection_path=source.connection_path,
            page_size=page_size,
            cancel=cancel,
            decode=decoder_for(spec, source.connection_path),
        )
    )
    with closing(pages) if hasattr(pages, "close") else nullcontext():
        while True:
            check_cancelled(cancel)
            page = next(pages, None)  # sends the request
            if page is None:
                return
            check_cancelled(cancel)
            requests = 1
            if isinstance(page.nodes, list):  # decoded pages have no nested page left (json_pages)
                for conn in spec.nested:
                    requests += complete_nested(client, conn, page.nodes, cancel)
            yield page.nodes, requests
