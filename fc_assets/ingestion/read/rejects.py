"""The rejects file: one CSV line per failing field of a rejected row — `row`, `field`, `value`, `reason`.

`row` is the record's number as defined in readers.py (CSV: data record, header excluded; JSONL: line).
`field` is the canonical field (or `_record` when the record itself could not be parsed: a malformed
JSONL line, a CSV record with the wrong number of fields). `value` is the field's text as mapped (trimmed;
empty when missing), cut at 1,000 characters; a value a spreadsheet would run as a formula (starting with
`=`, `+`, `-`, `@`, tab or carriage return) gets a leading `'` (`=HYPERLINK(…)` is written `'=HYPERLINK(…)`),
except a plain number such as `-4`, which is written as it is. Lines are ordered by row, then by the feed's field order, then by reason.

Reject tables are built from vectorised masks per chunk and written with Arrow's CSV writer (RFC 4180
quoting, so values with commas, quotes or newlines survive), never row by row in Python.
"""

from __future__ import annotations

import os
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from fc_assets.ingestion.read.arrow_values import STRING, scalar

REJECT_SCHEMA = pa.schema(
    [("row", pa.int64()), ("field", pa.string()), ("value", pa.string()), ("reason", pa.string())]
)
RECORD_FIELD = "_record"
VALUE_CHARS = 1000


class RejectsWriter:
    """Writes reject lines to a path (created, parent directories too) or a binary stream (left open).
    The header is written at once, so a file with no rejects still gets an (empty) rejects file."""

    def __init__(self, sink: str | os.PathLike | BinaryIO) -> None:
        self.path: str | None = None
        self._own: BinaryIO | None = None
        if isinstance(sink, str | os.PathLike):
            self.path = os.fspath(sink)
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self._own = open(self.path, "wb")  # noqa: SIM115 - closed in close()
            sink = self._own
        self._writer = pcsv.CSVWriter(sink, REJECT_SCHEMA)
        self.lines = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table.select(REJECT_SCHEMA.names).cast(REJECT_SCHEMA))
            self.lines += table.num_rows

    def close(self) -> None:
        self._writer.close()
        if self._own is not None:
            self._own.close()
            self._own = None

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def reject_table(
    rows: pa.Array, field: str | pa.Array, values: pa.Array, reasons: str | pa.Array
) -> pa.Table:
    """Reject lines for aligned arrays (a single field/reason is repeated)."""
    n = len(rows)
    field_arr = _repeat(field, n) if isinstance(field, str) else field
    reason_arr = _repeat(reasons, n) if isinstance(reasons, str) else reasons
    values = pc.utf8_slice_codeunits(values.cast(pa.string()), 0, VALUE_CHARS)
    values = pc.fill_null(values, _EMPTY)
    values = neutralise_formulas(values)
    return pa.Table.from_arrays([rows.cast(pa.int64()), field_arr, values, reason_arr], schema=REJECT_SCHEMA)


def empty_rejects() -> pa.Table:
    return pa.Table.from_arrays([pa.nulls(0, f.type) for f in REJECT_SCHEMA], schema=REJECT_SCHEMA)


def _repeat(text: str, n: int) -> pa.Array:
    return pc.fill_null(pa.nulls(n, STRING), scalar(text, STRING))


_EMPTY = scalar("", STRING)
_QUOTE = scalar("'", STRING)
_FORMULA_START = r"^[=+\-@\t\r]"
_PLAIN_NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"


def neutralise_formulas(values: pa.Array) -> pa.Array:
    """Values a spreadsheet would evaluate (CSV formula injection) with a leading `'` (plain numbers kept)."""
    risky = pc.and_(
        pc.match_substring_regex(values, _FORMULA_START),
        pc.invert(pc.match_substring_regex(values, _PLAIN_NUMBER)),
    )
    if not pc.any(risky).as_py():
        return values
    return pc.if_else(risky, pc.binary_join_element_wise(_QUOTE, values, _EMPTY), values)
