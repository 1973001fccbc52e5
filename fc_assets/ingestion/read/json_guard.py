"""Limits on a JSON document's shape, checked on the bytes before the parser sees them.

ijson (yajl) has two costs an attacker controls: it tracks the path to every value as a string, so a
document of `[` x 100,000 (200 KB) made it allocate ~23 GB; and it re-scans an unfinished token on every
buffer refill, so a 80 MB string took 42 s (quadratic). `JsonGuard` wraps the byte stream handed to ijson
and refuses, before a block reaches the parser:

- nesting deeper than `MAX_DEPTH` (arrays and objects, counted outside strings);
- a single token (string, number, literal) or run of whitespace longer than the limit
  (`FC_MAX_VALUE_BYTES`): no value of a record legitimately runs to megabytes;
- an unpaired UTF-16 surrogate escape (`"\\ud800"`): no Unicode character, and yajl reads it as `?` —
  a ref silently changed into another.

Given the records' depth (`record_depth`), it also keeps ijson from building a record longer than the
limit: ijson builds each record whole as Python objects before anything checks it (a 44 MB record of 3M
keys took 450 MB). The bytes of the record being read are held back until its closing bracket shows it
fits; one that outgrows the limit is never passed on — the parser sees the string `marker` in its place
(the reader rejects that row, as a JSONL line too long) and then the bytes after its closing bracket.
Memory stays the limit plus a block. Given also which container at its depth the records' array is
(`array_ordinal`), it counts that array's separators (`array_commas`), so that the reader can tell records
ijson read from another array at the same dotted path (records_path.py).

The scan is vectorised per block (numpy over the positions of `" \\ [ ] { } , :` only), so it costs a few
milliseconds per MB and memory stays one block.
"""

from __future__ import annotations

import io
import re
import secrets
from collections import deque

import numpy as np
import pyarrow as pa

from fc_assets.ingestion.read.unreadable import FileUnreadable

MAX_DEPTH = 64

_SPECIAL_TABLE = bytes(1 if c in b'"\\[]{},:' else 0 for c in range(256))
_OPEN = np.zeros(256, np.int8)
_OPEN[list(b"[{")] = 1
_OPEN[list(b"]}")] = -1
QUOTE, BACKSLASH, COMMA = ord('"'), ord("\\"), ord(",")
# a surrogate escape, or text looking like one after an escaped backslash (`_surrogates` tells them apart)
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


class JsonGuard(io.RawIOBase):
    """A readable stream over `stream` that raises `FileUnreadable` at the first block breaking a limit.
    `record_depth`: the depth a record's opening bracket brings the document to (`[{...}]`: 2), to replace
    a record longer than `max_value_bytes` by the string `marker`; None: records are passed on whole."""

    def __init__(
        self,
        stream: pa.NativeFile,
        name: str,
        max_value_bytes: int,
        max_depth: int = MAX_DEPTH,
        record_depth: int | None = None,
        array_ordinal: int | None = None,
        partial: bool = False,
    ):
        self._stream, self._name = stream, name
        # `partial`: the stream is the head of a longer document (where the records are is looked for in it):
        # its end may cut a surrogate pair, left for the whole document's read to check
        self._partial = partial
        self._max_value, self._max_depth = max_value_bytes, max_depth
        self._offset = 0  # bytes scanned so far
        self._depth = 0
        self._in_string = False
        self._backslashes = 0  # length of the run of backslashes that ended the previous block
        self._boundary = 0  # offset of the last token boundary seen (quote or structural character)
        self._pending = b""  # the end of the last block, scanned again for surrogate escapes
        self._record_depth = record_depth
        # with `array_ordinal` (the records' array is the n-th container opening at its depth, 0-based):
        # the separators between its elements, counted (`elements`), so that the reader can tell records
        # read from another array at the same dotted path (records_path.py)
        self._ordinal = array_ordinal
        self._opened = 0  # containers opened at the array's depth so far, before it
        self.array_state = "before"  # then "inside", "after" (closed)
        self.array_commas = 0
        # a value no file holds (a random part), so the reader knows a record it never sees
        self.marker = f"fc-assets: record too long {secrets.token_hex(12)}"
        self._marker = f'"{self.marker}"'.encode()
        self._out: deque[bytes | memoryview] = deque()  # checked bytes not yet read
        self._open_at: int | None = None  # offset of the opening bracket of the record being read
        self._held: list[bytes | memoryview] = []  # its bytes so far, until it is known to fit
        self._dropping = False  # it is too long: its bytes are dropped (the marker is passed at its end)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        while not self._out:
            data = self._stream.read(len(view))
            records = self._scan(data) if data else None
            if data or not self._partial:
                self._surrogates(data)
            if not data:
                self._out.extend(self._held)  # a record cut by the end: the parser says so
                self._held = []
                break
            if records is None:
                self._out.append(data)
            else:
                self._records(data, *records)
        n = 0
        while self._out and n < len(view):
            piece = self._out.popleft()
            size = min(len(piece), len(view) - n)
            view[n : n + size] = piece[:size]
            if size < len(piece):
                self._out.appendleft(memoryview(piece)[size:])
            n += size
        return n

    def close(self) -> None:
        self._stream.close()
        super().close()

    def _refuse(self, message: str) -> None:
        raise FileUnreadable(self._name, f"JSON {message}: refused")

    def _scan(self, data: bytes) -> tuple[np.ndarray, np.ndarray] | None:
        """Check a block; with `record_depth`: the positions in it of records' opening and closing
        brackets."""
        arr = np.frombuffer(data, np.uint8)
        pos = np.flatnonzero(np.frombuffer(data.translate(_SPECIAL_TABLE), np.bool_))
        ch = arr[pos]
        is_quote = ch == QUOTE
        is_bs = ch == BACKSLASH
        quote_idx = np.flatnonzero(is_quote)
        quotes = pos[quote_idx]
        real = np.ones(len(quotes), bool)
        bs_pos = pos[is_bs]
        if len(bs_pos) or self._backslashes:
            # a quote is escaped when an odd run of backslashes ends right before it
            run_start = np.ones(len(bs_pos), bool)
            run_start[1:] = np.diff(bs_pos) != 1
            starts = bs_pos[run_start]
            ends = (
                np.append(bs_pos[np.flatnonzero(run_start)[1:] - 1], bs_pos[-1:]) if len(bs_pos) else bs_pos
            )
            lengths = ends - starts + 1
            if len(starts) and starts[0] == 0:
                lengths[0] += self._backslashes
            k = np.searchsorted(ends, quotes - 1)
            k_ok = k < len(ends)
            before = np.zeros(len(quotes), np.int64)
            hit = np.zeros(len(quotes), bool)
            hit[k_ok] = ends[k[k_ok]] == quotes[k_ok] - 1
            before[hit] = lengths[k[hit]]
            if self._backslashes and len(quotes) and quotes[0] == 0:
                before[0] = self._backslashes
            real = before % 2 == 0
            self._backslashes = int(lengths[-1]) if len(bs_pos) and bs_pos[-1] == len(data) - 1 else 0
        real_quote = np.zeros(len(pos), bool)
        real_quote[quote_idx[real]] = True
        # structural characters outside strings: an even number of real quotes before them
        inside = (np.cumsum(real_quote) + self._in_string) % 2 == 1
        structural = ~is_quote & ~is_bs & ~inside
        steps = _OPEN[ch[structural]].astype(np.int64)
        depths = steps
        if len(steps):
            depths = np.cumsum(steps) + self._depth
            if depths.max() > self._max_depth:
                at = self._offset + int(pos[structural][int(np.argmax(depths > self._max_depth))])
                self._refuse(f"nesting deeper than {self._max_depth} levels (at byte {at:,})")
            self._depth = int(depths[-1])
        if int(real.sum()) % 2:
            self._in_string = not self._in_string
        edges = np.concatenate([[self._boundary], pos[real_quote | structural] + self._offset])
        gaps = np.diff(np.append(edges, self._offset + len(data)))
        if gaps.max() > self._max_value:
            at = int(edges[int(np.argmax(gaps > self._max_value))])
            self._refuse(f"value longer than {self._max_value:,} bytes (FC_MAX_VALUE_BYTES) from byte {at:,}")
        self._boundary = int(edges[-1])
        self._offset += len(data)
        if self._record_depth is None:
            return None
        if self._ordinal is not None and self.array_state != "after":
            self._count_elements(ch[structural], steps, depths)
        # brackets between depth d - 1 and d, either way: depth before + depth after == 2d - 1
        crossing = np.flatnonzero(2 * depths - steps == 2 * self._record_depth - 1)
        brackets = pos[structural][crossing]
        opening = steps[crossing] == 1
        return brackets[opening], brackets[~opening]

    def _count_elements(self, chars: np.ndarray, steps: np.ndarray, depths: np.ndarray) -> None:
        """Follow the records' array through a block's structural characters (`depths`: after each): find
        its opening bracket (the `array_ordinal`-th into its depth), count its commas, see it close."""
        level = self._record_depth - 1  # type: ignore[operator]
        start = 0
        if self.array_state == "before":
            opens = np.flatnonzero((steps == 1) & (depths == level))
            need = self._ordinal - self._opened  # type: ignore[operator]
            if need >= len(opens):
                self._opened += len(opens)
                return
            start, self.array_state = int(opens[need]) + 1, "inside"
        closes = np.flatnonzero((steps[start:] == -1) & (depths[start:] == level - 1))
        end = start + int(closes[0]) if len(closes) else len(steps)
        self.array_commas += int(np.count_nonzero((chars[start:end] == COMMA) & (depths[start:end] == level)))
        if len(closes):
            self.array_state = "after"

    def _records(self, data: bytes, opens: np.ndarray, closes: np.ndarray) -> None:
        """Pass `data` on, except the bytes of records longer than the limit (each replaced by the marker
        at its closing bracket) and those of the record still open at its end (held until it closes or
        outgrows the limit). Records alternate open, close at their depth: one open before this block
        closes first."""
        limit, base = self._max_value, self._offset - len(data)
        view = memoryview(data)
        cursor = 0  # bytes of `data` before it are passed on or dropped
        if self._open_at is not None:
            if not len(closes):  # still open at the end of this block
                if self._dropping or self._offset - self._open_at > limit:
                    self._held, self._dropping = [], True
                else:
                    self._held.append(data)
                return
            close = int(closes[0])
            if self._dropping or base + close + 1 - self._open_at > limit:
                self._out.append(self._marker)
                cursor = close + 1
            else:
                self._out.extend(self._held)
            self._open_at, self._held, self._dropping = None, [], False
            closes = closes[1:]
        done = len(closes)  # records opening in this block and closing in it: opens[:done]
        for i in np.flatnonzero(closes - opens[:done] >= limit):  # longer than the limit (rare)
            self._pass(view[cursor : opens[i]])
            self._out.append(self._marker)
            cursor = int(closes[i]) + 1
        if len(opens) > done:  # one still open at the end
            start = int(opens[done])
            self._pass(view[cursor:start])
            self._open_at = base + start
            self._dropping = len(data) - start > limit
            self._held = [] if self._dropping else [data[start:]]  # a copy: frees the block
        else:
            self._pass(view[cursor:])

    def _pass(self, piece: memoryview) -> None:
        if len(piece):
            self._out.append(piece)

    def _surrogates(self, data: bytes) -> None:
        """Refuse an unpaired surrogate escape: a high one (`\\ud800`-`\\udbff`) not immediately followed
        by a low one (`\\udc00`-`\\udfff`), or a low one alone. Only escapes after an even run of
        backslashes count (`\\\\ud800` is text); the end of a block, where an escape may be cut, and a high
        one whose partner may start there are scanned with the next block (`b""`: the end)."""
        buf = self._pending + data
        cut = len(buf) if not data else _escape_boundary(buf, len(buf) - 6)
        high = None
        for m in _SURROGATE.finditer(buf):
            if m.start() >= cut:
                break  # scanned with the next block
            run = m.start()  # where the run of backslashes ending with this one starts
            while run > 0 and buf[run - 1] == BACKSLASH:
                run -= 1
            if (m.start() - run) % 2:
                continue  # an escaped backslash, then text
            value = int(m.group(0)[2:], 16)
            if high is not None:
                if m.start() == high.end() and value >= 0xDC00:
                    high = None
                    continue
                self._lone(high.group(0))
            if value >= 0xDC00:
                self._lone(m.group(0))
            high, high_run = m, run
        if high is not None:
            if not data or high.end() < cut:  # its partner would have been scanned
                self._lone(high.group(0))
            cut = high_run
        self._pending = buf[cut:]

    def _lone(self, escape: bytes) -> None:
        self._refuse(
            f"string holds an unpaired UTF-16 surrogate escape {escape.decode()} (no Unicode character; "
            "the parser would change the value)"
        )


def _escape_boundary(buf: bytes, i: int) -> int:
    """A position at or before `i` where no escape is cut: before a `\\u` that may be cut at `i`, and
    before the whole run of backslashes ending there."""
    i = max(0, i)
    j = buf.rfind(b"\\u", max(0, i - 5), i)
    if j >= 0:
        i = j
    while i > 0 and buf[i - 1] == BACKSLASH:
        i -= 1
    return i
