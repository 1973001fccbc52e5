"""Columns of an extracted entity: where each value sits in a GraphQL node and its Arrow type.

A `Column` maps a dotted path in the node (`customer.primaryEmail`) to a Parquet column (`customer_email`).
Nested lists become `list<struct>` columns whose children are Columns again, relative to each element;
`connection=True` marks a Relay connection (`items { edges { node } }`), whose nodes are the elements.
Pages are turned into Arrow record batches column by column, so nothing keeps the window as Python dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import pyarrow as pa

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


def _convert(column: Column) -> Callable[[Any], Any]:
    if column.children:
        element = _struct_builder(column.children)
        if column.connection:
            return lambda conn: (
                None if conn is None else [element(e["node"]) for e in conn.get("edges") or ()]
            )
        return lambda values: None if values is None else [element(v) for v in values if v is not None]
    if column.json:
        return lambda v: None if v is None else orjson.dumps(v).decode()
    if column.type == TIMESTAMP:
        return lambda v: None if v is None else datetime.fromisoformat(v)
    return lambda v: v


def _getter(column: Column) -> Callable[[dict[str, Any]], Any]:
    keys = column.path.split(".")
    convert = _convert(column)
    if len(keys) == 1:
        key = keys[0]
        return lambda node: convert(node.get(key))

    def get(node: dict[str, Any]) -> Any:
        value: Any = node
        for key in keys:
            if value is None:
                return None
            value = value.get(key)
        return convert(value)

    return get


def _struct_builder(children: Sequence[Column]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    getters = [(c.name, _getter(c)) for c in children]
    return lambda node: {name: get(node) for name, get in getters}


class BatchBuilder:
    """Turns lists of GraphQL nodes into record batches of a fixed schema (getters compiled once)."""

    def __init__(self, columns: Sequence[Column]) -> None:
        self.schema = arrow_schema(columns)
        self._getters = [_getter(c) for c in columns]

    def build(self, nodes: Sequence[dict[str, Any]]) -> pa.RecordBatch:
        arrays = [
            pa.array([get(n) for n in nodes], type=f.type)
            for get, f in zip(self._getters, self.schema, strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)
