"""The fast path for record-oriented XML: `<root><item><sku>A</sku>…</item>…</root>`, tokenised in blocks
by numpy and Arrow instead of element by element in Python (lxml: ~40k records/s on a quiet machine).

Why not just faster lxml: `iterparse(tag=...)` with `clear()` still builds and visits each element in
Python (~110k records/s here); CSV is read at ~1.7M rows/s, and a feed should not be 20x slower for
being XML.

How: the file is read in blocks of ~1 MiB cut after the last record end tag, into buffers that are reused,
and each block is tokenised into its columns on one of two threads (numpy and Arrow release the GIL; up to
IN_FLIGHT blocks at a time, handed on in file order). The usual export repeats one record's markup: every
`<` of the block is located (one numpy pass) and must start the first record's tag at its place in the
period, compared 8 bytes at a time (64-bit words read at each `<`), with as many `>` as `<` in the block;
a field's column is then one Arrow `take` of the texts between its tags (a feed's attribute keys: one take
of their texts record by record, folded.py). Other blocks (fields missing or
in another order, `<F/>`) are cut at every `<` and `>` into alternating text and markup tokens (a
zero-copy Arrow string array over the block) and the few distinct markup tokens (`item`, `sku`, `/sku`,
`sku/`, …) are classified in Python; the rest is numpy over token codes. Either way the block must follow
the grammar `ws (<R> (ws <F>text</F> | ws <F/>)* ws </R> ws)*` with each end tag naming its start tag, no
child twice in a record, text free of `&`, `]]>`-capable `>`, `\\r` and characters XML forbids, valid
UTF-8. Any other exception in the fast path also hands the file to the parser (`read_xml`), which then
reports what it finds. A thread's numpy temporaries are its own arrays, reused from block to block
(`_Scratch`): allocated afresh they cost ~800 page faults per block, more than the tokenising.

Measured (2026-12-02, 2 cores at load ~4, 300 MB file of 2.1M records, the reader alone): 0.48 s
(0.85 s CPU) against 1.06-1.23 s single-threaded with the old tokeniser; `fc-assets check-file inventory`
on it 1.15-1.45M rows/s against CSV's 1.7-1.85M on a 300 MB file at the same load.

Anything else — CDATA, entity or character references, comments, processing instructions, attributes
(except on the root), namespace prefixes, nested or repeated children, whitespace inside tags, a record
longer than `max_record_bytes` (FC_MAX_VALUE_BYTES: the parser rejects it, unread), encodings other than UTF-8, XML 1.1, a non-seekable source, malformed XML — raises `NotSimple`, and `read_xml`
restarts with the full parser from the beginning of the file, skipping the records already yielded. So
whatever the fast path yields is exactly what the full parser yields (the differential test compares
both on generated files), and every refusal and error message comes from the full parser. The fast path
yields only whole batches of `chunk_rows` records and the last one once the end of the document is
checked, so a restart never repeats or drops a record.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fc_assets.ingestion.read import folded
from fc_assets.ingestion.read.arrow_values import numbers, strings, to_numbers
from fc_assets.ingestion.read.block_spans import take_spans
from fc_assets.ingestion.read.records import check_columns
from fc_assets.ingestion.read.source_keys import ATTRIBUTE, COLUMN, IN_LIST, LIST
from fc_assets.ingestion.read.streams import ByteSource, unmarked_codec
from fc_assets.ingestion.spec import FOLDED, TECHNICAL

if TYPE_CHECKING:
    from fc_assets.ingestion.read.source_keys import SourceKeys

BLOCK_BYTES = 1 << 20  # (1 MiB: the numpy passes over a block stay in cache; 8 MiB was ~25 % slower)
MAX_BLOCK_BYTES = 64 << 20  # no record end within this: not a flat record file (the full parser decides)
MAX_TEXT = 1_000_000  # longer text: the full parser (libxml2 refuses text over 10 MB without huge_tree)
THREADS = 2  # threads tokenising blocks (numpy and Arrow release the GIL)
IN_FLIGHT = 4  # blocks tokenised or waiting to be handed on

_MAX_NAME = 1000
_MAX_NAMES = 10_000  # distinct field names in a block (int16 codes)
# columns x records of a block of differing records (null-padded: ~13 bytes a cell): beyond, the parser, which
# refuses a chunk past MAX_CELLS before making its columns (8,000 names over 60,000 records: 2.2 GB here)
BLOCK_CELLS = 1 << 22
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_WS = b" \t\r\n"
_DECL = re.compile(
    rb"<\?xml[ \t\r\n]+version[ \t\r\n]*=[ \t\r\n]*([\"'])1\.0\1"
    rb"(?:[ \t\r\n]+encoding[ \t\r\n]*=[ \t\r\n]*([\"'])(?i:utf-8)\2)?"
    rb"(?:[ \t\r\n]+standalone[ \t\r\n]*=[ \t\r\n]*([\"'])(?:yes|no)\3)?[ \t\r\n]*\?>"
)
_ROOT = re.compile(rb"<([A-Za-z_][A-Za-z0-9_.\-]*)((?:[ \t\r\n][^<>]*)?)>")
_FIRST = re.compile(rb"[ \t\r\n]*<([A-Za-z_][A-Za-z0-9_.\-]*)>")
_LEAD_WS = re.compile(rb"[ \t\r\n]*")

_IS_WS = np.zeros(256, bool)
_IS_WS[list(_WS)] = True

# markup kinds and the grammar as allowed transitions (kind of markup i → kind of markup i + 1)
RO, RC, FO, FC, FE = range(5)  # <R>  </R>  <F>  </F>  <F/>
_NEXT = np.zeros((5, 5), bool)
for _a, _b in ((RO, FO), (RO, FE), (RO, RC), (FO, FC), (FC, FO), (FC, FE), (FC, RC), (FE, FO), (FE, FE)):
    _NEXT[_a, _b] = True
_NEXT[FE, RC] = _NEXT[RC, RO] = True


class NotSimple(Exception):
    """The content is not in the shape the fast path strictly recognises: the full parser reads the file."""


def _no_attribute_list(uses: list[int]) -> None:
    """Fluent's attribute list (`<attributes><attribute><name>…`, or text in its place) is the full parser's
    to read or reject (xml_records.py): its elements are no keys of their own."""
    if any(use & (LIST | IN_LIST) for use in uses):
        raise NotSimple("Fluent's attribute list")


@dataclass
class _Block:
    """The records of one block: per field name its column (null where a record lacks the field)."""

    n: int  # records
    names: list[str]
    columns: list[pa.Array | None]  # per name: its values in the block's n records (None: not usable)
    # per field element its record (non-decreasing) and field; None: every record has every field, in order
    rec: np.ndarray | None = None
    fid: np.ndarray | None = None
    # attribute keys folded (`SourceKeys.fold`), made on the tokenising thread: per such field element its
    # record (non-decreasing), key and text; None: no attribute key in the block
    fold_rec: np.ndarray | None = None
    fold_names: pa.Array | None = None
    fold_values: pa.Array | None = None
    fold_each: int = 0  # every record: this many entries (fold_rec not made)

    def fold(self, uses: list[int], tokens: pa.Array, val: np.ndarray | dict[int, tuple[int, int]]) -> None:
        """Make the block's folded attribute entries (`uses`: per name its `SourceKeys` kind) from the field
        elements' texts in `tokens`: `val`, per field element its token; for a block whose records all have
        every field in order, per field (start, step) of its n texts (a field not there is `<F/>`: "")."""
        fold = np.array([bool(use & ATTRIBUTE) for use in uses], bool)
        if not fold.any():
            return
        if self.rec is None:
            at = np.flatnonzero(fold).tolist()
            n = self.n
            if not all(f in val for f in at):  # <F/>: its "" after the tokens
                tokens = pa.concat_arrays([tokens, pa.array([""], pa.string())])
            start, step = np.array([val.get(f, (len(tokens) - 1, 0)) for f in at], np.int64).T  # type: ignore[union-attr]
            self.fold_each = len(at)
            self.fold_names = folded.repeated([self.names[f] for f in at], n)
            self.fold_values = tokens.take(numbers((start + np.arange(n)[:, None] * step).ravel()))
            return
        sel = np.flatnonzero(fold[self.fid])  # type: ignore[index]
        self.fold_rec = self.rec[sel]
        self.fold_names = strings(self.names).take(numbers(self.fid[sel].astype(np.int64)))  # type: ignore[index]
        self.fold_values = tokens.take(numbers(val[sel]))  # type: ignore[call-overload]

    def present(self, lo: int, hi: int) -> list[int]:
        """The fields of records lo..hi-1 in order of first appearance (the full parser's column order)."""
        if self.rec is None:
            return list(range(len(self.names)))
        a, b = np.searchsorted(self.rec, [lo, hi])
        fids, first = np.unique(self.fid[a:b], return_index=True)  # type: ignore[index]
        return fids[np.argsort(first)].tolist()


def fast_batches(
    src: ByteSource,
    record: str | None,
    chunk_rows: int,
    keys: SourceKeys | None = None,
    max_record_bytes: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """Batches exactly as `read_xml`'s full parser makes them (with `keys`, only the columns the feed can
    use, the others counted in it), or `NotSimple` (before yielding anything the full parser would not
    yield). `max_record_bytes`: FC_MAX_VALUE_BYTES when None."""
    if max_record_bytes is None:
        from fc_assets.env_settings import env_setting

        max_record_bytes = env_setting("max_value_bytes")
    if not src.reopenable:  # a restart must be possible
        raise NotSimple("forward-only source")
    chunk_rows = max(1, chunk_rows)
    if chunk_rows == 1 and record is None:  # the parser's first batch then holds 2 records (auto-detection)
        raise NotSimple("batches of one record")
    body_at, root = _root_start(src.head)
    pending: list[tuple[_Block, int, int]] = []  # record ranges not yet yielded
    waiting, done = 0, 0
    spare: list[bytearray] = []  # block buffers tokenised, to be filled again
    with (
        src.open(again=True) as stream,
        ThreadPoolExecutor(THREADS, thread_name_prefix="fc-xml-block") as pool,
    ):
        if len(stream.read(body_at)) != body_at:
            raise NotSimple("short file")
        usable = None if keys is None or keys.everything else keys.usable
        pieces = _pieces(stream, record, root, spare, max_record_bytes)
        for block in _tokenised(pool, pieces, spare, usable):
            pending.append((block, 0, block.n))
            waiting += block.n
            while waiting >= chunk_rows:
                batch, pending = _take(pending, chunk_rows, done, keys)
                waiting -= chunk_rows
                done += chunk_rows
                yield batch
    if done == 0 and waiting == 0:
        raise NotSimple("no records")
    if waiting:
        yield _take(pending, waiting, done, keys)[0]


def _pieces(
    stream, record: str | None, root: str, spare: list[bytearray], max_record_bytes: int
) -> Iterator[tuple[bytearray, int, str]]:
    """(buffer, where its block ends, record name) of each block: ~BLOCK_BYTES cut after the last record end
    tag, with no record longer than `max_record_bytes`; at the end, the document must end with the root's
    end tag. Buffers are taken from `spare` when
    there is one (reading into fresh bytes cost ~100 page faults per block, ~0.14 s of system time on a
    300 MB file)."""
    buf, n, eof = _read(stream, bytearray(), 0)
    m = _FIRST.match(buf, 0, n)
    if m is None:
        raise NotSimple("the root's first child is not a plain start tag")
    name = m.group(1).decode()
    if (record is not None and name != record) or name == root:
        raise NotSimple("records are not the root's children")
    end_tag = f"</{name}>".encode()
    while True:
        cut = buf.rfind(end_tag, 0, n)
        if (cut == -1 or n < BLOCK_BYTES) and not eof:  # read on: a whole block, a record end
            if cut == -1:
                _no_record_end(buf, n, name, root, max_record_bytes)
            buf, n, eof = _read(stream, buf, n)
            continue
        if cut == -1:
            break
        cut += len(end_tag)
        if cut > max_record_bytes:  # (else every record in it is shorter)
            _no_long_record(buf, cut, name, max_record_bytes)
        rest = spare.pop() if spare else bytearray()
        if len(rest) < n - cut + BLOCK_BYTES:
            rest = bytearray(n - cut + BLOCK_BYTES + BLOCK_BYTES // 4)
        rest[: n - cut] = memoryview(buf)[cut:n]
        yield buf, cut, name
        buf, n = rest, n - cut
    if buf[:n].strip(_WS) != f"</{root}>".encode():
        raise NotSimple("the document does not end with the root's end tag")


def _read(stream, buf: bytearray, n: int) -> tuple[bytearray, int, bool]:
    """Up to BLOCK_BYTES more after the n bytes of `buf` (a larger copy of it when it is full): (buffer,
    bytes in it, at the end of the stream)."""
    if len(buf) < n + BLOCK_BYTES:
        larger = bytearray(max(2 * len(buf), n + BLOCK_BYTES + BLOCK_BYTES // 4))
        larger[:n] = memoryview(buf)[:n]
        buf = larger
    with memoryview(buf) as view:
        got = stream.readinto(view[n : n + BLOCK_BYTES])
    return buf, n + got, got == 0


def _tokenised(
    pool: ThreadPoolExecutor,
    pieces: Iterator[tuple[bytearray, int, str]],
    spare: list[bytearray],
    usable: Callable[[str], int] | None = None,
) -> Iterator[_Block]:
    """The blocks of `pieces` in file order, tokenised on `pool`, IN_FLIGHT at most ahead (bounded memory);
    a block's error is raised in its turn. Each buffer goes back to `spare` once tokenised (a block's
    columns are copies, not views of it)."""
    jobs: deque[tuple[Future[_Block], bytearray]] = deque()
    try:
        for piece in pieces:
            jobs.append((pool.submit(_tokenise, *piece, usable), piece[0]))
            while len(jobs) >= IN_FLIGHT or (jobs and jobs[0][0].done()):
                job, buf = jobs.popleft()
                block = job.result()
                spare.append(buf)
                yield block
        while jobs:
            job, buf = jobs.popleft()
            block = job.result()
            spare.append(buf)
            yield block
    finally:
        for job, _ in jobs:
            job.cancel()


def _no_long_record(buf: bytearray, end: int, record: str, limit: int) -> None:
    """NotSimple if a record in buf[:end] (from its start tag to its end tag, both included) is longer than
    `limit`: the parser rejects it. (`<record>` is markup only here: text holds no `<`.)"""
    start, close = f"<{record}>".encode(), f"</{record}>".encode()
    at = buf.find(start, 0, end)
    while at != -1:
        stop = buf.find(close, at, end)
        if stop == -1 or stop + len(close) - at > limit:
            raise NotSimple("a record longer than FC_MAX_VALUE_BYTES")
        at = buf.find(start, stop, end)


def _no_record_end(buf: bytearray, n: int, record: str, root: str, limit: int) -> None:
    """Raises NotSimple as soon as a buffer without a record end tag (yet) cannot become one that the fast
    path reads, so that a file it does not read (a leading `<meta>` block taken for the record, a long text,
    an end tag it does not recognise) is handed to the parser after a block or so, not after buffering up
    to MAX_BLOCK_BYTES of it."""
    if n > MAX_BLOCK_BYTES:
        raise NotSimple("no record end")
    start, end = f"<{record}>".encode(), f"</{root}>".encode()
    at = _LEAD_WS.match(buf, 0, n).end()  # type: ignore[union-attr]
    if n - at > limit:
        raise NotSimple("a record longer than FC_MAX_VALUE_BYTES")
    if n - at >= max(len(start), len(end)) and not buf.startswith((start, end), at, n):
        raise NotSimple("not a record where the next record must start")
    if buf.startswith(start, at, n) and buf.find(start, at + len(start), n) != -1:
        raise NotSimple("a record starts before the record before it ends")
    if n - buf.rfind(b">", 0, n) > MAX_TEXT + 1:
        raise NotSimple("long text")


def _root_start(head: bytes) -> tuple[int, str]:
    """(offset of the root's content, root name) when the prolog is plain and the root start tag parses."""
    from lxml import etree

    from fc_assets.ingestion.read.unreadable import FileUnreadable
    from fc_assets.ingestion.read.xml_prolog import prolog_end

    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or unmarked_codec(head):
        raise NotSimple("UTF-16")
    start = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    if head.startswith(b"<?xml", start) and not _DECL.match(head, start):
        raise NotSimple("XML declaration other than version 1.0, UTF-8")
    try:
        pos = prolog_end(head, "")
    except FileUnreadable as e:
        raise NotSimple("prolog") from e
    m = _ROOT.match(head, pos)
    if m is None or m.group(2).endswith(b"/"):
        raise NotSimple("root start tag")
    parser = etree.XMLPullParser(
        events=("start",), resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:  # as a whole document (the root closed at once): fed alone, libxml2 waits for more input after the
        # '>' and neither the root start tag nor (with a declaration) the prolog would be checked at all
        parser.feed(head[: m.end()] + b"</" + m.group(1) + b">")
        parser.close()
    except etree.XMLSyntaxError as e:
        raise NotSimple("prolog or root start tag not well-formed") from e
    return m.end(), m.group(1).decode()


def _tokenise(buf: bytearray, end: int, record: str, usable: Callable[[str], int] | None = None) -> _Block:
    """The records in buf[:end] (which starts before a record start tag and ends with a record end tag);
    with `usable` (`SourceKeys.usable`), columns only for the names it takes as columns, attribute keys
    folded (records with ever-changing names would otherwise make a block column per name: names x records
    cells)."""
    raw = np.frombuffer(buf, np.uint8, end)
    crs = _check_characters(buf, raw, end)
    return _repeated(buf, raw, end, record, crs, usable) or _general(buf, raw, end, record, crs, usable)


class _Scratch(threading.local):
    """Arrays a tokenising thread reuses from block to block. numpy's temporaries of a block (a dozen of ~1 MB)
    came from glibc's per-thread arena, which returns them to the kernel when they are freed: ~800 page
    faults per block (235k on a 300 MB file, 0.5-0.9 s of system time: more than the tokenising)."""

    def __init__(self) -> None:
        self.arrays: dict[tuple[str, type], np.ndarray] = {}

    def __call__(self, name: str, n: int, dtype: type) -> np.ndarray:
        """`n` elements of the thread's array `name` of `dtype` (contents undefined)."""
        a = self.arrays.get((name, dtype))
        if a is None or len(a) < n:
            a = self.arrays[name, dtype] = np.empty(max(n, 2 * len(a) if a is not None else 0), dtype)
        return a[:n]


_scratch = _Scratch()


def _iota(n: int) -> np.ndarray:
    """0, 1, …, n - 1 (the thread's, not to be written)."""
    a = _scratch.arrays.get(("iota", np.int64))
    if a is None or len(a) < n:
        a = _scratch.arrays["iota", np.int64] = np.arange(max(n, 2 * len(a) if a is not None else 0))
    return a[:n]


def _check_characters(buf: bytearray, raw: np.ndarray, end: int) -> int:
    """NotSimple unless buf[:end] is UTF-8 without `&`, U+FFFE/U+FFFF and control characters other than
    tab and line ends; the number of `\\r` in it (0 when there are none or it was not counted)."""
    if raw.max() > 127:  # (UTF-8 checks only where there is more than ASCII)
        if buf.find(b"\xef\xbf\xbe", 0, end) != -1 or buf.find(b"\xef\xbf\xbf", 0, end) != -1:
            raise NotSimple("U+FFFE/U+FFFF")  # not XML characters
        offsets = pa.py_buffer(np.array([0, end], np.int32))
        try:
            pa.Array.from_buffers(pa.string(), 1, [None, offsets, pa.py_buffer(buf)]).validate(full=True)
        except pa.ArrowInvalid as e:
            raise NotSimple("not UTF-8") from e
    mask = _scratch("mask", end, bool)

    def count(op, value: int) -> int:
        return np.count_nonzero(op(raw, value, out=mask))

    controls, crs = count(np.less, 32), 0  # only '\t', '\n', '\r' are XML characters
    if controls != count(np.equal, 10):
        crs = count(np.equal, 13)
        controls -= count(np.equal, 10) + count(np.equal, 9) + crs
    else:
        controls = 0
    if controls or buf.find(b"&", 0, end) != -1:
        raise NotSimple("'&' or a control character")
    return crs


def _repeated(
    buf: bytearray,
    raw: np.ndarray,
    end: int,
    record: str,
    crs: int,
    usable: Callable[[str], int] | None = None,
) -> _Block | None:
    """The block's records when each repeats the first one's markup exactly (the usual export), else None.

    Every `<` is located (one numpy pass); the first record's tags are the template, and the k-th `<` of
    the block must start the template's (k mod P)-th tag, `>` included: compared 8 bytes at a time (numpy
    reads 64-bit words at the `<`s), with as many `>` in the block as `<`. So markup and text alternate, each
    tag is the template's, and a text token runs from a tag's `>` to the next `<`."""
    mask = _scratch("mask", end, bool)
    lt = np.flatnonzero(np.equal(raw, 60, out=mask))
    first_end = buf.find(f"</{record}>".encode(), 0, end)
    p = int(np.searchsorted(lt, first_end, side="right"))  # tags in a record
    m = len(lt)
    if m % p or np.count_nonzero(np.equal(raw, 62, out=mask)) != m:
        return None
    tags = [t.partition(b">") for t in buf[lt[0] : first_end].split(b"<")[1:]]  # (name, ">", text)
    if not all(gt for _, gt, _ in tags):
        return None
    template = [b"<" + name + b">" for name, _, _ in tags] + [f"</{record}>".encode()]
    k = m // p
    at = lt.reshape(k, p)
    longest = max(map(len, template))
    need = int(lt[-1]) + longest + 8
    data = buf if len(buf) >= need else bytes(buf) + bytes(need - len(buf))
    words = np.ndarray((len(data) - 7,), "<u8", data, 0, (1,))  # the 8 bytes from each offset
    for w in range(0, longest, 8):
        cols = [t for t in range(p) if len(template[t]) > w]
        expected = np.array(
            [int.from_bytes(template[t][w : w + 8].ljust(8, b"\0"), "little") for t in cols], np.uint64
        )
        bits = np.array([(1 << 8 * len(template[t][w : w + 8])) - 1 for t in cols], np.uint64)
        got = words[(at if len(cols) == p else at[:, cols]) + w]  # (numpy's take into an array: 2x slower)
        np.bitwise_xor(got, expected, out=got)
        if np.bitwise_and(got, bits, out=got).any():
            return None
    kinds, fids, names = _classify([t[1:-1].decode("latin-1") for t in template], record)
    is_fo, field, f_fid, f_fo = _structure(np.arange(p), kinds, fids)
    if len(set(f_fid.tolist())) != len(f_fid):
        raise NotSimple("a repeated child (a JSON array for the full parser)")
    starts = np.add(at, [len(t) for t in template], out=_scratch("starts", m, np.int64).reshape(k, p))
    ends = _scratch("ends", m, np.int64)  # of the text after each tag
    ends[:-1], ends[-1] = lt[1:], end
    ends = ends.reshape(k, p)
    lengths = np.subtract(ends, starts, out=_scratch("lengths", m, np.int64).reshape(k, p))
    if buf[: lt[0]].strip(_WS):
        raise NotSimple("text outside a field")
    fo = np.flatnonzero(is_fo)
    for c in np.flatnonzero(~is_fo):  # whitespace between elements
        gaps = lengths[:, c]
        if not gaps.any():
            continue
        g, at0 = int(gaps[0]), int(starts[0, c])
        if (
            g <= 8 and (gaps == g).all() and _IS_WS[raw[at0 : at0 + g]].all()
        ):  # (indentation: 8 bytes at once)
            got = words[starts[:, c]]
            if not np.bitwise_and(np.bitwise_xor(got, got[0], out=got), (1 << 8 * g) - 1, out=got).any():
                continue
        some = gaps > 0
        _only_whitespace(raw, starts[:, c][some], gaps[some])
    if len(fo) and max(lengths[:, c].max() for c in fo) > MAX_TEXT:
        raise NotSimple("long text")
    if crs:  # '\r' is normalised in text (to '\n'): whitespace between elements only
        tag = np.searchsorted(lt, np.flatnonzero(np.equal(raw, 13, out=mask)), side="right") - 1
        if is_fo[tag[tag >= 0] % p].any():
            raise NotSimple("'\\r' in text")
    columns: list[pa.Array] = [None] * len(names)  # type: ignore[list-item]
    block = _Block(k, names, columns)
    uses = [COLUMN] * len(names) if usable is None else [usable(name) for name in names]
    _no_attribute_list(uses)
    texts, where = pa.nulls(0, pa.string()), {}
    if len(fo):
        # the field texts as tokens of an Arrow array over the block (each followed by what is between it
        # and the next), taken field by field into one array (but attribute keys folded: `_Block.fold`)
        fo_fields = fids[fo].tolist()
        kept = [i for i, f in enumerate(fo_fields) if uses[f] & COLUMN]
        offsets = _scratch("offsets", 2 * k * len(fo), np.int32).reshape(k, len(fo), 2)
        picked = _scratch("picked", k * len(kept), np.int64).reshape(len(kept), k)
        for i, c in enumerate(fo):
            offsets[:, i, 0], offsets[:, i, 1] = starts[:, c], ends[:, c]
        for j, i in enumerate(kept):
            np.multiply(np.arange(k), 2 * len(fo), out=picked[j])
            picked[j] += 2 * i
        texts = pa.Array.from_buffers(
            pa.string(), offsets.size - 1, [None, pa.py_buffer(offsets), pa.py_buffer(buf)]
        )
        values = texts.take(numbers(picked.ravel()))
        for j, i in enumerate(kept):
            columns[fo_fields[i]] = values.slice(j * k, k)
        where = {f: (2 * i, 2 * len(fo)) for i, f in enumerate(fo_fields)}
    for f in fids[field[~f_fo]]:  # <F/>: ""
        columns[f] = pa.Array.from_buffers(
            pa.string(), k, [None, pa.py_buffer(np.zeros(k + 1, np.int32)), pa.py_buffer(b"")]
        )
    block.fold(uses, texts, where)  # attribute keys: their values record by record (copies, not views)
    return block


def _only_whitespace(raw: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> None:
    """NotSimple unless raw[start:start + length] is whitespace for each start and length (all > 0)."""
    one = lengths == 1  # (mostly a lone '\n')
    if not _IS_WS[raw[starts[one]]].all():
        raise NotSimple("text outside a field")
    starts, lengths = starts[~one], lengths[~one]
    if len(starts):
        before = np.cumsum(lengths) - lengths
        at = np.arange(int(lengths.sum())) + np.repeat(starts - before, lengths)
        if not _IS_WS[raw[at]].all():
            raise NotSimple("text outside a field")


def _general(
    buf: bytes, raw: np.ndarray, end: int, record: str, crs: int, usable: Callable[[str], int] | None = None
) -> _Block:
    """The block's records, tokenised at every `<` and `>` (records with different fields or whitespace)."""
    delims = np.flatnonzero(
        np.equal(
            np.bitwise_or(raw, 2, out=_scratch("or", end, np.uint8)), 62, out=_scratch("mask", end, bool)
        )
    )  # '<' (0x3c) and '>' (0x3e)
    d = len(delims)
    opening = raw[delims] == 60
    if d == 0 or d % 2 or not opening[0::2].all() or opening[1::2].any():
        raise NotSimple("'<' and '>' do not alternate")
    cr = np.flatnonzero(raw == 13) if crs else ()
    data = pa.py_buffer(buf)
    # tokens: 0 text, 1 '<', 2 markup, 3 '>', 4 text, …, 2d: empty (after the last '>'; the text of <F/>)
    offsets = _scratch("offsets", 2 * d + 2, np.int32)
    offsets[0] = 0
    offsets[1 : 2 * d : 2] = delims
    np.add(delims, 1, out=offsets[2 : 2 * d + 1 : 2])
    offsets[2 * d + 1] = end
    tokens = pa.Array.from_buffers(pa.string(), 2 * d + 1, [None, pa.py_buffer(offsets), data])
    markup_at = np.multiply(_iota(d // 2), 4, out=_scratch("markup_at", d // 2, np.int64))
    markup_at += 2
    markup = tokens.take(numbers(markup_at))
    encoded = pc.dictionary_encode(markup)
    codes = to_numbers(encoded.indices)
    kinds, fids, names = _classify(encoded.dictionary.to_pylist(), record)
    is_fo, field, f_fid, f_fo = _structure(codes, kinds, fids)
    f_rec = np.cumsum(kinds[codes] == RO)[field] - 1
    n = int(np.count_nonzero(kinds[codes] == RO))
    key = f_rec * max(1, len(names)) + f_fid
    if n * len(names) <= 8 * len(key) + 1024:  # (a dense count; else a sort, nearly sorted already)
        repeated = len(key) and np.bincount(key).max() > 1
    else:
        repeated = (np.diff(np.sort(key, kind="stable")) == 0).any()
    if repeated:
        raise NotSimple("a repeated child (a JSON array for the full parser)")
    fo_at = np.flatnonzero(is_fo)
    text_at = np.add(
        markup_at, 2, out=_scratch("text_at", len(markup_at), np.int64)
    )  # the text after each markup
    lengths = np.subtract(offsets[1:], offsets[:-1], out=_scratch("lengths", 2 * d + 1, np.int32))
    if len(fo_at) and lengths[text_at[fo_at]].max() > MAX_TEXT:
        raise NotSimple("long text")
    ws_tok = np.concatenate([[0], text_at[~is_fo]])
    ws_len = lengths[ws_tok]
    some = ws_len > 0
    _only_whitespace(raw, offsets[ws_tok[some]], ws_len[some])
    if len(cr):  # '\r' is normalised in text (to '\n'): whitespace between elements only
        in_text = np.zeros(2 * d + 2, bool)
        in_text[text_at[fo_at]] = True
        if in_text[np.searchsorted(offsets, cr, side="right") - 1].any():
            raise NotSimple("'\\r' in text")
    val = np.where(f_fo, text_at[field], 2 * d)
    order = np.argsort(f_fid, kind="stable")  # by field, each in file order (radix sort: int16)
    bounds = np.searchsorted(f_fid[order], np.arange(len(names) + 1))
    uses = [COLUMN] * len(names) if usable is None else [usable(name) for name in names]
    _no_attribute_list(uses)
    if sum(1 for use in uses if use & COLUMN) * n > BLOCK_CELLS:
        raise NotSimple("a column per name would be names x records")  # (the parser refuses past MAX_CELLS)
    columns: list[pa.Array | None] = []
    for f in range(len(names)):
        if not uses[f] & COLUMN:
            columns.append(None)  # (not read by the feed as a column: `_take` counts it, never takes it)
            continue
        at = order[bounds[f] : bounds[f + 1]]
        if len(at) == n:  # in every record (once: repeats are not simple)
            idx, valid = val[at], None
        else:
            idx = np.full(n, -1, np.int64)
            idx[f_rec[at]] = val[at]
            valid = pa.py_buffer(np.packbits(idx >= 0, bitorder="little"))
        columns.append(tokens.take(pa.Array.from_buffers(pa.int64(), n, [valid, pa.py_buffer(idx)])))
    block = _Block(n, names, columns, f_rec, f_fid)
    block.fold(uses, tokens, val)  # attribute keys: their values in record order, not a column each
    return block


def _structure(
    codes: np.ndarray, kinds: np.ndarray, fids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Check the grammar and the end tags of a markup sequence; (is <F>, field elements' markup
    indices, their field, whether each is an <F> (else <F/>))."""
    mk = kinds[codes]
    if mk[0] != RO or mk[-1] != RC or not _NEXT[mk[:-1], mk[1:]].all():
        raise NotSimple("elements not in the shape <record><field>text</field>…</record>")
    is_fo = mk == FO
    fo_at = np.flatnonzero(is_fo)
    if (fids[codes[fo_at]] != fids[codes[fo_at + 1]]).any():
        raise NotSimple("an end tag does not match its start tag")
    field = np.flatnonzero(is_fo | (mk == FE))
    f_fid = fids[codes[field]].astype(np.int16)
    return is_fo, field, f_fid, mk[field] == FO


def _classify(markup: list[str], record: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per distinct markup token: its kind and field index, and the field names."""
    kinds = np.empty(len(markup), np.int8)
    fids = np.full(len(markup), -1, np.int64)
    names: dict[str, int] = {}
    if len(markup) > 2 * _MAX_NAMES:
        raise NotSimple("too many distinct element names")
    for i, token in enumerate(markup):
        closing, empty = token.startswith("/"), token.endswith("/")
        name = token[1:] if closing else token[:-1] if empty else token
        if len(name) > _MAX_NAME or not _NAME.match(name):  # (libxml2 refuses names over 50,000)
            raise NotSimple(f"markup {token[:40]!r}")
        if name == record:
            if empty:
                raise NotSimple("empty record element")
            kinds[i] = RC if closing else RO
            continue
        kinds[i] = FC if closing else FE if empty else FO
        fids[i] = names.setdefault(name, len(names))
    return kinds, fids, list(names)


def _take(
    pending: list[tuple[_Block, int, int]], rows: int, done: int, keys: SourceKeys | None = None
) -> tuple[pa.RecordBatch, list[tuple[_Block, int, int]]]:
    """A batch of the next `rows` records (with `keys`: the columns the feed can use, and attribute keys
    folded into one column when `keys.fold`, as `records.BatchBuilder` folds them), and what is left."""
    wanted = None if keys is None or keys.everything else keys.wanted
    fold = keys is not None and keys.fold
    parts, pending = take_spans(pending, rows)
    columns: dict[str, list[pa.Array | None]] = {}  # name → per part: its values (None: absent)
    entries = []
    for i, (block, lo, hi) in enumerate(parts):
        present = block.present(lo, hi)
        if wanted is not None:
            present = [f for f in present if wanted(block.names[f]) & COLUMN]
        if fold:
            entries.append(_folded(block, lo, hi))
        for f in present:
            columns.setdefault(block.names[f], [None] * len(parts))[i] = block.columns[f].slice(lo, hi - lo)
    check_columns(len(columns), rows, done + 1)
    arrays = []
    for values in columns.values():
        filled = [
            v if v is not None else pa.nulls(hi - lo, pa.string())
            for v, (_, lo, hi) in zip(values, parts, strict=True)
        ]
        arrays.append(filled[0] if len(filled) == 1 else pa.concat_arrays(filled))
    if fold:
        counts, names, texts = zip(*entries, strict=True)
        arrays.append(folded.folded(np.concatenate(counts), pa.concat_arrays(names), pa.concat_arrays(texts)))
    arrays += [
        numbers(np.arange(done + 1, done + rows + 1, dtype=np.int64)),
        pa.nulls(rows, pa.string()),
        pa.nulls(rows, pa.string()),
    ]
    names = [*columns, *([FOLDED] if fold else []), *TECHNICAL]
    return pa.RecordBatch.from_arrays(arrays, names=names), pending


def _folded(block: _Block, lo: int, hi: int) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """Records lo..hi-1 of the block: per record its number of attribute entries, their keys and values."""
    if block.fold_each:
        a, b, counts = lo * block.fold_each, hi * block.fold_each, np.full(hi - lo, block.fold_each, np.int64)
    elif block.fold_rec is None:
        return np.zeros(hi - lo, np.int64), pa.nulls(0, pa.string()), pa.nulls(0, pa.string())
    else:
        a, b = np.searchsorted(block.fold_rec, [lo, hi])
        counts = np.bincount(block.fold_rec[a:b] - lo, minlength=hi - lo)
    return counts, block.fold_names.slice(a, b - a), block.fold_values.slice(a, b - a)  # type: ignore[union-attr]
