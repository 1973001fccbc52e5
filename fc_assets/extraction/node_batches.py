"""GraphQL nodes to Arrow record batches, for the columns an entity declares (`columns.py`).

Pages are turned into record batches as they arrive (Arrow converts the nodes in one call where no JSON text
is involved, see `BatchBuilder`), so nothing keeps the window as Python dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from fc_assets.extraction.columns import FLOAT, TIMESTAMP, Column, arrow_schema

STRING_TYPE = pa.string()
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")


def _values(
    path: tuple[str, ...], nodes: Sequence[dict[str, Any] | None], cache: dict[tuple[str, ...], list[Any]]
) -> list[Any]:
    """The value at `path` of every node (None where a step is missing or null); prefixes shared by several
    columns (`fulfilmentChoice.deliveryAddress.*`) are walked once per batch."""
    if path in cache:
        return cache[path]
    parent = _values(path[:-1], nodes, cache) if len(path) > 1 else nodes
    key = path[-1]
    values = cache[path] = [None if v is None else v.get(key) for v in parent]
    return values


def _array(
    column: Column,
    nodes: Sequence[dict[str, Any] | None],
    cache: dict[tuple[str, ...], list[Any]] | None = None,
) -> pa.Array:
    """One column for all nodes, built column-wise (nested elements of all nodes in one pass)."""
    values = _values(tuple(column.path.split(".")), nodes, {} if cache is None else cache)
    if column.children:
        mask = [v is None for v in values]
        offsets, elements = [0], []
        for v in values:
            if v is not None:
                if column.connection:
                    elements.extend(e.get("node") for e in v.get("edges") or ())
                else:
                    elements.extend(v)
            offsets.append(len(elements))
        struct = pa.StructArray.from_arrays(
            [_array(c, elements) for c in column.children],
            fields=[c.field for c in column.children],
            mask=pa.array([e is None for e in elements], pa.bool_()),
        )
        return pa.ListArray.from_arrays(
            pa.array(offsets, pa.int32()), struct, type=column.arrow_type, mask=pa.array(mask, pa.bool_())
        )
    if column.json:
        return pa.array([None if v is None else orjson.dumps(v).decode() for v in values], STRING_TYPE)
    if column.type == TIMESTAMP:
        return pc.cast(pa.array(values, STRING_TYPE), TIMESTAMP_TYPE)
    return pa.array(values, column.arrow_type)


_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'
"""What orjson escapes in a string: control characters, the quote and the backslash (nothing else)."""


def _json_text(strings: pa.Array) -> pa.Array:
    """The JSON text of each string (`orjson.dumps(s)`, as `_array` writes a JSON column): the string in
    quotes when nothing in it needs escaping, else orjson's own text of it."""
    if not pc.any(pc.match_substring_regex(strings, _NEEDS_ESCAPE)).as_py():
        return pc.binary_join_element_wise('"', strings, '"', "")
    return pa.array(
        [None if s is None else orjson.dumps(s).decode() for s in strings.to_pylist()], STRING_TYPE
    )


def _converts_natively(column: Column) -> bool:
    """Whether Arrow's own conversion of the node can produce the column (a JSON text needs orjson)."""
    return not column.json and all(_converts_natively(c) for c in column.children)


PAGE_INFO_TYPE = pa.struct([pa.field("hasNextPage", pa.bool_())])


def _source_type(column: Column, text_json: bool = False, page_info: bool = False) -> pa.DataType:
    """The type of the column's value as it sits in the GraphQL node (timestamps are ISO strings there).

    `text_json`: a JSON column is a string (`json_pages` reads only string values, see `_json_text`);
    `page_info`: a connection keeps its `pageInfo { hasNextPage }` (for nested connections that may go on).
    """
    if column.children:
        element = _node_type(column.children, text_json=text_json)
        if column.connection:
            fields = [pa.field("edges", pa.list_(pa.struct([pa.field("node", element)])))]
            if page_info:
                fields.append(pa.field("pageInfo", PAGE_INFO_TYPE))
            return pa.struct(fields)
        return pa.list_(element)
    return STRING_TYPE if column.type == TIMESTAMP or (text_json and column.json) else column.arrow_type


def _node_type(
    columns: Sequence[Column], *, text_json: bool = False, paged: frozenset[str] = frozenset()
) -> pa.StructType:
    """A struct type shaped like the GraphQL node holding `columns` (dotted paths become nested structs);
    `paged`: top-level connections whose `pageInfo.hasNextPage` the type keeps (declared as columns or not)."""
    tree: dict[str, Any] = {}
    for column in columns:
        *parents, leaf = column.path.split(".")
        level = tree
        for step in parents:
            level = level.setdefault(step, {})
        level[leaf] = _source_type(column, text_json, column.path in paged)
    for name in paged:
        level = tree.setdefault(name, {})
        if isinstance(level, dict):
            level["pageInfo"] = PAGE_INFO_TYPE
        elif "pageInfo" not in level.names:  # a connection column: `page_info` added it above
            raise ValueError(f"{name!r} is not a connection, it has no pageInfo")

    def to_type(level: dict[str, Any]) -> pa.StructType:
        return pa.struct([(k, to_type(v) if isinstance(v, dict) else v) for k, v in level.items()])

    return to_type(tree)


def _native_columns(columns: Sequence[Column]) -> tuple[Column, ...]:
    """The columns converted through Arrow: no JSON inside, and their paths neither repeat nor nest in each
    other (`a` and `a.b` cannot both be a leaf of one struct type); the rest stay on the Python path."""
    chosen: list[Column] = []
    for column in columns:
        if not _converts_natively(column):
            continue
        path = column.path.split(".")
        if any(
            other[: len(path)] == path or path[: len(other)] == other
            for other in (c.path.split(".") for c in chosen)
        ):
            continue
        chosen.append(column)
    return tuple(chosen)


def _fields(source: pa.StructArray, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], pa.Array]:
    """Every field of `source`, nested structs included, by path. `StructArray.flatten` merges the parent's
    validity into each child, so a field is null wherever a step of its path is null (as `_values` does)."""
    out: dict[tuple[str, ...], pa.Array] = {}
    for field, child in zip(source.type, source.flatten(), strict=True):
        path = (*prefix, field.name)
        out[path] = child
        if pa.types.is_struct(child.type):
            out.update(_fields(child, path))
    return out


def _from_source(column: Column, fields: dict[tuple[str, ...], pa.Array]) -> pa.Array:
    """The column out of Arrow's conversion of the nodes (`fields` of a struct array of `_node_type`), or
    out of Arrow's parse of the page body (`json_pages`).

    A nested column's elements are the flattened lists (a connection's edge nodes), its offsets their
    lengths; a null `edges` is an empty list and a null connection or list a null list, as in `_array`.
    """
    path = tuple(column.path.split("."))
    value = fields[path]
    if not column.children:
        if column.json:  # only from `json_pages`: the value was a JSON string
            return _json_text(value)
        return pc.cast(value, TIMESTAMP_TYPE) if column.type == TIMESTAMP else value
    lists = fields[(*path, "edges")] if column.connection else value
    elements = lists.flatten()
    if column.connection:
        elements = elements.flatten()[0]  # the edges' `node`, null where the edge is null
    lengths = pc.fill_null(pc.list_value_length(lists), 0)
    offsets = pa.concat_arrays([pa.array([0], pa.int32()), pc.cumulative_sum(lengths).cast(pa.int32())])
    children = _fields(elements)
    struct = pa.StructArray.from_arrays(
        [_from_source(c, children) for c in column.children],
        fields=[c.field for c in column.children],
        mask=elements.is_null(),
    )
    return pa.ListArray.from_arrays(offsets, struct, type=column.arrow_type, mask=value.is_null())


class _Inexact(Exception):
    """A float Arrow's JSON parser read that `pa.array` of the orjson value could read otherwise."""


def _float_leaves(array: pa.Array) -> list[pa.Array]:
    kind = array.type
    if pa.types.is_list(kind):
        return _float_leaves(array.flatten())
    if pa.types.is_struct(kind):
        return [leaf for child in array.flatten() for leaf in _float_leaves(child)]
    return [array] if pa.types.is_float64(kind) and array.null_count < len(array) else []


def _floats_exact(arrays: Sequence[pa.Array]) -> bool:
    """Whether every float of `arrays` (nested ones too) reads the same through orjson and `pa.array`.

    Arrow's parser reads every JSON number of a double column as a double; orjson reads an integer literal
    as an int, which `pa.array` refuses beyond 2**53 and turns `-0` into `0.0`. So a page with a float
    of magnitude >= 2**53 (or NaN/inf, refused before parsing anyway) or a negative zero is left to the
    dict path, whatever its literal was. Prices never come close.
    """
    leaves = [leaf for array in arrays for leaf in _float_leaves(array)]
    if not leaves:
        return True
    values = pa.concat_arrays(leaves) if len(leaves) > 1 else leaves[0]
    if pc.all(pc.less(pc.abs(values), 2.0**53)).as_py() is not True:
        return False
    negative_zero = pc.and_(pc.equal(values, 0.0), pc.less(values.view(pa.int64()), 0))
    return not pc.any(negative_zero).as_py()


def _has_float(column: Column) -> bool:
    return column.type == FLOAT or any(_has_float(c) for c in column.children)


@dataclass(frozen=True, slots=True)
class ArrowNodes:
    """The nodes of one page as Arrow parsed its body (`json_pages.PageDecoder`), instead of dicts.

    `struct` is shaped by `_node_type(columns, text_json=True)`; `body` and the connection `path` are kept
    so that a page the Arrow conversion does not strictly recognise goes the dict path (`dicts`).
    """

    struct: pa.StructArray
    body: bytes
    path: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.struct)

    def dicts(self) -> list[dict[str, Any]]:
        """The same nodes as orjson reads them (the client's `_page_of` would have returned these)."""
        conn = orjson.loads(self.body)["data"]
        for step in self.path:
            conn = conn[step]
        return [edge["node"] for edge in conn["edges"]]


class BatchBuilder:
    """Turns lists of GraphQL nodes into record batches of a fixed schema.

    Columns without JSON values are converted by Arrow in one call: the nodes become one struct array of a
    type shaped like the node (`pa.array(nodes, type)`, C++ walking the dicts), whose fields are then taken
    out with `pc.struct_field`; timestamps are parsed by Arrow's ISO-8601 cast. JSON-text columns (and any
    list holding one) are built column-wise in Python (`_array`), nested lists of all nodes in one pass.

    Nodes Arrow parsed from the page body (`ArrowNodes`) skip the dicts: every column comes out of the
    struct array (JSON strings quoted as orjson would), unless a float is not exact (`_floats_exact`) or
    anything in the conversion fails; then the page is read with orjson and converted as above, so both
    give the same batch or the same error.
    """

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)
        self.schema = arrow_schema(columns)
        native = _native_columns(self.columns)
        self._native_type = _node_type(native) if native else None
        self._is_native = [any(c is n for n in native) for c in self.columns]
        self._with_floats = [_has_float(c) for c in self.columns]

    def build(self, nodes: Sequence[dict[str, Any]] | ArrowNodes) -> pa.RecordBatch:
        if isinstance(nodes, ArrowNodes):
            try:
                return self._from_arrow(nodes)
            except (_Inexact, pa.ArrowException, KeyError, TypeError, ValueError):
                nodes = nodes.dicts()
        cache: dict[tuple[str, ...], list[Any]] = {}
        fields = _fields(pa.array(nodes, self._native_type)) if self._native_type is not None else {}
        arrays = [
            _from_source(c, fields) if native else _array(c, nodes, cache)
            for c, native in zip(self.columns, self._is_native, strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def _from_arrow(self, nodes: ArrowNodes) -> pa.RecordBatch:
        fields = _fields(nodes.struct)
        arrays = [_from_source(c, fields) for c in self.columns]
        if not _floats_exact([a for a, floats in zip(arrays, self._with_floats, strict=True) if floats]):
            raise _Inexact
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)
