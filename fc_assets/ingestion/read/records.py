"""Python records (from JSON, JSONL or XML) to Arrow batches of text columns.

Self-describing formats carry nested values; they are flattened so that mapping sees one column per leaf:
`{"location": {"ref": "L1"}}` becomes the column `location.ref` (which matches a field alias such as
`locationRef`, since alias matching ignores case and punctuation). Scalars keep their text (`00123` stays
`00123`, `3.50` stays `3.50`, `true` stays `true`), and arrays become JSON text, which list fields split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from fc_assets.ingestion.read.attribute_list import Typed, fold_list, one_name_one_value
from fc_assets.ingestion.read.folded import from_records
from fc_assets.ingestion.read.source_keys import ATTRIBUTE, COLUMN, LIST
from fc_assets.ingestion.read.value_text import scalar_text
from fc_assets.ingestion.spec import ERROR, FOLDED, RAW, ROW, TECHNICAL

if TYPE_CHECKING:
    from fc_assets.ingestion.read.source_keys import SourceKeys


# cells (distinct keys x records) in one chunk beyond which a reader refuses the file: a chunk holds a
# column per key, padded with nulls, so keys that keep changing grow it as their square (1,024 columns of
# 65,536 rows: ~270 MB of offsets alone); a feed's own columns are a few dozen (its attribute keys, however
# many, are folded into one: source_keys.py)
MAX_CELLS = 1 << 26
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


class TooManyColumns(ValueError):
    """A chunk would hold more than MAX_CELLS cells (the readers' guards make the file unreadable with it)."""


def check_columns(columns: int, rows: int, first_row: int) -> None:
    """Refuse a chunk of `rows` records from `first_row` on with `columns` distinct keys past MAX_CELLS."""
    if columns * rows > MAX_CELLS:
        raise TooManyColumns(
            f"the {rows:,} records from row {first_row} on carry {columns:,} distinct keys: more than "
            f"{MAX_CELLS:,} cells (keys x records) in a chunk, refused (memory grows with each key)"
        )


def flatten_wanted(
    obj: dict[str, Any], keys: SourceKeys, prefix: str = "", out: dict[str, Any] | None = None, depth: int = 0
) -> dict[str, str | None]:
    """`flatten` keeping only the keys the feed can use (`keys.wanted`); a nested object no wanted key can
    be under is not flattened (`keys.descend`), only checked for its nesting: a record too deep is rejected
    whichever keys it nests under, as `flatten` rejects it."""
    if depth >= MAX_NESTING:
        raise TooDeep(f"nested deeper than {MAX_NESTING} levels")
    out = {} if out is None else out
    known = keys.known  # the usual key: one lookup (a call per key made the line reader ~1.25x slower)
    listed = None
    for key, value in obj.items():
        name = f"{prefix}{key}" if prefix else key
        if isinstance(value, dict):
            if keys.descend(name):
                flatten_wanted(value, keys, name + ".", out, depth + 1)
            else:
                _check_nesting(value, depth + 1)
        elif known.get(name):
            out[name] = scalar_text(value)
        elif kind := keys.wanted(name):  # (a new key, or Fluent's attribute list: never in `known`)
            if kind & LIST:
                listed = fold_list(name, value, keys, out, listed)  # (attribute_list.py)
                if kind == LIST:
                    continue
            out[name] = scalar_text(value)
        elif isinstance(value, list):
            _check_nesting(value, depth)
    return out if listed is None else one_name_one_value(out, keys, listed)


def _check_nesting(value: Any, depth: int) -> None:
    """Raise what `flatten` would on `value` at `depth` (TooDeep; orjson's TypeError for arrays nested over
    255 deep), without keeping anything of it."""
    if isinstance(value, dict):
        if depth >= MAX_NESTING:
            raise TooDeep(f"nested deeper than {MAX_NESTING} levels")
        for v in value.values():
            _check_nesting(v, depth + 1)
    elif isinstance(value, list):
        orjson.dumps(value, default=str)


class BatchBuilder:
    """Collects records and emits a `pa.RecordBatch` every `chunk_rows` (columns = union of keys; with
    `keys`, only those the feed can use, and attribute keys folded into one column when `keys.fold`: see
    source_keys.py)."""

    def __init__(self, chunk_rows: int, keys: SourceKeys | None = None) -> None:
        self.chunk_rows = max(1, chunk_rows)
        self._keys = None if keys is None or keys.everything else keys
        self._fold = self._keys is not None and self._keys.fold
        self._records: list[dict[str, str | None]] = []
        self._rows: list[int] = []
        self._errors: list[str | None] = []
        self._raws: list[str | None] = []
        self._counts: list[int] = []  # folding: per record its attribute entries
        self._names: list[str] = []
        self._values: list[str | None] = []
        self._typed: list[tuple[int, int, dict[str, str]]] = []  # … (entries from, to, types by key) of the
        # records whose attribute list gave types (attribute_list.Typed)

    def add(self, row: int, record: dict[str, str | None]) -> bool:
        if self._fold:
            record = self._folding(record)
        elif self._keys is not None:
            wanted, known = self._keys.wanted, self._keys.known
            record = {k: v for k, v in record.items() if known.get(k) or wanted(k)}
        self._records.append(record)
        self._rows.append(row)
        self._errors.append(None)
        self._raws.append(None)
        return len(self._records) >= self.chunk_rows

    def _folding(self, record: dict[str, str | None]) -> dict[str, str | None]:
        """The record's columns; its attribute keys and values appended to the folded entries."""
        wanted, known = self._keys.wanted, self._keys.known  # type: ignore[union-attr]
        kept: dict[str, str | None] = {}
        before = len(self._names)
        for k, v in record.items():
            kind = known.get(k) or wanted(k)
            if kind & COLUMN:
                kept[k] = v
            if kind & ATTRIBUTE:
                self._names.append(k)
                self._values.append(v)
        self._counts.append(len(self._names) - before)
        if type(record) is Typed:
            self._typed.append((before, len(self._names), record.types))
        return kept

    def _types(self) -> list[str | None] | None:
        """Per folded entry its type (null: the feed's), when a record of the chunk gave one, else None."""
        if not self._typed:
            return None
        types: list[str | None] = [None] * len(self._names)
        for start, end, given in self._typed:
            for i in range(start, end):
                types[i] = given.get(self._names[i])
        return types

    def add_error(self, row: int, reason: str, raw: str) -> bool:
        self._counts.append(0)
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
        if self._rows:
            check_columns(len(keys), len(records), self._rows[0])
        arrays = [pa.array([r.get(k) for r in records], pa.string()) for k in keys]
        names = list(keys)
        if self._fold:
            arrays.append(from_records(self._counts, self._names, self._values, self._types()))
            names.append(FOLDED)
            self._counts, self._names, self._values, self._typed = [], [], [], []
        arrays += [
            pa.array(self._rows, pa.int64()),
            pa.array(self._errors, pa.string()),
            pa.array(self._raws, pa.string()),
        ]
        batch = pa.RecordBatch.from_arrays(arrays, names=[*names, *TECHNICAL])
        self._records, self._rows, self._errors, self._raws = [], [], [], []
        return batch
