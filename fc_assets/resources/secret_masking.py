"""Keeping secrets out of what people read: resource reprs and third-party error texts.

Pydantic's `repr()`/`str()` of a `ConfigurableResource` print every field, and Dagster hands assets the
resolved resource (an `EnvVar` replaced by its value), so a resource's secret fields are masked here
whatever their value. Errors of libraries that echo their input (DuckDB's parser quotes the failing SQL)
are rewritten with `scrub` before they are raised on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

MASK = "'***'"


class _Masked:
    """Shows as `'***'` in a pydantic repr (a str would be quoted again)."""

    def __repr__(self) -> str:
        return MASK


def masked_repr_args(args: Iterable[tuple[str | None, Any]], secret_fields: frozenset[str]) -> Iterator:
    """Pydantic `__repr_args__` with the value of each set secret field replaced by `'***'`."""
    for name, value in args:
        yield name, (_Masked() if name in secret_fields and value is not None else value)


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every non-empty secret (and its SQL-quoted form) replaced by `***`."""
    for secret in secrets:
        if secret:
            text = text.replace(sql_quote(secret)[1:-1], "***").replace(secret, "***")
    return text


def sql_quote(value: str) -> str:
    """A SQL string literal of `value` (single quotes doubled): no value can end the literal early."""
    return "'" + value.replace("'", "''") + "'"
