"""A JSON value as the text a column holds: strings as they are, `true`/`false`, numbers as the JSONL reader's
orjson reads them (an integer's digits, a fraction or exponent as the shortest text of its double: `3.50` and
`3.5` are `3.5`, `1E2` is `100.0`), arrays and objects as JSON text with their numbers so. ijson (JSON arrays)
reads a number as a `Decimal` keeping its text; it is written as the double orjson would have read, so a
product's values are the same text in a JSON and a JSONL file (else the delta sees a change when a feed's
files move from one format to the other). Its own module: the record flattener (records.py) and the attribute list reader
(attribute_list.py) both write values so, and the second is used by the first."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import orjson


def scalar_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return str(_double(value))
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value, default=_default).decode()


def _double(value: Decimal) -> float | Decimal:
    """The double orjson reads for the number (an out-of-range one, which orjson refuses, keeps its text)."""
    f = float(value)
    return f if math.isfinite(f) else value


def _default(value: Any) -> Any:
    """A JSON array's number read by ijson (a `Decimal`) as the number orjson would have read, not as text;
    anything else as its text."""
    if isinstance(value, Decimal):
        f = _double(value)
        return f if isinstance(f, float) else orjson.Fragment(str(value).encode())
    return str(value)
