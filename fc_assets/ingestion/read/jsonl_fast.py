"""The fast path for flat JSONL: `{"sku":"A","qty":"5"}` per line, every value a string, tokenised in blocks
by numpy and Arrow instead of `orjson.loads` and a dict per line in Python.

Why: the line-by-line reader (`readers._read_jsonl_lines`) builds a dict per record and a Python list per
column, ~0.1M rows/s here, 10-20x below CSV; a 3 GB file took ~5 minutes. Measured (2026-12-02, 2 cores
at load 9-13, `fc-assets check-file inventory` on a 100 MB file of 1M records, side by side): 0.46-0.64M
rows/s against 0.05-0.09M line by line, whole-process CPU 1.1 s against 5.1-6.4 s.

How: the file is read in blocks of ~1 MiB cut after the last newline. In each block every `"` is located
at once (one numpy pass); with no backslash in the block, quotes pair up, which cuts the block into
alternating outside and string tokens: a zero-copy Arrow string array over the block. The outside tokens
must follow `{ "k" : "v" (, "k" : "v")* }` line after line: `{` at a line start, `:` and `,` (spaces
around them allowed, as `json.dumps` writes them), `}` + newlines + `{` between records (blank lines are
skipped but counted), `}` + newlines at the end. When every record of a block has the same keys in the
same order (one bytes comparison) one record's keys are checked, else keys are dictionary-encoded (no key
twice in a record, none named like a technical column); a column is one Arrow `take` of its value tokens,
made only for the keys the feed can use (`SourceKeys.wanted`, which counts the others); a feed's attribute
keys are folded instead (one take of their values, record by record: folded.py).
`_row` is the physical line number, as the line-by-line reader gives it.

Anything else in a block — a backslash (escapes), a value that is not a string (numbers, `true`, `null`,
nested objects and arrays: their text depends on the parser), a control character or `\\r`, invalid
UTF-8, leading or trailing whitespace on a line, `{}`, a malformed line, a line longer than
`FC_MAX_VALUE_BYTES`, records of thousands of kept keys with few to a block (slower here) — ends the fast path: it returns `Rest`, the bytes from the first record it has not
yielded, and the line-by-line reader continues from there (it never re-reads what was yielded). The fast
path yields only whole batches of `chunk_rows` records, so the batches, rejects and refusals are exactly the
line-by-line reader's (`test_jsonl_fast.py` compares both on generated, hand-written and mutated files).
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fc_assets.ingestion.read import folded
from fc_assets.ingestion.read.arrow_values import numbers, strings, to_numbers
from fc_assets.ingestion.read.block_spans import take_spans
from fc_assets.ingestion.read.records import check_columns
from fc_assets.ingestion.read.source_keys import ATTRIBUTE, COLUMN, LIST
from fc_assets.ingestion.spec import FOLDED, TECHNICAL

if TYPE_CHECKING:
    from fc_assets.ingestion.read.source_keys import SourceKeys

BLOCK_BYTES = 1 << 20
BOM = b"\xef\xbb\xbf"
_MAX_NAMES = 10_000  # distinct keys in a block
LONG_LINE = 8 << 20  # a longer line (a record of megabytes): the line-by-line reader
# keys per record beyond which, with few records to a block, the line-by-line reader is faster: a chunk costs
# ~15 us per block and column here, ~1.5 us per value there (20,000 keys, ~3 records a block: 3.5x the time
# and 2.8x the memory); records per block as in a full block (the file's last one may hold a few)
_KEYS_PER_RECORD = 200

# outside tokens (between a string's closing quote and the next opening one)
OPEN, COLON, COMMA, NEXT, END = range(5)
_KINDS = (
    (COLON, re.compile(rb" *: *\Z")),
    (COMMA, re.compile(rb" *, *\Z")),
    (NEXT, re.compile(rb"\}\n+\{\Z")),
)
_OPEN = re.compile(rb"\n*\{\Z")  # the block's first token
_END = re.compile(rb"\}\n*\Z")  # its last


class NotSimple(Exception):
    """A block not in the shape the fast path strictly recognises: the line-by-line reader takes over."""


@dataclass
class Rest:
    """Where the line-by-line reader continues: these bytes (from a line start), then the stream."""

    data: bytes
    line: int  # the line number of data's first line


@dataclass
class _Block:
    """The records of one block: tokens, and per field its record, key and value token."""

    data: bytes
    tokens: pa.StringArray
    n: int  # records
    rows: np.ndarray  # per record: its line number
    starts: np.ndarray  # per record: its byte offset in data
    rec: np.ndarray  # per field: its record (0-based within the block), non-decreasing
    fid: np.ndarray  # per field: index into names
    val: np.ndarray  # per field: the token holding its value
    names: list[str]
    period: int  # keys per record when every record has the same keys in the same order, else 0
    keep: list[bool]  # per name: a column the feed can use (`SourceKeys.wanted`)
    fold: np.ndarray  # per name: an attribute key, folded (read/folded.py)
    name_array: pa.Array | None = None  # the names, when some are folded


class Chained:
    """`data`, then the rest of `stream` (what the line-by-line reader reads after a `Rest`)."""

    def __init__(self, data: bytes, stream) -> None:
        self._data, self._stream = data, stream

    def read(self, n: int = -1) -> bytes:
        if self._data:
            data, self._data = self._data, b""
            return data
        return self._stream.read(n)


def fast_batches(
    stream, chunk_rows: int, max_bytes: int, keys: SourceKeys | None = None
) -> Generator[pa.RecordBatch | pa.Table, None, Rest | None]:
    """Batches exactly as the line-by-line reader makes them (a chunk over blocks as a table of them, as
    `readers._coalesce` makes CSV's; with `keys`, only the columns the feed can use, the others counted in
    it); returns None at the end of the file, or the `Rest` for the line-by-line reader at the first block
    the fast path does not read."""
    chunk_rows = max(1, chunk_rows)
    fold = keys is not None and keys.fold
    pending: list[tuple[_Block, int, int]] = []  # record ranges not yet yielded
    waiting = 0
    buf = stream.read(BLOCK_BYTES)
    # the reader strips a BOM from line 1 only, and counts it in line 1's length: so here, and a `Rest`
    # from line 1 keeps it
    bom = BOM if buf.startswith(BOM) else b""
    at = len(bom)
    line, eof = 1, not buf
    longest = min(max_bytes, LONG_LINE)
    while True:
        # a block: whole lines, at least BLOCK_BYTES unless at the end (pieces joined once: linear time)
        pieces = [buf[at:]]
        size, newline = len(pieces[0]), eof or b"\n" in pieces[0]
        while not eof and (size < BLOCK_BYTES or not newline):
            if not newline and size > longest + 1:  # the reader rejects a line over the limit
                return _rest(pending, b"".join(pieces), line, bom)
            more = stream.read(BLOCK_BYTES)
            eof = not more
            pieces.append(more)
            size += len(more)
            newline = newline or b"\n" in more
        buf = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        cut = len(buf) if eof else buf.rfind(b"\n") + 1
        if not cut:
            break
        try:
            block, lines = _tokenise(buf[:cut], line, max_bytes - len(bom) if line == 1 else max_bytes, keys)
        except Exception:  # noqa: BLE001 - not simple, or failing: the line-by-line reader decides
            return _rest(pending, buf, line, bom)
        if block is None and waiting:  # a block of blank lines after records: a `Rest` would hold it
            return _rest(pending, buf, line, bom)
        line += lines
        at = cut
        if block is not None:
            pending.append((block, 0, block.n))
            waiting += block.n
        while waiting >= chunk_rows:
            batch, pending = _take(pending, chunk_rows, fold)
            waiting -= chunk_rows
            yield batch
        if eof:
            break
    if waiting:
        yield _take(pending, waiting, fold)[0]
    return None


def _rest(pending: list[tuple[_Block, int, int]], tail: bytes, line: int, bom: bytes) -> Rest:
    if pending:
        block, lo, _ = pending[0]
        parts = [block.data[int(block.starts[lo]) :], *(b.data for b, _, _ in pending[1:]), tail]
        tail, line = b"".join(parts), int(block.rows[lo])
    return Rest(bom + tail if line == 1 else tail, line)


def _tokenise(
    data: bytes, line: int, max_bytes: int, keys: SourceKeys | None = None
) -> tuple[_Block | None, int]:
    """The records of `data` (whole lines; the first is line number `line`), and the number of lines."""
    raw = np.frombuffer(data, np.uint8)
    nl = np.flatnonzero(raw == 10)
    lines = len(nl) + (0 if data.endswith(b"\n") else 1)
    if np.count_nonzero(raw < 32) != len(nl):
        raise NotSimple("a control character, '\\r' or '\\t'")
    if b"\\" in data:
        raise NotSimple("an escape")
    longest = max(
        np.diff(nl, prepend=-1).max() - 1 if len(nl) else 0, len(data) - (nl[-1] + 1 if len(nl) else 0)
    )
    if longest > max_bytes:
        raise NotSimple("a line over FC_MAX_VALUE_BYTES")
    if not data.isascii():
        offsets = pa.py_buffer(np.array([0, len(data)], np.int32))
        try:
            pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(data)]).validate(full=True)
        except pa.ArrowInvalid as e:
            raise NotSimple("not UTF-8") from e
    q = np.flatnonzero(raw == 34)
    m = len(q)
    if m == 0:
        if len(nl) != len(data):
            raise NotSimple("no strings")
        return None, lines  # blank lines only
    if m % 4:
        raise NotSimple("not key-value pairs of strings")
    first, last = data[: q[0]], data[q[-1] + 1 :]
    if not _OPEN.match(first) or not _END.match(last):
        raise NotSimple("a line does not start with '{' or end with '}'")
    is_next, newlines = _separators(data, raw, q)
    if newlines + first.count(b"\n") + last.count(b"\n") != len(nl):
        raise NotSimple("a string across lines")
    # tokens: 0 outside, 1 '"', 2 string, 3 '"', 4 outside, …, 2m outside (after the last quote)
    offsets = np.empty(2 * m + 2, np.int32)
    offsets[0] = 0
    offsets[1 : 2 * m : 2] = q
    offsets[2 : 2 * m + 1 : 2] = q + 1
    offsets[2 * m + 1] = len(data)
    tokens = pa.Array.from_buffers(pa.string(), 2 * m + 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    k = m // 4  # fields
    new_record = np.empty(k, bool)
    new_record[0] = True
    new_record[1:] = is_next
    firsts = np.flatnonzero(new_record)
    n = len(firsts)
    # each record starts at the '{' just before its first key's opening quote
    starts = q[0::4][new_record] - 1
    rows = line + np.searchsorted(nl, starts).astype(np.int64)
    key_tokens = tokens.take(numbers(np.arange(2, 2 * m, 8, dtype=np.int64)))
    val = np.arange(6, 2 * m, 8, dtype=np.int64)
    per_block = n * max(BLOCK_BYTES, len(data)) / len(data)  # records in a full block
    period = _period(key_tokens, firsts, k)
    if period:  # every record has the same keys in the same order (the usual file): check one
        names = key_tokens.slice(0, period).to_pylist()
        if len(set(names)) < period or set(names) & set(TECHNICAL):
            raise NotSimple("a key twice in a record, or a key named like a technical column")
        keep, fold = _kept(names, keys, _KEYS_PER_RECORD * per_block)
        rec = np.repeat(np.arange(n), period)
        fid = np.tile(np.arange(period), n)
        return _Block(data, tokens, n, rows, starts, rec, fid, val, names, period, keep, fold), lines
    rec = np.cumsum(new_record) - 1
    encoded = pc.dictionary_encode(key_tokens)
    names = encoded.dictionary.to_pylist()
    if set(names) & set(TECHNICAL):
        raise NotSimple("a key named like a technical column")
    fid = to_numbers(encoded.indices).astype(np.int64)
    key = rec * len(names) + fid
    if n * len(names) <= 8 * len(key) + 1024:
        repeated = np.bincount(key).max() > 1
    else:
        repeated = (np.diff(np.sort(key)) == 0).any()
    if repeated:
        raise NotSimple("a key twice in a record")
    keep, fold = _kept(names, keys, min(_MAX_NAMES, _KEYS_PER_RECORD * per_block))
    return _Block(data, tokens, n, rows, starts, rec, fid, val, names, 0, keep, fold), lines


def _kept(names: list[str], keys: SourceKeys | None, limit: float) -> tuple[list[bool], np.ndarray]:
    """Per name, whether it is a column the feed can use, and whether an attribute key to fold (the others
    counted in `keys` as unknown). More than `limit` columns: a chunk costs ~15 us per block and column
    here, ~1.5 us per value line by line (20,000 keys, ~3 records a block: 3.5x the time and 2.8x the
    memory): the line-by-line reader. (Folded keys cost per value, as there.)"""
    if keys is None or keys.everything:
        if len(names) > limit:
            raise NotSimple("more keys than a block has records to repay them")
        return [True] * len(names), np.zeros(len(names), bool)
    kinds = [keys.wanted(n) for n in names]
    if any(k & LIST for k in kinds):  # text where Fluent's attribute list goes: the line reader's to reject
        raise NotSimple("the attribute list's key with a string value")
    keep = [bool(k & COLUMN) for k in kinds]
    if sum(keep) > limit:
        raise NotSimple("more keys than a block has records to repay them")
    return keep, np.array([bool(k & ATTRIBUTE) for k in kinds], bool)


def _period(keys: pa.StringArray, firsts: np.ndarray, k: int) -> int:
    """The number of keys per record when every record has the same keys in the same order, else 0."""
    period = int(firsts[1]) if len(firsts) > 1 else k
    if k % period or len(firsts) != k // period or (len(firsts) > 1 and (np.diff(firsts) != period).any()):
        return 0
    offsets = np.frombuffer(keys.buffers()[1], np.int32, len(keys) + 1, keys.offset * 4)
    data = keys.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]
    lengths = np.diff(offsets)
    one = int(offsets[period] - offsets[0])
    if data != data[:one] * len(firsts) or (lengths.reshape(-1, period) != lengths[:period]).any():
        return 0
    return period


def _separators(data: bytes, raw: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, int]:
    """Check the inner outside tokens (between strings) and return, per value but the last, whether a new
    record follows it (`}\n{`), and the newlines in them. Compact files (`:` after a key, `,` or `}\n{`
    after a value) are checked on a byte or three per token; others by pattern (`_kinds`)."""
    start = q[1:-1:2] + 1  # inner token i spans [start[i], q[2 + 2i])
    length = q[2::2] - start
    c0 = raw[start]
    after_key, after_value = c0[0::2], c0[1::2]
    if (after_key == 58).all() and (length[0::2] == 1).all():
        is_next = after_value == 125
        candidates = start[1::2][is_next]
        value_length = length[1::2]
        if (
            ((after_value == 44) | is_next).all()
            and (value_length[~is_next] == 1).all()
            and (value_length[is_next] == 3).all()
            and (raw[candidates + 1] == 10).all()
            and (raw[candidates + 2] == 123).all()
        ):
            return is_next, len(candidates)
    kinds, newlines = _kinds(data, start, q[2::2], length, c0, raw)
    if (kinds[0::2] != COLON).any() or ((kinds[1::2] != COMMA) & (kinds[1::2] != NEXT)).any():
        raise NotSimple("not key-value pairs of strings")
    return kinds[1::2] == NEXT, newlines


def _kinds(
    data: bytes, start: np.ndarray, end: np.ndarray, length: np.ndarray, c0: np.ndarray, raw: np.ndarray
) -> tuple[np.ndarray, int]:
    """Each inner outside token's kind (COLON, COMMA or NEXT; else NotSimple), and the newlines in them:
    `: ` and `, ` (as `json.dumps` writes them) from their bytes, others (blank lines) by pattern."""
    c1 = raw[np.minimum(start + 1, len(raw) - 1)]
    kinds = np.full(len(start), -1, np.int8)
    one = (length == 1) | ((length == 2) & (c1 == 32))
    kinds[one & (c0 == 58)] = COLON
    kinds[one & (c0 == 44)] = COMMA
    newlines = 0
    distinct: dict[bytes, int] = {}
    for i in np.flatnonzero(kinds < 0).tolist():
        text = data[start[i] : end[i]]
        if text not in distinct:
            if len(distinct) > 100:
                raise NotSimple("many kinds of separators")
            distinct[text] = next((kind for kind, pattern in _KINDS if pattern.match(text)), -1)
            if distinct[text] < 0:
                raise NotSimple(f"{text[:40]!r} between strings")
        kinds[i] = distinct[text]
        newlines += text.count(b"\n")
    return kinds, newlines


def _folded(block: _Block, lo: int, hi: int) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """Records lo..hi-1 of the block: per record its number of attribute entries, their keys and values."""
    if block.period:  # every record: the same keys
        at = np.flatnonzero(block.fold)
        idx = block.val.reshape(block.n, block.period)[lo:hi, at].ravel()
        names = folded.repeated([block.names[f] for f in at], hi - lo)
        return np.full(hi - lo, len(at), np.int64), names, block.tokens.take(numbers(idx))
    a, b = np.searchsorted(block.rec, [lo, hi])
    sel = np.flatnonzero(block.fold[block.fid[a:b]])
    idx, which = block.val[a:b][sel], block.fid[a:b][sel]
    counts = np.bincount(block.rec[a:b][sel] - lo, minlength=hi - lo)
    if block.name_array is None:
        block.name_array = strings(block.names)
    return counts, block.name_array.take(numbers(which)), block.tokens.take(numbers(idx))


def _take(
    pending: list[tuple[_Block, int, int]], rows: int, fold: bool = False
) -> tuple[pa.RecordBatch | pa.Table, list[tuple[_Block, int, int]]]:
    """A chunk of the next `rows` records, and what is left (as `xml_fast._take`, with line numbers): a
    table when they span blocks with the same columns (see `readers._coalesce`), else a batch. `fold`:
    attribute keys folded into one column (`FOLDED`), as `records.BatchBuilder` folds them."""
    parts, pending = take_spans(pending, rows)
    entries = [_folded(block, lo, hi) for block, lo, hi in parts] if fold else []
    # the keys of each part first, so that a chunk past MAX_CELLS is refused before its columns are made
    # (keys x records, padded with nulls: 8,000 keys over 60,000 records of a 1.4 MB file took 2.2 GB)
    plans: list[tuple[list[int], tuple | None]] = []  # per part: its keys; where they are (None: all)
    found: dict[str, None] = {}
    for block, lo, hi in parts:
        if block.period:  # every record: the same keys
            present = [f for f in range(len(block.names)) if block.keep[f]]
            plans.append((present, None))
        else:
            a, b = np.searchsorted(block.rec, [lo, hi])
            fid, rec, val = block.fid[a:b], block.rec[a:b] - lo, block.val[a:b]
            order = np.argsort(fid, kind="stable")  # by key, each in file order
            bounds = np.searchsorted(fid[order], np.arange(len(block.names) + 1))
            present = [f for f in range(len(block.names)) if bounds[f + 1] > bounds[f] and block.keep[f]]
            present.sort(key=lambda f: order[bounds[f]])  # in order of first appearance, as the reader
            plans.append((present, (rec, val, order, bounds)))
        found.update(dict.fromkeys(block.names[f] for f in present))
    check_columns(len(found), rows, int(parts[0][0].rows[parts[0][1]]))
    columns: dict[str, list[pa.Array | None]] = {}  # name → per part: its values (None: absent)
    for i, ((block, lo, hi), (present, where)) in enumerate(zip(parts, plans, strict=True)):
        if where is None:
            for f in present:
                idx = numbers(block.val[lo * block.period + f : hi * block.period : block.period])
                columns.setdefault(block.names[f], [None] * len(parts))[i] = block.tokens.take(idx)
            continue
        rec, val, order, bounds = where
        for f in present:
            at = order[bounds[f] : bounds[f + 1]]
            if len(at) == hi - lo:  # in every record (once: repeats are not simple)
                idx, valid = val[at], None
            else:
                idx = np.full(hi - lo, -1, np.int64)
                idx[rec[at]] = val[at]
                valid = pa.py_buffer(np.packbits(idx >= 0, bitorder="little"))
            take = pa.Array.from_buffers(pa.int64(), hi - lo, [valid, pa.py_buffer(idx)])
            columns.setdefault(block.names[f], [None] * len(parts))[i] = block.tokens.take(take)
    names = [*columns, *([FOLDED] if fold else []), *TECHNICAL]
    if len(parts) > 1 and all(None not in values for values in columns.values()):
        # every part has every column: a table of one batch per part, joined by `as_batch` where the
        # chunk is mapped (on a worker thread: the copy stays off this, the pipeline's slowest)
        return pa.Table.from_batches(
            [
                pa.RecordBatch.from_arrays(
                    [
                        *(values[i] for values in columns.values()),
                        *([folded.folded(*entries[i])] if fold else []),
                        *_technical(block.rows[lo:hi]),
                    ],
                    names=names,
                )
                for i, (block, lo, hi) in enumerate(parts)
            ]
        ), pending
    arrays = []
    for values in columns.values():
        filled = [
            v if v is not None else pa.nulls(hi - lo, pa.string())
            for v, (_, lo, hi) in zip(values, parts, strict=True)
        ]
        arrays.append(filled[0] if len(filled) == 1 else pa.concat_arrays(filled))
    if fold:
        counts, keys, texts = zip(*entries, strict=True)
        arrays.append(folded.folded(np.concatenate(counts), pa.concat_arrays(keys), pa.concat_arrays(texts)))
    line_numbers = np.concatenate([block.rows[lo:hi] for block, lo, hi in parts])
    return pa.RecordBatch.from_arrays([*arrays, *_technical(line_numbers)], names=names), pending


def _technical(rows: np.ndarray) -> list[pa.Array]:
    """`_row` (line numbers), `_error` and `_raw` (no errors: null) of records read by the fast path."""
    return [numbers(rows), pa.nulls(len(rows), pa.string()), pa.nulls(len(rows), pa.string())]
