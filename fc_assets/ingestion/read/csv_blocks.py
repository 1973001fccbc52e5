"""A large local CSV file parsed in blocks on two threads, with the row numbers of one thread.

Arrow numbers the records it rejects (wrong field count) only when one thread parses the whole stream, and
that thread was the slowest stage of a file's check. Here the file is cut into blocks of ~8 MiB at record
boundaries, each block is parsed by `pyarrow.csv.read_csv` (which releases the GIL) on a pool of threads,
and its records are numbered from the count of records in the blocks before it, in file order, with a
fixed number of blocks in flight. The records, row numbers, rejects and refusals are those of
`readers.csv_stream_batches` reading the whole file (the fallback; test_csv_blocks.py compares the two),
in larger batches. (One known difference, Arrow's: its parser drops the `\n` of a quoted `\r\n` that one
of its 1 MiB blocks splits, pyarrow 26, both ways; its blocks here start at other offsets than in the
streaming reader, so such a value can be kept by one reader and mangled by the other.)

A block ends after a `\\n` outside quotes. With RFC 4180 quoting every `"` toggles the in-quotes state
(`""` inside a value too), so a newline after an even number of quotes ends a record — when every quote
of the block is where Arrow also takes it for one: an opening quote at the start of a field, a closing one
before a delimiter, a line end, another quote or the end of the file. The reading thread only counts the
quotes to find the end of a block; the check (numpy) is done with the parsing, on the block's thread.
Whatever this cannot vouch for goes back to the streaming reader from the start of the block on (the rows
before it are kept): a stray quote (`5" wide`), a record longer than Arrow's block (its streaming reader
refuses one that straddles two of its block boundaries: the rest is given to it aligned to the same
boundaries, so it refuses the same record), no `\\n` line ends, an unterminated quote at the end, any
parser error, a block dense with quotes (a file quoting every value: checking each quote costs more than
the parallel parse saves). The whole file goes the old way when it is small, gzipped, not a local file,
not UTF-8 (Arrow transcodes other encodings) or when Arrow would read its header differently.
"""

from __future__ import annotations

import codecs
import io
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from fc_assets.ingestion.read.arrow_values import empty_batch
from fc_assets.ingestion.read.cores import PARSE_THREADS
from fc_assets.ingestion.read.csv_stream import (
    UTF16_BOMS,
    _with_rows,
    csv_options,
    csv_stream_batches,
    invalid_collector,
)
from fc_assets.ingestion.read.streams import ByteSource, _Replay

BLOCK_BYTES = 8 << 20  # per parsed block (raised to 4 Arrow blocks: a record of more than two is refused)
THREADS = PARSE_THREADS  # parsing threads (1 on 2 cores: cores.py)
IN_FLIGHT = 3  # blocks parsed or waiting to be handed on
# a block with more than one quote in this many bytes goes to the streaming reader (with the rest of the
# file): the quote check is numpy over every quote, a fully quoted file's would cost more CPU than it saves
QUOTE_SPACING = 256
# Arrow's block within a block: its parser is ~30 % slower on one 8 MiB block than on 1 MiB ones (cache);
# no record is longer than one (`_vouched`), so none straddles two of them
ARROW_BLOCK = 1 << 20
BOM = b"\xef\xbb\xbf"
QUOTE, LF, CR = ord('"'), ord("\n"), ord("\r")


def parallel(src: ByteSource, encoding: str, header: list[str]) -> bool:
    """Whether the file is read by blocks: a plain local UTF-8 file of more than one block."""
    if src.path is None or src.gzip or src.head.startswith(UTF16_BOMS):
        return False
    if codecs.lookup(encoding).name != "utf-8" or len(set(header)) != len(header):
        return False
    try:
        return os.path.getsize(src.path) > BLOCK_BYTES
    except OSError:
        return False


class _Parsed:
    """One block's records: the batches of good ones, the (block record number, reason, text) of the invalid
    ones, `records` counting both, and the names Arrow gave the columns."""

    def __init__(
        self, batches: list[pa.RecordBatch], invalid: list[tuple[int, str, str]], names: list[str]
    ) -> None:
        self.batches, self.invalid, self.names = batches, invalid, names
        self.records = sum(b.num_rows for b in batches) + len(invalid)


def csv_block_batches(
    src: ByteSource, header: list[str], delimiter: str, block: int, selection: list[str]
) -> Iterator[pa.RecordBatch]:
    """`readers.csv_stream_batches` of the whole file (`src.path`, Arrow's blocks of `block` bytes), parsed
    block by block in parallel."""
    assert src.path is not None
    columns = list(selection) or header
    size = max(BLOCK_BYTES, 4 * block)
    before = 0  # data records in the blocks handed on
    # invalid records after a block's last good one wait for the next good one (as `_number_rows` has them)
    held: list[tuple[int, str, str]] = []
    handoff: int | None = None  # the offset the streaming reader takes over from
    with ThreadPoolExecutor(THREADS, thread_name_prefix="fc-csv-block") as pool, open(src.path, "rb") as f:
        spare: list[bytearray] = []
        blocks = _parsed(pool, _pieces(f, size, spare), header, columns, delimiter, block, spare)
        try:
            for offset, parsed in blocks:
                if parsed is None or (offset == 0 and parsed.names != header):
                    handoff = offset  # (at 0: Arrow reads the header otherwise: all of it the old way)
                    break
                yield from _numbered(parsed, before, held)
                before += parsed.records
        finally:
            blocks.close()  # the blocks parsed ahead are dropped
        if handoff is None:
            if held:  # invalid records after the last good one
                yield _with_rows(
                    empty_batch(pa.schema([(c, pa.string()) for c in columns])),
                    np.zeros(0, np.int64),
                    sorted(held),
                )
            return
    if handoff == 0:  # all of it the old way
        with src.open() as stream:
            yield from csv_stream_batches(src.name, stream, "utf-8", header, delimiter, block, selection)
        return
    # the rest by the streaming reader, as it would have read it: blank lines (not records) in front align
    # its block boundaries with those of the whole file
    with open(src.path, "rb") as f:
        f.seek(handoff)
        pad = b"\n" * (handoff % block)
        with pa.PythonFile(io.BufferedReader(_Replay(pad, f), 1 << 20), mode="r") as stream:
            yield from csv_stream_batches(
                src.name, stream, "utf-8", header, delimiter, block, selection, before=before, held=held
            )


def _parsed(
    pool: ThreadPoolExecutor,
    pieces: Iterator[tuple[int, bytearray, int, int | None]],
    header: list[str],
    columns: list[str],
    delimiter: str,
    block: int,
    spare: list[bytearray],
) -> Iterator[tuple[int, _Parsed | None]]:
    """(offset, parsed block) in file order, IN_FLIGHT blocks parsed ahead on `pool`; (offset, None) where
    the streaming reader must take over (no block end found, not vouched for, or the parser failed). A
    block's buffer goes back to `spare` once it is parsed (Arrow's arrays are copies, not views of it)."""
    pending: deque[tuple[int, Future[_Parsed | None], bytearray]] = deque()
    try:
        for offset, data, _, cut in pieces:
            if cut is None:
                refused: Future[_Parsed | None] = Future()
                refused.set_result(None)
                pending.append((offset, refused, data))
                break
            job = pool.submit(_parse, data, cut, header, columns, delimiter, block, offset == 0)
            pending.append((offset, job, data))
            if len(pending) >= IN_FLIGHT:
                offset, job, data = pending.popleft()
                parsed = job.result()
                spare.append(data)
                yield offset, parsed
        while pending:
            offset, job, data = pending.popleft()
            parsed = job.result()
            spare.append(data)
            yield offset, parsed
    finally:
        for _, job, _ in pending:
            job.cancel()


def _pieces(
    f: io.BufferedIOBase, size: int, spare: list[bytearray]
) -> Iterator[tuple[int, bytearray, int, int | None]]:
    """(file offset, buffer, bytes in it, where its block ends) of the file's blocks; a block ends after a
    `\n` that an even number of quotes precede (checked where it is parsed: `_vouched`); None where no such
    `\n` is found (the streaming reader takes over). Buffers are taken from `spare` when there is one (a
    fresh 8 MiB buffer per block cost ~0.15 s of page faults on a 430 MB file)."""
    offset, carry = 0, b""
    while True:
        data = spare.pop() if spare else bytearray(size + size // 8)
        if len(data) < len(carry) + size:
            data = bytearray(len(carry) + size)
        data[: len(carry)] = carry
        got = f.readinto(memoryview(data)[len(carry) : len(carry) + size])
        at_end = got < size
        n = len(carry) + got
        if not n:
            return
        quotes = data.count(b'"', 0, n) if data.find(b'"', 0, n) >= 0 else 0  # (find: memchr, faster)
        # (a block dense with quotes: checking them would cost more than parsing in parallel saves)
        dense = quotes * QUOTE_SPACING > n
        cut = None if dense else n if at_end else _cut(data, n, quotes)
        yield offset, data, n, cut
        if at_end or cut is None:
            return
        offset, carry = offset + cut, bytes(data[cut:n])


def _cut(data: bytearray, n: int, quotes: int, lines: int = 1000) -> int | None:
    """After the last `\n` of the first n bytes of `data` (holding `quotes` quotes) with an even number of
    quotes before it (of the last `lines`)."""
    pos = data.rfind(b"\n", 0, n)
    after = data.count(b'"', pos, n) if quotes else 0
    for _ in range(lines):
        if pos < 0:
            return None
        if (quotes - after) % 2 == 0:
            return pos + 1
        before = data.rfind(b"\n", 0, pos)
        after += data.count(b'"', before + 1, pos)
        pos = before
    return None


def _vouched(data: bytearray, n: int, delimiter: int, block: int, skip: int) -> bool:
    """Whether the first n bytes of `data` are records as Arrow reads them from a record boundary on (see the
    module docstring), each no longer than Arrow's block: an even number of quotes, each one where Arrow
    takes it for one, so that quote parity is Arrow's in-quotes state."""
    if data.find(b'"', 0, n) < 0:
        last = data.rfind(b"\n", 0, n)
        half = max(1, block // 2)  # a \n in every half block: no record longer than a block
        if any(data.find(b"\n", x, x + half) < 0 for x in range(0, last + 1, half)):
            return False
        return n - 1 - last <= block
    a = np.frombuffer(data, np.uint8, count=n)
    quotes = np.flatnonzero(a == QUOTE)
    if len(quotes) % 2:
        return False  # (at the end of the file: an unterminated quote)
    newlines = np.flatnonzero(a == LF)
    ends = newlines[np.searchsorted(quotes, newlines) % 2 == 0]  # after an even number of quotes
    around = np.zeros(256, bool)  # what may stand before an opening / after a closing quote
    around[[delimiter, LF, CR, QUOTE]] = True
    opening, closing = quotes[0::2], quotes[1::2]
    opening = opening[opening != skip]
    closing = closing[closing + 1 < n]
    if not (around[a[opening - 1]].all() and around[a[closing + 1]].all()):
        return False
    bounds = np.concatenate(([skip - 1], ends, [n - 1]))
    return bool(np.diff(bounds).max(initial=0) <= block)


def _parse(
    data: bytearray, n: int, header: list[str], columns: list[str], delimiter: str, block: int, first: bool
) -> _Parsed | None:
    """The records of the first n bytes of `data` (the first block reads the header line), or None when
    they are not `_vouched` for or the parser fails."""
    skip = len(BOM) if first and data.startswith(BOM) else 0
    if not _vouched(data, n, ord(delimiter), block, skip):
        return None
    invalid: list[tuple[int, str, str]] = []
    on_invalid = invalid_collector(invalid, -1 if first else 0)
    read, parse, convert = csv_options(
        "utf-8",
        header,
        delimiter,
        min(n + 1, max(block, ARROW_BLOCK)),
        None if first else columns,
        on_invalid,
        None if first else header,
    )
    try:
        table = pcsv.read_csv(
            pa.BufferReader(pa.py_buffer(memoryview(data)[:n])),
            read_options=read,
            parse_options=parse,
            convert_options=convert,
        )
    except pa.ArrowInvalid:
        return None
    names = table.column_names
    table = table.select(columns) if first and set(columns) <= set(names) else table
    return _Parsed(table.to_batches() or [empty_batch(table.schema)], invalid, names if first else header)


def _numbered(parsed: _Parsed, before: int, held: list[tuple[int, str, str]]) -> Iterator[pa.RecordBatch]:
    """The block's batches with `_row` etc. (`readers._with_rows`), `before` data records before it; invalid
    records after its last good one are left in `held` (and those held before it are taken)."""
    first = before + 1
    held.extend((before + r, reason, text) for r, reason, text in parsed.invalid)
    good = parsed.records - len(parsed.invalid)
    rows = np.arange(first, first + (parsed.records if held else good), dtype=np.int64)
    bad: list[tuple[int, str, str]] = []
    if held:
        rows = rows[~np.isin(rows, np.array([b[0] for b in held], np.int64))]
        last = rows[-1] if len(rows) else -1
        bad = sorted(b for b in held if b[0] <= last)
        held[:] = [b for b in held if b[0] > last]
    start = 0
    for i, batch in enumerate(parsed.batches):
        end = start + batch.num_rows
        # each batch takes the invalid records among its rows (in row order: `_with_rows`), the last the rest
        if i == len(parsed.batches) - 1:
            k = len(bad)
        elif end > start:
            k = next((j for j, b in enumerate(bad) if b[0] > rows[end - 1]), len(bad))
        else:
            k = 0
        yield _with_rows(batch, rows[start:end], bad[:k])
        bad = bad[k:]
        start = end
