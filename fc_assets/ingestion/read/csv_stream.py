"""Arrow's streaming CSV reader with the row number of every record: the reader of any CSV file that is not
parsed in parallel blocks (csv_blocks.py), and what a block that cannot vouch for itself hands the rest of the
file to. Shared by readers.py and csv_blocks.py (which is why it is its own module: no import cycle).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from fc_assets.ingestion.read.arrow_values import empty_batch, numbers, strings
from fc_assets.ingestion.read.streams import ByteSource
from fc_assets.ingestion.read.text_arrays import is_ascii
from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets.ingestion.spec import ERROR, RAW, ROW

UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _csv_batches(
    src: ByteSource,
    encoding: str,
    header: list[str],
    delimiter: str,
    block: int,
    selection: list[str],
) -> Iterator[pa.RecordBatch]:
    """The file's records by Arrow's streaming reader on this thread (see `csv_blocks` for the parallel
    reader of a large local file, which falls back to this)."""
    with src.open() as stream:
        yield from csv_stream_batches(src.name, stream, encoding, header, delimiter, block, selection)


def csv_options(
    encoding: str,
    header: list[str],
    delimiter: str,
    block: int,
    columns: list[str] | None,
    on_invalid: Callable[[pcsv.InvalidRow], str],
    names: list[str] | None = None,
) -> tuple[pcsv.ReadOptions, pcsv.ParseOptions, pcsv.ConvertOptions]:
    """Arrow's options for parsing the file's records as text (`names`: of a part without the header)."""
    # (another encoding than UTF-8 is transcoded by Arrow on the fly, block by block)
    read = pcsv.ReadOptions(use_threads=False, block_size=block, encoding=encoding, column_names=names)
    parse = pcsv.ParseOptions(
        delimiter=delimiter, newlines_in_values=True, ignore_empty_lines=True, invalid_row_handler=on_invalid
    )
    convert = pcsv.ConvertOptions(
        column_types={c: pa.string() for c in header},
        include_columns=columns,
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        check_utf8=False,  # checked by `_utf8_check` where the chunk is mapped: a quarter of the parsing thread's time
    )
    return read, parse, convert


def invalid_collector(invalid: list[tuple[int, str, str]], offset: int) -> Callable[[pcsv.InvalidRow], str]:
    """An `invalid_row_handler` keeping (data row, reason, text) of records with a wrong field count; Arrow
    numbers records from 1 (blank lines not counted, single-threaded): data row = number + offset."""

    def on_invalid(row: pcsv.InvalidRow) -> str:
        invalid.append(
            (
                (row.number or 0) + offset,
                f"expected {row.expected_columns} fields, found {row.actual_columns}",
                row.text,
            )
        )
        return "skip"

    return on_invalid


def csv_stream_batches(
    name: str,
    stream: pa.NativeFile,
    encoding: str,
    header: list[str],
    delimiter: str,
    block: int,
    selection: list[str],
    *,
    before: int | None = None,
    held: list[tuple[int, str, str]] | None = None,
) -> Iterator[pa.RecordBatch]:
    """The records of `stream` numbered in file order: from its header line on, or (`before`: the number
    of data records before the stream's first) from a record boundary, without a header (`held`: the
    invalid records before it not yet handed on)."""
    columns = list(selection) or header
    invalid: list[tuple[int, str, str]] = list(held or [])  # (data row, reason, text): wrong field count
    # the header is Arrow's record 1 (data row = number - 1); without it the first record is data row before + 1
    on_invalid = invalid_collector(invalid, -1 if before is None else before)
    read, parse, convert = csv_options(
        encoding, header, delimiter, block, columns, on_invalid, None if before is None else header
    )
    # (the held records are those after the last good record handed on: numbering restarts at the first)
    next_row = 1 if before is None else min([r for r, _, _ in invalid], default=before + 1)
    try:
        reader = pcsv.open_csv(stream, read_options=read, parse_options=parse, convert_options=convert)
        for batch in reader:
            rows, bad, next_row = _number_rows(batch.num_rows, next_row, invalid)
            yield _with_rows(batch, rows, bad)
    except pa.ArrowInvalid as e:
        message = str(e)
        if before is not None:  # Arrow's record number as in the whole file (the header its record 1)
            message = re.sub(
                r"Row #(\d+)", lambda m: f"Row #{int(m.group(1)) + before + 1}", message, count=1
            )
        raise FileUnreadable(name, f"CSV cannot be parsed: {message}") from e
    if invalid:  # records with a wrong field count after the last good one
        yield _with_rows(
            empty_batch(pa.schema([(c, pa.string()) for c in columns])),
            np.zeros(0, np.int64),
            sorted(invalid),
        )
        invalid.clear()


def _utf8_check(name: str) -> Callable[[pa.RecordBatch], None]:
    """Raises FileUnreadable, naming the row and column, when a chunk's text is not UTF-8 (Arrow's CSV parser
    does not check it: see `_csv_batches`; text transcoded from another encoding passes)."""

    def verify(batch: pa.RecordBatch) -> None:
        for column, values in zip(batch.schema.names, batch.columns, strict=True):
            if column in (ROW, ERROR, RAW) or not pa.types.is_string(values.type) or is_ascii(values):
                continue
            try:
                values.validate(full=True)
            except pa.ArrowInvalid as e:
                at = re.search(r"string index (\d+)", str(e))
                row = batch.column(ROW)[int(at.group(1))].as_py() if at else None
                raise FileUnreadable(
                    name, f"CSV cannot be read: invalid UTF-8 in column {column!r}", row=row
                ) from e

    return verify


def _number_rows(n: int, next_row: int, invalid: list[tuple[int, str, str]]):
    """Row numbers of a batch of n good records starting at next_row, skipping the invalid ones."""
    if not invalid:
        return np.arange(next_row, next_row + n, dtype=np.int64), [], next_row + n
    skipped = {r for r, _, _ in invalid}
    end = next_row + n
    while True:
        k = sum(1 for r in skipped if next_row <= r < end)
        if end == next_row + n + k:
            break
        end = next_row + n + k
    rows = np.array([r for r in range(next_row, end) if r not in skipped], dtype=np.int64)
    bad = sorted(x for x in invalid if next_row <= x[0] < end)
    invalid[:] = [x for x in invalid if x[0] >= end]
    return rows, bad, end


def _with_rows(batch: pa.RecordBatch, rows: np.ndarray, bad: list[tuple[int, str, str]]) -> pa.RecordBatch:
    n = batch.num_rows
    arrays = [*batch.columns, numbers(rows, pa.int64()), pa.nulls(n, pa.string()), pa.nulls(n, pa.string())]
    out = pa.RecordBatch.from_arrays(arrays, names=[*batch.schema.names, ROW, ERROR, RAW])
    if not bad:
        return out
    extra = {c: pa.nulls(len(bad), pa.string()) for c in batch.schema.names}
    extra[ROW] = numbers(np.array([b[0] for b in bad], np.int64))
    extra[ERROR] = strings([b[1] for b in bad])
    extra[RAW] = strings([b[2][:1000] for b in bad])
    errors = pa.RecordBatch.from_arrays(list(extra.values()), schema=out.schema)
    # in row order: chunks are cut from the batches by position, and each chunk's rejects are ordered by row,
    # so a malformed record after its batch's good ones was cut into a later chunk than its neighbours and
    # written after the rejects of later rows (rejects.py: lines are ordered by row)
    order = np.argsort(np.concatenate([rows, np.array([b[0] for b in bad], np.int64)]), kind="stable")
    return pa.Table.from_batches([out, errors]).take(numbers(order)).combine_chunks().to_batches()[0]
