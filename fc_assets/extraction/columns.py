"""Columns of an extracted entity: where each value sits in a GraphQL node and its Arrow type.

A `Column` maps a dotted path in the node (`customer.primaryEmail`) to a Parquet column (`customer_email`).
Nested lists become `list<struct>` columns whose children are Columns again, relative to each element;
`connection=True` marks a Relay connection (`items { edges { node } }`), whose nodes are the elements.
Pages are turned into Arrow record batches column by column, so nothing keeps the window as Python dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

STRING = pa.string()
INT = pa.int64()
FLOAT = pa.float64()
BOOL = pa.bool_()
TIMESTAMP = pa.timestamp("us", tz="UTC")
"""Fluent's `DateTime` (ISO-8601, UTC). Microseconds so no value is rounded; every engine reads it."""


@dataclass(frozen=True)
class Column:
    """One output column. `json=True` stores a GraphQL `Json` value as its JSON text."""

    name: str
    path: str
    type: pa.DataType = STRING
    nullable: bool = True
    json: bool = False
    children: tuple[Column, ...] = ()
    connection: bool = False

    @property
    def arrow_type(self) -> pa.DataType:
        if not self.children:
            return self.type
        return pa.list_(pa.struct([c.field for c in self.children]))

    @property
    def field(self) -> pa.Field:
        # Arrow fields stay nullable: a null where the declaration says `nullable=False` is reported by the
        # pandera check (count + sample), not a crash halfway through a page.
        return pa.field(self.name, self.arrow_type)

    @property
    def is_nested(self) -> bool:
        return bool(self.children)


def nested(name: str, path: str, children: Sequence[Column], *, connection: bool = False) -> Column:
    """A `list<struct>` column: a plain GraphQL list (`attributes`) or a connection (`items`)."""
    return Column(name, path, children=tuple(children), connection=connection)


def attributes_column(path: str = "attributes") -> Column:
    """Fluent's `[Attribute]` (`name`, `type`, `value: Json`), the same on every entity."""
    return nested(
        "attributes",
        path,
        [Column("name", "name"), Column("type", "type"), Column("value", "value", json=True)],
    )


def arrow_schema(columns: Sequence[Column]) -> pa.Schema:
    return pa.schema([c.field for c in columns])


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
        return pa.array([None if v is None else orjson.dumps(v).decode() for v in values], STRING)
    if column.type == TIMESTAMP:
        return pc.cast(pa.array(values, STRING), TIMESTAMP)
    return pa.array(values, column.type)


class BatchBuilder:
    """Turns lists of GraphQL nodes into record batches of a fixed schema, one column at a time (timestamps
    are parsed by Arrow's ISO-8601 cast, nested lists of all nodes are built in one pass)."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.columns = tuple(columns)
        self.schema = arrow_schema(columns)

    def build(self, nodes: Sequence[dict[str, Any]]) -> pa.RecordBatch:
        cache: dict[tuple[str, ...], list[Any]] = {}
        return pa.RecordBatch.from_arrays([_array(c, nodes, cache) for c in self.columns], schema=self.schema)
