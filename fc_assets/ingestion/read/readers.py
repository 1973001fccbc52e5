"""Streaming readers: CSV, JSON, JSONL/NDJSON, XML and Parquet (each also gzipped) → Arrow record batches.

Every reader yields batches of the file's own columns (text for CSV/JSON/XML, the stored types for
Parquet) plus three technical columns: `_row` (the record's number, below), `_error` (why a record could
not be parsed, else null) and `_raw` (that record's text). `read_file` then maps them onto the feed's
canonical fields. With a feed's `SourceKeys` (`read_file`, `validate_file`) the JSON, JSONL and XML readers
keep only the columns the feed can use, so records with ever-changing keys do not grow a column per key
(source_keys.py), and fold a feed's attribute keys into one column (`FOLDED`, folded.py). Memory is bounded by the chunk size, never the file size: CSV is read by Arrow's
streaming reader in blocks (a large local file in larger blocks parsed on two threads: `csv_blocks`),
JSON arrays by ijson, JSONL line by line, XML by lxml's pull parser with elements cleared as they are done
(flat record files by `xml_fast`'s block tokeniser, ~20x faster, the same batches), Parquet by row
batches.

Row numbers (`_row`, what the rejects file reports), 1-based:

- CSV: the data record's number, header excluded — the first record after the header is row 1. Blank
  lines are not records, and a record whose quoted value spans several lines counts once, so with blank
  lines or embedded newlines the row number is not the physical line number (it is what a spreadsheet
  shows as "row − 1"). A record with the wrong number of fields is rejected with its row number.
- JSONL: the physical line number (blank lines are skipped but counted), so a malformed line is reported
  at the line an editor shows.
- JSON array: the element's position in the array. XML: the record element's ordinal. Parquet: the row.

Formats are detected from the extension (`.csv`/`.tsv`/`.txt`, `.json`, `.jsonl`/`.ndjson`, `.xml`,
`.parquet`/`.pq`, each optionally `.gz`), falling back to the content (`PAR1`, `<`, `[`, `{`), and can be
set per feed or per call. Gzip is recognised by its magic bytes.

Text is UTF-8; a UTF-16 or UTF-32 byte-order mark makes it that encoding: CSV is transcoded by Arrow, JSON
and JSONL by `ByteSource.utf8()` (streams.py) before the readers see a byte, XML by libxml2 (UTF-32 XML is
refused). Text looking like UTF-16 or UTF-32 without a mark is unreadable, saying so.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import orjson
import pyarrow as pa

from fc_assets.ingestion.read.arrow_values import empty_batch, numbers
from fc_assets.ingestion.read.attribute_list import BadAttributes
from fc_assets.ingestion.read.csv_stream import (  # noqa: F401 - also read from here
    UTF16_BOMS,
    _csv_batches,
    _utf8_check,
    csv_options,
    csv_stream_batches,
)
from fc_assets.ingestion.read.json_guard import MAX_DEPTH, JsonGuard
from fc_assets.ingestion.read.mapping import mapper_for
from fc_assets.ingestion.read.records import BatchBuilder, TooDeep, flatten, flatten_wanted, scalar_text
from fc_assets.ingestion.read.records_path import RecordsPath, empty_array, prefix_depth, resolve, shown
from fc_assets.ingestion.read.source_keys import SourceKeys
from fc_assets.ingestion.read.streams import HEAD_BYTES, ByteSource, Source, refuse_unmarked
from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets.ingestion.spec import ERROR, RAW, ROW, FormatOptions

if TYPE_CHECKING:
    from fc_assets.ingestion.feeds import Feed

FORMATS = ("csv", "json", "jsonl", "xml", "parquet")
EXTENSIONS = {
    "csv": "csv",
    "tsv": "csv",
    "txt": "csv",
    "json": "json",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "xml": "xml",
    "parquet": "parquet",
    "pq": "parquet",
}
DELIMITERS = (",", ";", "|", "\t")
BOM = b"\xef\xbb\xbf"
DEFAULT_CHUNK_ROWS = 65_536
# A CSV file of narrow rows (inventory: ~44 bytes) is cut into chunks of up to CSV_CHUNK_ROWS rows, as many as
# fit in CSV_CHUNK_BYTES of Arrow text, never fewer than DEFAULT_CHUNK_ROWS: each chunk costs ~50 kernel calls
# and two thread hand-offs, and at 10M inventory rows 131,072-row chunks checked in 1.21 s against 1.47 s
# (medians of 5, one parsing + one validating thread), peak RSS 251 vs 231 MB. Wide rows keep 65,536.
CSV_CHUNK_ROWS = 131_072
CSV_CHUNK_BYTES = 16 << 20
CSV_BLOCK_BYTES = 1 << 20
JSON_BUFFER_BYTES = 1 << 20  # ijson re-scans an unfinished token per refill: few, large refills
DETECT = FormatOptions()  # every option detected from the file


@dataclass
class RawFile:
    """A file opened for reading: its detected format, columns when known up front, and the batches."""

    name: str
    format: str
    columns: list[str] | None
    batches: Iterator[pa.RecordBatch | pa.Table]  # a table: a chunk of several batches (see `as_batch`)
    selection: list[str] = field(default_factory=list, repr=False)
    # JSON, JSONL, XML: the keys kept (those the feed can use) and the others, counted (source_keys.py)
    keys: SourceKeys | None = field(default=None, repr=False)
    # checks a chunk (as one batch) before it is mapped, on whichever thread maps it; raises FileUnreadable
    verify: Callable[[pa.RecordBatch], None] | None = field(default=None, repr=False)

    def only(self, columns: list[str]) -> None:
        """Parse only these of `columns` (before iterating). A CSV's other columns are then skipped by the
        parser instead of being converted to text — most of the work for a wide file."""
        if self.columns is not None:
            self.selection[:] = [c for c in self.columns if c in set(columns)]


def detect_format(src: ByteSource, explicit: str | None = None) -> str:
    if explicit:
        fmt = EXTENSIONS.get(explicit.lower().lstrip("."), explicit.lower())
        if fmt not in FORMATS:
            raise FileUnreadable(src.name, f"unknown format {explicit!r} (known: {', '.join(FORMATS)})")
        return fmt
    ext = os.path.splitext(src.base_name)[1].lower().lstrip(".")
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    head = (src.head if src.encoding == "utf-8" else src.utf8().head).lstrip(BOM + b" \t\r\n")
    if src.head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"<"):
        return "xml"
    if head.startswith(b"["):
        return "json"
    if head.startswith(b"{"):
        first = head.split(b"\n", 1)[0]
        try:
            orjson.loads(first)
            return "jsonl"
        except orjson.JSONDecodeError:
            return "json"
    return "csv"


def open_raw(
    source: Source | ByteSource,
    *,
    name: str | None = None,
    options: FormatOptions = DETECT,
    fmt: str | None = None,
    chunk_rows: int | None = None,
    keys: SourceKeys | None = None,
) -> RawFile:
    """The file's raw batches, `chunk_rows` at a time (None: DEFAULT_CHUNK_ROWS; for CSV by its rows' width,
    see CSV_CHUNK_ROWS). `keys`: the source keys a feed can use (`SourceKeys.for_feed`); the JSON,
    JSONL and XML readers keep only those (and count the others in it), else every key."""
    src = source if isinstance(source, ByteSource) else ByteSource(source, name)
    fmt = detect_format(src, fmt or options.format)
    if fmt in ("json", "jsonl"):  # UTF-16 or UTF-32 (by its byte-order mark) read as UTF-8
        src = src.utf8()
    columns: list[str] | None = None
    selection: list[str] = []
    if chunk_rows is not None and chunk_rows < 1:  # (0 cut no CSV chunk ever: an endless loop)
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    rows = chunk_rows or DEFAULT_CHUNK_ROWS
    try:
        if fmt == "csv":
            columns, batches = _read_csv(src, options, chunk_rows, selection)
        elif fmt == "parquet":
            batches = _read_parquet(src, rows)
        elif fmt == "json":
            batches = _read_json(src, options.json_records, rows, keys)
        elif fmt == "jsonl":
            batches = _read_jsonl(src, rows, keys)
        else:
            from fc_assets.ingestion.read.xml_records import read_xml  # (lxml: only for XML)

            batches = read_xml(src, options.xml_record, rows, keys, _max_value_bytes())
    except FileUnreadable:
        raise
    except Exception as e:  # noqa: BLE001 - see _guard
        raise _unreadable(src.name, fmt, e) from e
    verify = _utf8_check(src.name) if fmt == "csv" else None
    keys = keys if fmt in ("json", "jsonl", "xml") else None
    return RawFile(src.name, fmt, columns, _guard(src.name, fmt, batches), selection, keys, verify)


def _guard(name: str, fmt: str, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Every failure while reading as `FileUnreadable` naming the file: a truncated gzip stream, bytes that
    are not text, and whatever a parser raises on hostile input (`RecursionError`, orjson's `TypeError`,
    `_csv.Error`, `MemoryError`). A traceback would leave the file in the inbox to fail the same way on
    every retry; unreadable, it goes to `error/` with its reason."""
    try:
        yield from batches
    except FileUnreadable:
        raise
    except Exception as e:  # noqa: BLE001 - any reader failure is this file's, not the run's
        raise _unreadable(name, fmt, e) from e


def _unreadable(name: str, fmt: str, e: Exception) -> FileUnreadable:
    known = (pa.ArrowException, OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError)
    detail = str(e) if isinstance(e, known) else f"{type(e).__name__}: {e}"
    return FileUnreadable(name, f"{fmt.upper()} cannot be read: {detail}"[:2000])


def read_file(
    feed: Feed,
    source: str | os.PathLike | BinaryIO,
    *,
    name: str | None = None,
    fmt: str | None = None,
    chunk_rows: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """The file's records mapped onto the feed's canonical fields, as text (`text_schema(feed)`), with
    `_row`, `_error` and `_raw`. Nothing is validated or converted yet (see `validate.validate_file`)."""
    raw = open_feed_file(feed, source, name=name, fmt=fmt, chunk_rows=chunk_rows)
    return mapper_for(feed).map_file(raw)


def open_feed_file(
    feed: Feed,
    source: Source | ByteSource,
    *,
    name: str | None = None,
    fmt: str | None = None,
    chunk_rows: int | None = None,
) -> RawFile:
    """`open_raw` as a file of `feed`: its format options, and only the source keys it can use."""
    return open_raw(
        source,
        name=name,
        options=feed.format_options,
        fmt=fmt,
        chunk_rows=chunk_rows,
        keys=SourceKeys.for_feed(feed),
    )


# ---------------------------------------------------------------------------------------------- CSV


def sniff_delimiter(header: str) -> str:
    """The candidate that splits the header line most often (outside quotes); `,` on ties or none."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return best if counts[best] else ","


def _csv_encoding(src: ByteSource, options: FormatOptions) -> str:
    """The feed's encoding, or UTF-16 or UTF-32 when the file starts with its BOM (Excel's "Unicode text";
    Arrow transcodes it block by block). A UTF-8 feed's file looking like UTF-16 without a BOM: unreadable."""
    if src.encoding != "utf-8":
        return src.encoding[:6]  # utf-16, utf-32: codecs that read the BOM
    if codecs.lookup(options.encoding).name == "utf-8":
        refuse_unmarked(src.head, src.name)
    return options.encoding


def _csv_header(src: ByteSource, options: FormatOptions, encoding: str) -> tuple[list[str], str, int]:
    """(column names, delimiter, longest line in the head) from the head of the file."""
    head = src.head[len(BOM) :] if src.head.startswith(BOM) else src.head
    text = head.decode(encoding, errors="replace")
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        raise FileUnreadable(src.name, "empty file: no header row")
    start = text.index(first)
    if len(src.head) >= HEAD_BYTES and not any(c in text[start:] for c in "\r\n"):
        raise FileUnreadable(
            src.name, f"CSV header line longer than {HEAD_BYTES // 1024} KiB (no line end found): refused"
        )
    delimiter = options.delimiter or (
        "\t" if src.base_name.lower().endswith(".tsv") else sniff_delimiter(first)
    )
    try:
        header = next(csv.reader(io.StringIO(text[start:]), delimiter=delimiter))
    except csv.Error as e:
        raise FileUnreadable(src.name, f"CSV header cannot be parsed: {e}") from e
    return header, delimiter, max(len(line) for line in lines)


def _header_only(src: ByteSource, encoding: str) -> bool:
    if len(src.head) >= HEAD_BYTES:  # more follows
        return False
    text = src.head.decode(encoding, errors="replace").lstrip("\ufeff").strip()
    return "\n" not in text and "\r" not in text


def _read_csv(
    src: ByteSource, options: FormatOptions, chunk_rows: int | None, selection: list[str]
) -> tuple[list[str], Iterator]:
    encoding = _csv_encoding(src, options)
    header, delimiter, longest = _csv_header(src, options, encoding)
    # Arrow's streaming reader reads up to 32 blocks ahead of the parser, so the block size bounds memory
    # (32 x 1 MiB); small blocks are then joined into chunks of chunk_rows rows.
    block = max(CSV_BLOCK_BYTES, 16 * longest)
    if _header_only(src, encoding):  # a valid empty file (Arrow refuses one without a final newline)
        return header, iter(())
    from fc_assets.ingestion.read import csv_blocks  # (imports this module)

    if csv_blocks.parallel(src, encoding, header):
        batches = csv_blocks.csv_block_batches(src, header, delimiter, block, selection)
    else:
        batches = _csv_batches(src, encoding, header, delimiter, block, selection)
    return header, _coalesce(batches, chunk_rows)


def _coalesce(
    batches: Iterator[pa.RecordBatch], chunk_rows: int | None
) -> Iterator[pa.RecordBatch | pa.Table]:
    """Batches re-cut into chunks of exactly chunk_rows rows (the last may be smaller), without a copy: a
    chunk of several batches is a `pa.Table` of them, joined into one batch by `as_batch` where it is used
    (the mapper, on a worker thread: the copy stays off the parsing thread, the pipeline's slowest).
    `chunk_rows` None: by the width of the rows (`_chunk_rows`), the widest batch so far: wide rows after
    narrow ones get chunks of their own size, not of the narrow rows' (twice the bytes a chunk)."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    auto = chunk_rows is None
    for batch in batches:
        pending.append(batch)
        rows += batch.num_rows
        if auto and batch.num_rows:
            fit = _chunk_rows(batch)
            chunk_rows = fit if chunk_rows is None else min(chunk_rows, fit)
        while chunk_rows is not None and rows >= chunk_rows:
            joined = pa.Table.from_batches(pending)
            yield _chunk(joined.slice(0, chunk_rows))
            rest = joined.slice(chunk_rows)
            pending, rows = rest.to_batches(), rest.num_rows
    if pending:
        yield _chunk(pa.Table.from_batches(pending))


def _chunk_rows(batch: pa.RecordBatch) -> int:
    """CSV_CHUNK_ROWS for rows as narrow as CSV_CHUNK_BYTES allows, down to DEFAULT_CHUNK_ROWS for wide ones."""
    width = max(1, batch.nbytes // batch.num_rows)
    return max(DEFAULT_CHUNK_ROWS, min(CSV_CHUNK_ROWS, CSV_CHUNK_BYTES // width))


def _chunk(table: pa.Table) -> pa.RecordBatch | pa.Table:
    batches = table.to_batches()
    return batches[0] if len(batches) == 1 else table


# --------------------------------------------------------------------------------------- JSON, JSONL


def _records_path(
    src: ByteSource, explicit: str | tuple[str, ...] | None, list_key: str | None = None
) -> RecordsPath:
    """Where the records are (records_path.py): the feed's declared path, resolved against the document's
    keys; else `item` for an array, or the first array at the top level of an object — unless that array is
    the feed's attribute list (`list_key`, Fluent's `attributes`): the object is then one record (a product
    as Fluent exports it), prefix `""`. Depths are counted from the document's brackets, not the prefix's
    dots (a top-level key may hold one: `{"sap.export": [...]}`)."""
    if explicit:
        return resolve(src, explicit, _max_value_bytes())
    head = src.head.lstrip(BOM + b" \t\r\n")
    if head.startswith(b"["):
        return RecordsPath("item", 2)
    if head.startswith(b"{"):  # an object holding the records: the first array at its top level
        import ijson

        guarded = JsonGuard(io.BytesIO(src.head.lstrip(BOM)), src.name, _max_value_bytes(), partial=True)
        depth = before = 0  # containers open; those opened at the top level before the records' array
        try:
            events = ijson.parse(guarded)
            for prefix, event, _ in events:
                if event == "start_array" and depth == 1 and prefix:  # (a key "" is ijson's root prefix)
                    if list_key is not None and prefix.lower() == list_key:
                        return RecordsPath("", 1)
                    return RecordsPath(f"{prefix}.item", 3, True, before, empty_array(events))
                if event in ("start_map", "start_array"):
                    before += depth == 1
                    depth += 1
                elif event in ("end_map", "end_array"):
                    depth -= 1
        except ijson.JSONError:
            pass
    raise FileUnreadable(
        src.name,
        "JSON is neither an array of records nor an object holding one "
        "(set the feed's json_records to the records' path)",
    )


_record_depth = prefix_depth  # (a prefix's depth when each dot separates two keys)


def _max_value_bytes() -> int:
    from fc_assets.env_settings import env_setting

    return env_setting("max_value_bytes")


def _record_fields(value: object, keys: SourceKeys | None = None) -> dict[str, str | None] | str:
    """A parsed record's flat fields (with `keys`: those the feed can use), or why it cannot be one."""
    if not isinstance(value, dict):
        return "record is not a JSON object"
    try:
        return flatten(value) if keys is None or keys.everything else flatten_wanted(value, keys)
    except BadAttributes as e:  # (Fluent's attribute list, not in its shape: attribute_list.py)
        return str(e)
    except (TooDeep, TypeError, RecursionError):  # orjson refuses arrays nested > 255 deep (TypeError)
        return f"record nested deeper than {MAX_DEPTH} levels"


def _folding(keys: SourceKeys | None) -> SourceKeys | None:
    """`keys` for a `BatchBuilder` of records already filtered (`flatten_wanted`) when attribute keys are
    to be folded (`SourceKeys.fold`), else None."""
    return keys if keys is not None and keys.fold else None


def _read_json(
    src: ByteSource, explicit: str | tuple[str, ...] | None, chunk_rows: int, keys: SourceKeys | None = None
) -> Iterator[pa.RecordBatch]:
    import ijson  # (only for JSON)

    path = _records_path(src, explicit, None if keys is None else keys.list_key)
    builder = BatchBuilder(chunk_rows, _folding(keys))
    max_bytes = _max_value_bytes()
    too_long = f"record longer than {max_bytes:,} bytes (FC_MAX_VALUE_BYTES)"
    n = 0
    with src.open() as raw_stream:
        # depth, token length and record length are checked on the bytes before ijson sees them
        # (json_guard.py); a record too long reaches ijson as the guard's marker
        stream = JsonGuard(
            raw_stream, src.name, max_bytes, record_depth=path.depth, array_ordinal=path.ordinal
        )
        if src.head.startswith(BOM):
            stream.read(len(BOM))
        try:
            for value in ijson.items(stream, path.prefix, use_float=False, buf_size=JSON_BUFFER_BYTES):
                n += 1
                if value == stream.marker:
                    full = builder.add_error(n, too_long, "")
                else:
                    fields = _record_fields(value, keys)
                    full = (
                        builder.add(n, fields)
                        if isinstance(fields, dict)
                        else builder.add_error(n, fields, _text_or_null(value))
                    )
                if full:
                    yield builder.flush()
        except ijson.JSONError as e:
            raise FileUnreadable(src.name, f"invalid JSON after record {n}: {e}", row=n + 1) from e
    path.check_count(src.name, stream, n, explicit)
    if not n and not path.found:  # (not looked for beyond the head of a forward-only stream)
        raise FileUnreadable(
            src.name,
            path.wrong
            or f"no records at the feed's json_records {shown(explicit)}: it matches nothing in the file's "
            f"first {HEAD_BYTES // 1024} KiB, and no record was read after them (a stream read once: what the "
            "path holds there, if anything, is not looked at)",
        )
    if len(builder):
        yield builder.flush()


def _text_or_null(value: object) -> str:
    try:
        return scalar_text(value) or "null"
    except (TypeError, RecursionError):
        return "(nested too deep to show)"


def _lines(stream: pa.NativeFile, max_bytes: int) -> Iterator[bytes | None]:
    """The stream's lines (without `\n`), in linear time however long a line is; a line longer than
    `max_bytes` is yielded as None (and never held in memory whole)."""
    pieces: list[bytes] = []  # the current line's parts so far (joined once: no quadratic re-copying)
    size = 0
    while True:
        block = stream.read(1 << 20)
        if not block:
            break
        start = 0
        while (end := block.find(b"\n", start)) != -1:
            if size + end - start > max_bytes:
                yield None
            elif pieces:
                pieces.append(block[start:end])
                yield b"".join(pieces)
            else:
                yield block[start:end]
            pieces, size, start = [], 0, end + 1
        rest = len(block) - start
        if size + rest > max_bytes:
            pieces, size = [], max_bytes + 1  # too long already: keep counting, not the bytes
        elif rest:
            pieces.append(block[start:])
            size += rest
    if size > max_bytes:
        yield None
    elif pieces:
        yield b"".join(pieces)


EMPTY_JSONL = "one JSON object per line; a file without any is what a failed export leaves"


def _read_jsonl(src: ByteSource, chunk_rows: int, keys: SourceKeys | None = None) -> Iterator[pa.RecordBatch]:
    """Flat lines of string values by `jsonl_fast` in blocks; from its first block of anything else on,
    line by line (`_read_jsonl_lines`): the same batches either way."""
    from fc_assets.ingestion.read.jsonl_fast import Chained, fast_batches

    max_bytes = _max_value_bytes()
    lines = 0
    with src.open() as stream:
        fast = fast_batches(stream, chunk_rows, max_bytes, keys)
        while True:
            try:
                batch = next(fast)
            except StopIteration as end:
                rest = end.value
                break
            lines += batch.num_rows
            yield batch
        if rest is not None:
            for batch in _read_jsonl_lines(
                Chained(rest.data, stream), chunk_rows, max_bytes, rest.line, keys
            ):
                lines += batch.num_rows
                yield batch
    if not lines:  # (as a 0-byte CSV, JSON or XML file: read as 0 rows, an empty snapshot deleting all sent)
        raise FileUnreadable(src.name, f"empty file: no JSON lines ({EMPTY_JSONL})")


def _read_jsonl_lines(
    stream, chunk_rows: int, max_bytes: int, first_line: int = 1, keys: SourceKeys | None = None
) -> Iterator[pa.RecordBatch]:
    """JSONL line by line from `first_line` on (its number in the file): a dict per record (orjson)."""
    builder = BatchBuilder(chunk_rows, _folding(keys))
    for line_no, line in enumerate(_lines(stream, max_bytes), start=first_line):
        if line is None:
            full = builder.add_error(
                line_no, f"line longer than {max_bytes:,} bytes (FC_MAX_VALUE_BYTES)", ""
            )
        else:
            if line_no == 1 and line.startswith(BOM):
                line = line[len(BOM) :]
            line = line.strip()
            if not line:
                continue
            try:
                value = orjson.loads(line)  # (orjson refuses nesting deeper than 1024 itself)
            except orjson.JSONDecodeError as e:
                fields: dict[str, str | None] | str = f"malformed JSON: {e}"
            else:
                fields = _record_fields(value, keys)
                if fields == "record is not a JSON object":
                    fields = "line is not a JSON object"
            full = (
                builder.add(line_no, fields)
                if isinstance(fields, dict)
                else builder.add_error(line_no, fields, line[:4000].decode("utf-8", "replace"))
            )
        if full:
            yield builder.flush()
    if len(builder):
        yield builder.flush()


# -------------------------------------------------------------------------------------------- Parquet


def _flatten_structs(table: pa.Table) -> pa.Table:
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    return table


def _read_parquet(src: ByteSource, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    with src.random_access() as target:
        try:
            pf = pq.ParquetFile(target)
        except (pa.ArrowInvalid, OSError) as e:
            raise FileUnreadable(src.name, f"not a readable Parquet file: {e}") from e
        # threads off when reading a Python file object (pyarrow 26 aborted at exit otherwise; design §6)
        threads = isinstance(target, str)
        next_row = 1
        try:
            batches = pf.iter_batches(batch_size=chunk_rows, use_threads=threads)
            if pf.metadata.num_rows == 0:  # still one (empty) batch, so its columns are checked
                batches = iter([empty_batch(pf.schema_arrow)])
            for batch in batches:
                table = _flatten_structs(pa.Table.from_batches([batch]))
                n = table.num_rows
                table = table.append_column(ROW, numbers(np.arange(next_row, next_row + n), pa.int64()))
                table = table.append_column(ERROR, pa.nulls(n, pa.string()))
                table = table.append_column(RAW, pa.nulls(n, pa.string()))
                next_row += n
                combined = table.combine_chunks()
                yield from (
                    combined.to_batches(max_chunksize=max(n, 1)) if n else [empty_batch(combined.schema)]
                )
        except (pa.ArrowInvalid, OSError) as e:
            raise FileUnreadable(src.name, f"Parquet cannot be read: {e}", row=next_row) from e
