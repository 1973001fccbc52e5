"""Python records (from JSON, JSONL or XML) to Arrow batches of text columns.

Self-describing formats carry nested values; they are flattened so that mapping sees one column per leaf:
`{"location": {"ref": "L1"}}` becomes the column `location.ref` (which matches a field alias such as
`locationRef`, since alias matching ignores case and punctuation). Scalars keep their text (`00123` stays
`00123`, `3.50` stays `3.50`, `true` stays `true`), and arrays become JSON text, which list fields split.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa

from fc_assets.ingestion.spec import ERROR, RAW, ROW, TECHNICAL


def scalar_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    return orjson.dumps(value, default=str).decode()


MAX_NESTING = 64  # objects within a record (the JSON readers refuse deeper documents before parsing)


class TooDeep(ValueError):
    """A record's objects are nested deeper than MAX_NESTING (the record is rejected)."""


def flatten(
    obj: dict[str, Any], prefix: str = "", out: dict[str, str | None] | None = None, depth: int = 0
) -> dict[str, str | None]:
    """Nested objects to dotted keys; arrays to JSON text; scalars to their text."""
    if depth >= MAX_NESTING:
        raise TooDeep(f"nested deeper than {MAX_NESTING} levels")
    out = {} if out is None else out
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flatten(value, name + ".", out, depth + 1)
        else:
            out[name] = scalar_text(value)
    return out


class BatchBuilder:
    """Collects records and emits a `pa.RecordBatch` every `chunk_rows` (columns = union of keys)."""

    def __init__(self, chunk_rows: int) -> None:
        self.chunk_rows = max(1, chunk_rows)
        self._records: list[dict[str, str | None]] = []
        self._rows: list[int] = []
        self._errors: list[str | None] = []
        self._raws: list[str | None] = []

    def add(self, row: int, record: dict[str, str | None]) -> bool:
        self._records.append(record)
        self._rows.append(row)
        self._errors.append(None)
        self._raws.append(None)
        return len(self._records) >= self.chunk_rows

    def add_error(self, row: int, reason: str, raw: str) -> bool:
        self._records.append({})
        self._rows.append(row)
        self._errors.append(reason)
        self._raws.append(raw[:1000])
        return len(self._records) >= self.chunk_rows

    def __len__(self) -> int:
        return len(self._records)

    def flush(self) -> pa.RecordBatch:
        records = self._records
        keys = dict.fromkeys(k for r in records for k in r)
        keys.pop(ROW, None), keys.pop(ERROR, None), keys.pop(RAW, None)
        arrays = [pa.array([r.get(k) for r in records], pa.string()) for k in keys]
        arrays += [
            pa.array(self._rows, pa.int64()),
            pa.array(self._errors, pa.string()),
            pa.array(self._raws, pa.string()),
        ]
        batch = pa.RecordBatch.from_arrays(arrays, names=[*keys, *TECHNICAL])
        self._records, self._rows, self._errors, self._raws = [], [], [], []
        return batch
