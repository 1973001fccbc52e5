"""A JSON value as the text a column holds: scalars keep their text (`00123`, `3.50`, `true`), arrays and
objects become JSON text (numbers in it as written, whichever JSON reader parsed them). Its own module: the record flattener (records.py) and the attribute list reader
(attribute_list.py) both write values so, and the second is used by the first."""

from __future__ import annotations

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
    if isinstance(value, int | float | Decimal):
        return str(value)
    return orjson.dumps(value, default=_default).decode()


def _default(value: Any) -> Any:
    """A JSON array's number read by ijson (a `Decimal`) as the number it was, not as text; anything else
    as its text."""
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value).encode())
    return str(value)
