"""Differential test: a page body read by `json_pages` (Arrow's JSON parser) against the same body read the
old way (orjson, `_page_of`, the nested-page check, `BatchBuilder.build` of the dicts).

Wherever the fast path takes a page it must give the same paging state and the same batch, or the same
build error; where it does not (None), the client reads the body the old way, so only the taking side needs
comparing. The bodies: every entity's pages from the sandbox, and hand-written odd pages (nulls, absent
fields, numbers as strings, unicode, JSON values, malformed connections, GraphQL errors, very large pages).
"""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pytest

from fc_assets.extraction import json_pages
from fc_assets.extraction.entities import ENTITIES, ORDERS, EntitySpec
from fc_assets.extraction.extract import extract_periods
from fc_assets.extraction.fetch import list_scope_values, query_text, window_variables
from fc_assets.extraction.node_batches import ArrowNodes, BatchBuilder
from fc_assets.extraction.windows import Window
from fc_assets.resources.fluent import FluentClient, FluentPagingError, _page_of
from fc_assets_tests.extraction.fake_fluent import FakeFluent, make_orders

D1 = datetime(2026, 3, 1, tzinfo=UTC)


def old_path(spec: EntitySpec, path: str, body: bytes) -> tuple[Any, ...]:
    """What the client, `fetch_pages` and `BatchBuilder` made of the body before `json_pages`."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ("not JSON",)
    if isinstance(doc, dict) and doc.get("errors"):
        return ("GraphQL errors",)
    if not isinstance(doc, dict):
        return ("HTTP error",)
    try:
        page = _page_of(doc.get("data") or {}, tuple(path.split(".")), 1)
    except FluentPagingError as exc:
        return ("paging error", str(exc))
    try:  # as `complete_nested` reads the nodes
        for conn in spec.nested:
            for node in page.nodes:
                nested = node.get(conn.field)
                if nested is not None and (nested.get("pageInfo") or {}).get("hasNextPage") is not False:
                    return ("nested pages to fetch",)
    except AttributeError as exc:
        return ("nested error", str(exc))
    return ("page", page.has_next_page, page.end_cursor, *built(spec, page.nodes))


def built(spec: EntitySpec, nodes: Any) -> tuple[Any, ...]:
    try:
        batch = BatchBuilder(spec.columns).build(nodes)
    except Exception as exc:  # the error itself is compared
        return ("build error", type(exc).__name__, str(exc))
    batch.validate(full=True)
    return ("batch", batch)


def fast_path(spec: EntitySpec, path: str, body: bytes) -> tuple[Any, ...] | None:
    decoder = json_pages.decoder_for(spec, path)
    page = decoder(body) if decoder is not None else None
    if page is None:
        return None
    assert isinstance(page.nodes, ArrowNodes)
    return ("page", page.has_next_page, page.end_cursor, *built(spec, page.nodes))


def same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Equal, batches by value with float bits compared too (`-0.0` vs `0.0`, NaN)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if isinstance(x, pa.RecordBatch):
            if not isinstance(y, pa.RecordBatch) or not x.equals(y) or _bits(x) != _bits(y):
                return False
        elif x != y:
            return False
    return True


def _bits(batch: pa.RecordBatch) -> str:
    def walk(v: Any) -> Any:
        if isinstance(v, float):
            return (v.hex(), math.copysign(1, v))
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return repr(walk(batch.to_pylist()))


def compare(spec: EntitySpec, path: str, body: bytes) -> bool:
    """Assert the fast path agrees with the old one; return whether it took the page."""
    old = old_path(spec, path, body)
    new = fast_path(spec, path, body)
    if new is not None:
        assert same(new, old), (body[:300], new[:4], old[:4])
    return new is not None


# ---------------------------------------------------------------------------------------- sandbox pages


def sandbox_bodies(sandbox, spec: EntitySpec) -> list[tuple[str, bytes]]:
    """Every page body of every source of `spec` over 40 days (a decode that records and declines)."""
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    window = Window(end - timedelta(days=40), end)
    bodies: list[tuple[str, bytes]] = []
    with FluentClient(sandbox.base_url, "fc-sandbox", "fc-sandbox-secret", page_size=100) as client:
        scopes = list_scope_values(client, spec.scope, 100) if spec.scope else [None]
        for source in spec.sources:
            for scope in scopes:
                for _ in client.paginate(
                    query_text(source.query),
                    window_variables(spec, window, client.retailer_id, scope),
                    connection_path=source.connection_path,
                    decode=lambda body, p=source.connection_path: bodies.append((p, body)),
                ):
                    pass
    return bodies


@pytest.mark.parametrize("spec", ENTITIES, ids=lambda s: s.name)
def test_sandbox_pages_read_the_same_on_both_paths(sandbox, spec):
    """Every page is taken, except pages with a nested connection that goes on (the sandbox's large
    orders and their fulfilments): those need the follow-up queries of the dict path."""
    bodies = sandbox_bodies(sandbox, spec)
    assert bodies
    refused = [old_path(spec, path, body)[0] for path, body in bodies if not compare(spec, path, body)]
    assert set(refused) <= {"nested pages to fetch"}, (spec.name, refused)
    assert len(refused) <= 3, spec.name


# ---------------------------------------------------------------------------------- hand-written pages


def order_node(i: int) -> dict[str, Any]:
    node = make_orders(D1, i + 1, items=2)[i]
    node["attributes"] = [{"name": "channel", "type": "STRING", "value": "web"}]
    node["items"] = {
        "edges": [{"cursor": f"c{k}", "node": item} for k, item in enumerate(node["items"])],
        "pageInfo": {"hasNextPage": False},
    }
    return node


def page(nodes: list[Any], *, has_next: Any = False, cursors: list[Any] | None = None, **top: Any) -> dict:
    cursors = cursors if cursors is not None else [f"o{i}" for i in range(len(nodes))]
    edges = [{"cursor": c, "node": n} for c, n in zip(cursors, nodes, strict=True)]
    return {"data": {"orders": {"edges": edges, "pageInfo": {"hasNextPage": has_next}}}, **top}


def body(doc: Any) -> bytes:
    return orjson.dumps(doc)


NODES = [order_node(i) for i in range(3)]


def with_change(change) -> bytes:
    nodes = copy.deepcopy(NODES)
    change(nodes)
    return body(page(nodes))


def setter(path: str, value: Any, index: int = 0):
    def change(nodes: list[Any]) -> None:
        target = nodes[index]
        *parents, leaf = path.split(".")
        for step in parents:
            target = target[int(step)] if isinstance(target, list) else target[step]
        key = int(leaf) if isinstance(target, list) else leaf
        if value is KeyError:
            del target[key]
        else:
            target[key] = value

    return change


ITEM0 = "items.edges.0.node"
VALUE_CASES = {
    # nulls and absent fields, at every level
    "null scalar": setter("ref", None),
    "absent scalar": setter("ref", KeyError),
    "null struct": setter("customer", None),
    "absent struct": setter("fulfilmentChoice", KeyError),
    "null inner struct": setter("fulfilmentChoice.deliveryAddress", None),
    "null items": setter("items", None),
    "absent items": setter("items", KeyError),
    "null item edges": setter("items.edges", None),
    "empty item edges": setter("items.edges", []),
    "null item edge": setter("items.edges.0", None),
    "item edge without node": setter("items.edges.0", {"cursor": "x"}),
    "null item field": setter(f"{ITEM0}.product", None),
    "null attributes": setter("attributes", None),
    "empty attributes": setter("attributes", []),
    "null attribute": setter("attributes.0", None),
    "null timestamp": setter("createdOn", None),
    "extra fields": setter("extra", {"deep": [1, {"x": None}], "n": 1e300}),
    # numbers
    "int in float column": setter("totalPrice", 12),
    "float in int column": setter("workflowVersion", 3.0),
    "string in int column": setter("workflowVersion", "3"),
    "string in float column": setter("totalPrice", "12.5"),
    "bool in int column": setter("workflowVersion", True),
    "number in string column": setter("ref", 12),
    "huge int in float column": setter("totalPrice", 2**60 + 1),
    "int beyond int64": setter("workflowVersion", 2**63),
    "negative zero float": setter("totalPrice", -0.0),
    "tiny float": setter("totalPrice", 5e-324),
    "many digits": setter("totalPrice", 0.1 + 0.2),
    "item quantity as string": setter(f"{ITEM0}.quantity", "2"),
    "item price int": setter(f"{ITEM0}.price", 3),
    # strings and timestamps
    "unicode": setter("customer.firstName", "Zoë 😀 ñ \u2028 \x7f"),
    "control characters": setter("customer.firstName", "a\nb\tc\x00d\x1f"),
    "quotes and backslashes": setter("ref", 'a"b\\c/d'),
    "empty string": setter("ref", ""),
    "timestamp with offset": setter("createdOn", "2026-03-01T10:00:00+02:00"),
    "timestamp without zone": setter("createdOn", "2026-03-01T10:00:00"),
    "timestamp micros": setter(f"{ITEM0}.updatedOn", "2026-03-01T10:00:00.123456Z"),
    "bad timestamp": setter("updatedOn", "2026-13-45T00:00:00Z"),
    "timestamp as number": setter("updatedOn", 1700000000),
    # JSON values
    "json string needing escapes": setter("attributes.0.value", 'say "hi"\n\\ \u00e9'),
    "json unicode string": setter("attributes.0.value", "é😀"),
    "json object": setter("attributes.0.value", {"a": [1, 2.5, None, True]}),
    "json number": setter("attributes.0.value", 7),
    "json bool": setter("attributes.0.value", False),
    "json null": setter("attributes.0.value", None),
    "json absent": setter("attributes.0.value", KeyError),
    # shapes
    "struct as string": setter("customer", "C1"),
    "list as object": setter("attributes", {"name": "x"}),
    "items as list": setter("items", []),
    # nested paging
    "items have a next page": setter("items.pageInfo.hasNextPage", True),
    "items pageInfo null": setter("items.pageInfo", None),
    "items pageInfo absent": setter("items.pageInfo", KeyError),
    "items hasNextPage null": setter("items.pageInfo.hasNextPage", None),
    "items hasNextPage string": setter("items.pageInfo.hasNextPage", "false"),
}


@pytest.mark.parametrize("case", VALUE_CASES)
def test_odd_values_read_the_same_on_both_paths(case):
    compare(ORDERS, "orders", with_change(VALUE_CASES[case]))


def raw(text: str) -> bytes:
    return text.encode()


GOOD = body(page(copy.deepcopy(NODES)))
BODY_CASES = {
    "plain": GOOD,
    "pretty printed": json.dumps(page(copy.deepcopy(NODES)), indent=2).encode(),
    "ascii escapes": json.dumps(page(copy.deepcopy(NODES)), ensure_ascii=True).encode(),
    "trailing newline": GOOD + b"\n",
    "leading space": b" " + GOOD,
    "byte order mark": b"\xef\xbb\xbf" + GOOD,
    "two documents": GOOD + GOOD,
    "trailing null": GOOD + b"null",
    "trailing garbage": GOOD + b"x",
    "truncated": GOOD[:-5],
    "empty": b"",
    "null": b"null",
    "list": b"[]",
    "invalid utf-8 in an unread field": GOOD[:-1] + b',"x":"\xff"}',
    "invalid utf-8 in a value": GOOD.replace(b'"web"', b'"w\xc3eb"'),
    "NaN in an unread field": GOOD[:-1] + b',"x":NaN}',
    "Infinity in a value": GOOD.replace(b'"totalTaxPrice":1.0', b'"totalTaxPrice":Infinity', 1),
    "NaN text in a string": GOOD.replace(b'"web"', b'"NaN Infinity"'),
    "NaN text after a colon in a string": GOOD.replace(b'"web"', b'"x: NaN"'),
    "lone surrogate escape": GOOD.replace(b'"web"', b'"\\ud800"'),
    "escaped key": GOOD.replace(b'"ref"', b'"r\\u0065f"', 1),
    "duplicate key": GOOD.replace(b'"ref":', b'"ref":"dup","ref":', 1),
    "errors": body({**page(copy.deepcopy(NODES)), "errors": [{"message": "boom"}]}),
    "errors null": body({**page(copy.deepcopy(NODES)), "errors": None}),
    "errors empty": body({**page(copy.deepcopy(NODES)), "errors": []}),
    "escaped errors key": GOOD[:-1] + b',"\\u0065rrors":[{"message":"x"}]}',
    "extensions": body({**page(copy.deepcopy(NODES)), "extensions": {"cost": 3}}),
    "data null": body({"data": None}),
    "no data": body({}),
    "connection null": body({"data": {"orders": None}}),
    "edges null": body({"data": {"orders": {"edges": None, "pageInfo": {"hasNextPage": False}}}}),
    "no pageInfo": body({"data": {"orders": {"edges": []}}}),
    "hasNextPage string": body(page(copy.deepcopy(NODES), has_next="true")),
    "hasNextPage null": body(page(copy.deepcopy(NODES), has_next=None)),
    "has next": body(page(copy.deepcopy(NODES), has_next=True)),
    "empty last page": body(page([])),
    "empty page with a next": body(page([], has_next=True)),
    "null edge": body({"data": {"orders": {"edges": [None], "pageInfo": {"hasNextPage": False}}}}),
    "edge without node": body(
        {"data": {"orders": {"edges": [{"cursor": "a"}], "pageInfo": {"hasNextPage": True}}}}
    ),
    "null node": body(page([None])),
    "node not an object": body(page(["x"])),
    "cursor as number": body(page(copy.deepcopy(NODES), has_next=True, cursors=[1, 2, 3])),
    "last cursor null": body(page(copy.deepcopy(NODES), has_next=True, cursors=["a", "b", None])),
    "edges as object": body({"data": {"orders": {"edges": {}, "pageInfo": {"hasNextPage": False}}}}),
    "very large page": body(page([order_node(i % 50) for i in range(3000)], has_next=True)),
}


@pytest.mark.parametrize("case", BODY_CASES)
def test_odd_bodies_read_the_same_on_both_paths(case):
    compare(ORDERS, "orders", BODY_CASES[case])


def test_the_fast_path_takes_ordinary_pages_and_refuses_what_it_cannot_read_exactly():
    takes = ["plain", "pretty printed", "ascii escapes", "trailing newline", "escaped key", "has next"]
    takes += ["empty last page", "extensions", "very large page", "NaN text in a string", "errors null"]
    refuses = ["errors", "errors empty", "escaped errors key", "byte order mark"]
    refuses += ["two documents", "NaN text after a colon in a string"]
    refuses += ["trailing null", "null", "invalid utf-8 in an unread field", "NaN in an unread field"]
    refuses += ["Infinity in a value", "duplicate key", "null edge", "edge without node", "null node"]
    refuses += ["data null", "no pageInfo", "hasNextPage null", "cursor as number", "empty"]
    assert [c for c in takes if not compare(ORDERS, "orders", BODY_CASES[c])] == []
    assert [c for c in refuses if compare(ORDERS, "orders", BODY_CASES[c])] == []
    took = {case for case in VALUE_CASES if compare(ORDERS, "orders", with_change(VALUE_CASES[case]))}
    assert {"null struct", "absent items", "null item edge", "unicode", "json string needing escapes"} <= took
    assert not took & {
        "json object",
        "string in float column",
        "items have a next page",
        "items pageInfo null",
    }


def test_floats_the_dict_path_reads_otherwise_go_the_dict_path():
    """Arrow reads `-0` and 2**60+1 as doubles; orjson + `pa.array` read `0.0` and refuse 2**60+1. Such
    pages (any negative zero or float beyond 2**53) are converted from dicts, so the batch or error is
    the old one."""
    for literal in (b"-0", b"1152921504606846977", b"-0.0", b"9007199254740992.0"):
        text = GOOD.replace(b'"totalTaxPrice":1.0', b'"totalTaxPrice":' + literal, 1)
        page = json_pages.decoder_for(ORDERS, "orders")(text)
        assert page is not None
        with pytest.raises(Exception, match="^$"):  # _Inexact
            BatchBuilder(ORDERS.columns)._from_arrow(page.nodes)
        assert compare(ORDERS, "orders", text)
    zero = GOOD.replace(b'"totalTaxPrice":1.0', b'"totalTaxPrice":0', 1)
    assert BatchBuilder(ORDERS.columns)._from_arrow(json_pages.decoder_for(ORDERS, "orders")(zero).nodes)


def test_json_nested_deeper_than_orjson_reads_is_the_one_known_difference():
    """orjson refuses JSON nested more than 1024 deep ("not JSON" on the old path); Arrow reads past it in
    a field the columns do not declare, so the fast path takes the page (see `json_pages`)."""
    text = GOOD[:-1] + b',"x":' + b"[" * 1100 + b"]" * 1100 + b"}"
    assert old_path(ORDERS, "orders", text) == ("not JSON",)
    new = fast_path(ORDERS, "orders", text)
    assert new is not None and same(new, fast_path(ORDERS, "orders", GOOD))


# ------------------------------------------------------------------------------------------- end to end


def test_extraction_through_the_fast_path_writes_the_same_partition(tmp_path, monkeypatch):
    """Through `extract_periods` with a client handing JSON bodies to `decode`: the decoded pages give the
    same Parquet object as the dict pages (decoder switched off), and the decoder did take them."""
    from fc_assets.resources.storage import Lake

    orders = make_orders(D1, 250, items=3)
    for o in orders:
        o["attributes"] = [{"name": "channel", "type": "STRING", "value": f'w"{o["id"]}'}]
    taken: list[bool] = []
    real = json_pages.decoder_for(ORDERS, "orders")

    def counting(body: bytes):
        page = real(body)
        taken.append(page is not None)
        return page

    def run(decoder) -> pa.Table:
        import pyarrow.parquet as pq

        monkeypatch.setattr(json_pages, "decoder_for", lambda spec, path: decoder)
        lake = Lake(f"file://{tmp_path}/lake-{decoder is None}")
        window = Window(D1, D1 + timedelta(days=1))
        client = FakeFluent({"orders": orders})
        (result,) = extract_periods(ORDERS, [window], client=client, lake=lake, page_size=40)
        return pq.read_table(lake.path(result.key))

    fast = run(counting)
    old = run(None)
    assert taken and all(taken)
    assert fast.num_rows == 250 and fast.equals(old)
