"""GraphQL page bodies parsed straight into Arrow (`pyarrow.json`), so a page never becomes Python dicts.

Why: at 20 ms latency a one-day `orders` extraction is CPU-bound (sandbox and client share the cores), and
~half of the client's CPU per page went to `orjson.loads` of the body, the garbage collector walking the
resulting dicts, and `pa.array(nodes)` walking them again — all under the GIL. Arrow's JSON reader parses
the body in C++ with the GIL released, into a struct array shaped like the entity's columns
(`node_batches._node_type(columns, text_json=True)`), which `BatchBuilder` then takes apart.

The fast path takes only what it strictly recognises; anything else returns None and the client reads the
body the old way (orjson, `errors` handling, `_page_of`'s checks, nested pages, the dict conversion), so its
errors and results are the old ones:

- the body is one JSON object (starts with `{` — pyarrow 26 crashes the process on a body that is just
  `null` — and parses to one row), valid UTF-8, without NaN/Infinity tokens (Arrow's parser takes them,
  orjson does not) and without GraphQL `errors` (typed null in the schema: any other value, `[]`
  included, fails the parse);
- every value of a declared field has the declared JSON type (Arrow refuses a number for a string, a
  string for a number, an object for a list, duplicate keys, ...); JSON columns (`attributes.value`) hold
  strings — a page with an object or number there goes the dict path (correct, not faster);
- the connection, its `edges`, every edge and node, `pageInfo.hasNextPage` are present and not null;
- no nested connection (`EntitySpec.nested`) has `hasNextPage` other than false: those pages need
  `fetch.complete_nested`, which works on dicts.

`BatchBuilder.build(ArrowNodes)` then also hands the page to the dict path when a float is not exactly what
orjson + `pa.array` read (`node_batches._floats_exact`) or any Arrow call fails (e.g. a bad timestamp),
so the error is the old one too. Fields the columns do not declare are skipped, hence the one known
difference: orjson refuses JSON nested more than 1024 deep, Arrow reads past it; such a body fails the
old path ("not JSON") where the fast path reads its declared fields. The differential test
(`test_json_pages.py`) compares both paths on every entity's sandbox pages and hand-written odd ones.

Measured (2026-12-02, 2 cores at load ~11, 20,000 orders in 204 pages, 4 streams, in-process thread CPU):
parse + conversion 3.9-4.7 ms a page (2.6-3.2 of it in the GIL-free parse) against 5.5-6.5 ms for orjson,
`_page_of`, `complete_nested` and `build`; the extraction's CPU 2.2-2.8 s against 2.8-3.4 s.
"""

from __future__ import annotations

from functools import lru_cache

import pyarrow as pa
import pyarrow.json as pj

from fc_assets.extraction.columns import Column
from fc_assets.extraction.entities import EntitySpec
from fc_assets.extraction.node_batches import PAGE_INFO_TYPE, STRING_TYPE, ArrowNodes, _node_type
from fc_assets.resources.fluent import DecodedPage


def _non_finite(body: bytes) -> bool:
    """Whether `NaN` or `Inf(inity)` may stand where a value starts (after `:`, `[` or `,`, whitespace and
    a `-`): Arrow's parser reads them, orjson (and JSON) do not. Inside a string it may be a false alarm,
    which only sends the page the old way; the letters in base64 cursors are not preceded like that."""
    if body.count(b"NaN") + body.count(b"Inf") == body.count(b'"pageInfo"'):  # the usual page: no look
        return False
    for token in (b"NaN", b"Inf"):
        at = body.find(token)
        while at >= 0:
            i = at - 1
            while i >= 0 and body[i] in _WHITESPACE_OR_MINUS:
                i -= 1
            if i >= 0 and body[i] in _VALUE_START:
                return True
            at = body.find(token, at + 1)
    return False


_WHITESPACE_OR_MINUS = frozenset(b" \t\r\n-")
_VALUE_START = frozenset(b":[,")


def _overlapping(columns: tuple[Column, ...]) -> bool:
    """Whether two columns' paths are equal or one is a prefix of the other (`a` and `a.b`): one struct
    type cannot hold both; `BatchBuilder` handles that on the dict path."""
    paths = [c.path.split(".") for c in columns]
    for i, a in enumerate(paths):
        for b in paths[i + 1 :]:
            if a[: len(b)] == b or b[: len(a)] == a:
                return True
    return any(_overlapping(c.children) for c in columns)


class PageDecoder:
    """Parses page bodies of one query's connection (`connection_path`) into `DecodedPage`s, or None."""

    def __init__(
        self, columns: tuple[Column, ...], connection_path: str, paged: frozenset[str] = frozenset()
    ) -> None:
        self.path = tuple(connection_path.split("."))
        self.paged = paged
        node = _node_type(columns, text_json=True, paged=paged)
        edge = pa.struct([pa.field("cursor", STRING_TYPE), pa.field("node", node)])
        conn: pa.DataType = pa.struct(
            [pa.field("edges", pa.list_(edge)), pa.field("pageInfo", PAGE_INFO_TYPE)]
        )
        for step in reversed(self.path):
            conn = pa.struct([pa.field(step, conn)])
        schema = pa.schema([pa.field("data", conn), pa.field("errors", pa.null())])
        self._options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")

    def __call__(self, body: bytes) -> DecodedPage | None:
        if not body.startswith(b"{"):
            return None
        if _non_finite(body):
            return None
        if not body.isascii():
            try:
                body.decode("utf-8")
            except UnicodeDecodeError:
                return None
        try:
            table = pj.read_json(
                pa.py_buffer(body),
                read_options=pj.ReadOptions(use_threads=False, block_size=len(body) + 1),
                parse_options=self._options,
            )
        except pa.ArrowException:
            return None
        if table.num_rows != 1:
            return None
        conn = table.column("data").combine_chunks()
        for step in self.path:
            if conn.null_count:
                return None
            conn = conn.field(step)
        if conn.null_count:
            return None
        edges, page_info = conn.field("edges"), conn.field("pageInfo")
        if edges.null_count or page_info.null_count or page_info.field("hasNextPage").null_count:
            return None
        edge_structs = edges.flatten()
        if edge_structs.null_count:
            return None
        nodes = edge_structs.field("node")
        if nodes.null_count or not self._nested_complete(nodes):
            return None
        cursors = edge_structs.field("cursor")
        return DecodedPage(
            0,
            ArrowNodes(nodes, body, self.path),
            page_info.field("hasNextPage")[0].as_py(),
            cursors[len(cursors) - 1].as_py() if len(cursors) else None,
        )

    def _nested_complete(self, nodes: pa.StructArray) -> bool:
        """Whether every nested connection that is there says `hasNextPage: false` (as `complete_nested`
        reads it: a null connection has no children; a missing or null flag cannot tell)."""
        import pyarrow.compute as pc

        for name in self.paged:
            conn = nodes.field(name)
            more = conn.flatten()[conn.type.get_field_index("pageInfo")].flatten()[0]  # validity merged
            done = pc.or_kleene(conn.is_null(), pc.invert(more))
            if pc.all(done, skip_nulls=False, min_count=0).as_py() is not True:
                return False
        return True


@lru_cache(maxsize=64)
def decoder_for(spec: EntitySpec, connection_path: str) -> PageDecoder | None:
    """The decoder of `spec`'s pages at `connection_path`, or None when its columns cannot all be read
    from one parse (overlapping paths)."""
    if _overlapping(spec.columns):
        return None
    try:
        return PageDecoder(spec.columns, connection_path, frozenset(conn.field for conn in spec.nested))
    except ValueError:  # a nested connection's field is declared as a plain column
        return None
