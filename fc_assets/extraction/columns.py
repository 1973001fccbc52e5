"""Columns of an extracted entity: where each value sits in a GraphQL node and its Arrow type.

A `Column` maps a dotted path in the node (`customer.primaryEmail`) to a Parquet column (`customer_email`).
Nested lists become `list<struct>` columns whose children are Columns again, relative to each element;
`connection=True` marks a Relay connection (`items { edges { node } }`), whose nodes are the elements.
Types are named here and become Arrow types only when a schema is asked for, so declaring the entities
(at every code-location load) does not import pyarrow; `node_batches.py` turns pages into record batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

STRING = "string"
INT = "int64"
FLOAT = "double"
BOOL = "bool"
TIMESTAMP = "timestamp[us, tz=UTC]"
"""Fluent's `DateTime` (ISO-8601, UTC). Microseconds so no value is rounded; every engine reads it."""


def arrow_scalar_type(name: str) -> pa.DataType:
    """The Arrow type of a scalar type name above."""
    import pyarrow as pa

    if name == TIMESTAMP:
        return pa.timestamp("us", tz="UTC")
    return pa.type_for_alias(name)


@dataclass(frozen=True)
class Column:
    """One output column. `json=True` stores a GraphQL `Json` value as its JSON text."""

    name: str
    path: str
    type: str = STRING
    nullable: bool = True
    json: bool = False
    children: tuple[Column, ...] = ()
    connection: bool = False

    @property
    def type_name(self) -> str:
        """`str(self.arrow_type)` without importing pyarrow (the UI's column schema, built at load)."""
        if not self.children:
            return self.type
        return f"list<item: struct<{', '.join(f'{c.name}: {c.type_name}' for c in self.children)}>>"

    @property
    def arrow_type(self) -> pa.DataType:
        import pyarrow as pa

        if not self.children:
            return arrow_scalar_type(self.type)
        return pa.list_(pa.struct([c.field for c in self.children]))

    @property
    def field(self) -> pa.Field:
        import pyarrow as pa

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
    import pyarrow as pa

    return pa.schema([c.field for c in columns])
