"""GraphQL nodes to Arrow record batches, for the columns an entity declares (`columns.py`).

Pages are turned into record batches as they arrive (Arrow converts the nodes in one call where no JSON text
is involved, see `BatchBuilder`), so nothing keeps the window as Python dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from fc_assets.extraction.columns import TIMESTAMP, Column, arrow_schema

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


def _converts_natively(column: Column) -> bool:
    """Whether Arrow's own conversion of the node can produce the column (a JSON text needs orjson)."""
    return not column.json and all(_converts_natively(c) for c in column.children)


def _source_type(column: Column) -> pa.DataType:
    """The type of the column's value as it sits in the GraphQL node (timestamps are ISO strings there)."""
    if column.children:
        element = _node_type(column.children)
        if column.connection:
            return pa.struct([pa.field("edges", pa.list_(pa.struct([pa.field("node", element)])))])
        return pa.list_(element)
    return STRING_TYPE if column.type == TIMESTAMP else column.arrow_type


def _node_type(columns: Sequence[Column]) -> pa.StructType:
    """A struct type shaped like the GraphQL node holding `columns` (dotted paths become nested structs)."""
    tree: dict[str, Any] = {}
    for column in columns:
        *parents, leaf = column.path.split(".")
        level = tree
        for step in parents:
            level = level.setdefault(step, {})
        level[leaf] = _source_type(column)

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
    """The column out of Arrow's conversion of the nodes (`fields` of a struct array of `_node_type`).

    A nested column's elements are the flattened lists (a connection's edge nodes), its offsets their
    lengths; a null `edges` is an empty list and a null connection or list a null list, as in `_array`.
    """
    path = tuple(column.path.split("."))
    value = fields[path]
    if not column.children:
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


class BatchBuilder:
    """Turns lists of GraphQL nodes into record batches of a fixed schema.

    Columns without JSON values are converted by Arrow in one call: the nodes become one struct array of a
    type shaped like the node (`pa.array(nodes, type)`, C++ walking the dicts), whose fields are then taken
    out with `pc.struct_field`; timestamps are parsed by Arrow's ISO-8601 cast. JSON-text columns (and any
    list holding one) are built column-wise in Python (`_array`), nested lists of all nodes in one pass.
    """

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)
        self.schema = arrow_schema(columns)
        native = _native_columns(self.columns)
        self._native_type = _node_type(native) if native else None
        self._is_native = [any(c is n for n in native) for c in self.columns]

    def build(self, nodes: Sequence[dict[str, Any]]) -> pa.RecordBatch:
        cache: dict[tuple[str, ...], list[Any]] = {}
        fields = _fields(pa.array(nodes, self._native_type)) if self._native_type is not None else {}
        arrays = [
            _from_source(c, fields) if native else _array(c, nodes, cache)
            for c, native in zip(self.columns, self._is_native, strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)
