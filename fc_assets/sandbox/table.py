"""One entity kind in memory: rows built on demand, kept in numpy columns, paged by keyset.

Why this shape: 200k orders as Python dicts would cost gigabytes and seconds to generate, so a generated
row is only a few numbers in numpy columns and its GraphQL node (a dict) is built when a page needs it.
A row that was written (mutation, batch, event) is stored as a dict in `written`, which wins over the
generated one.

Order of every connection: ascending `updatedOn`, then ascending `id` (ids are row + 1). The sort key of a
row is one int64, `updatedOn_ms << 22 | row`, so the whole order is one sorted array; a date window is
two binary searches and a cursor is that key, base64-encoded (keyset: inserts and updates during a crawl
never shift the rows after the cursor). Filters other than dates are code columns tested with `np.isin` on
chunks of the window, so a page costs O(log n + rows scanned), not O(n).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

ROW_BITS = 22
ROW_MASK = (1 << ROW_BITS) - 1
MAX_ROWS = 1 << ROW_BITS  # 4,194,304 rows of one kind
MAX_MS = (1 << (63 - ROW_BITS)) - 1  # the latest sortable updatedOn: 2039-09-07 (int64 key)
CHUNK = 4096


def clamp(ms: int) -> int:
    """A date bound within what the int64 sort key can hold (1970 .. MAX_MS)."""
    return min(max(ms, 0), MAX_MS)


class CursorError(ValueError):
    """A cursor that this connection did not issue."""


class GrowArray:
    """A numpy array that can be appended to (capacity doubles) and assigned by index."""

    def __init__(self, values: np.ndarray, dtype: Any) -> None:
        self._data = np.array(values, dtype=dtype)
        self.n = len(self._data)

    def view(self) -> np.ndarray:
        return self._data[: self.n]

    def append(self, value: int) -> None:
        if self.n == len(self._data):
            grown = np.zeros(max(16, 2 * len(self._data)), dtype=self._data.dtype)
            grown[: self.n] = self._data[: self.n]
            self._data = grown
        self._data[self.n] = value
        self.n += 1

    def __setitem__(self, row: int, value: int) -> None:
        self._data[row] = value

    def __getitem__(self, row: int) -> int:
        return int(self._data[row])


class CodeColumn:
    """A string column as int codes (a filter is `np.isin` over codes); None is code 0."""

    def __init__(self, vocab: list[str], codes: np.ndarray) -> None:
        self.vocab = [None, *vocab]
        self.code_of = {v: i for i, v in enumerate(self.vocab)}
        self.values = GrowArray(codes + 1, np.int32)  # generated codes index `vocab`; shift past None

    def code(self, value: str | None) -> int:
        c = self.code_of.get(value)
        if c is None:
            c = self.code_of[value] = len(self.vocab)
            self.vocab.append(value)
        return c

    def codes(self, values: Iterable[str | None]) -> np.ndarray:
        return np.array([self.code_of[v] for v in values if v in self.code_of], dtype=np.int32)

    def value(self, row: int) -> str | None:
        return self.vocab[self.values[row]]


@dataclass
class Page:
    rows: list[int]
    cursors: list[str]
    has_next: bool
    has_previous: bool


class Table:
    """Rows of one kind. `build(row)` makes the node of a generated row; `filters` name the code columns
    (GraphQL argument → column) and `extract` reads each filter's value from a written node."""

    def __init__(
        self,
        kind: str,
        *,
        n: int,
        updated_ms: np.ndarray,
        created_ms: np.ndarray,
        build: Callable[[int], dict[str, Any]],
        refs: Iterable[Any],
        ref_key: Callable[[dict[str, Any]], Any],
        filters: dict[str, CodeColumn] | None = None,
        extract: dict[str, Callable[[dict[str, Any]], str | None]] | None = None,
        cache: bool = True,
        id_base: int = 1,
    ) -> None:
        if n >= MAX_ROWS:
            raise ValueError(f"at most {MAX_ROWS - 1} {kind}")
        self.kind = kind
        self.n = n
        self.id_base = id_base  # id of row r is str(r + id_base)
        self.updated = GrowArray(updated_ms, np.int64)
        self.created = GrowArray(created_ms, np.int64)
        self._build = build
        self.written: dict[int, dict[str, Any]] = {}
        self._built: dict[int, dict[str, Any]] | None = {} if cache else None  # master data: build once
        self.by_ref: dict[Any, int] = {key: row for row, key in enumerate(refs)}
        self._ref_key = ref_key
        self.filters = filters or {}
        self._extract = extract or {}
        self._sorted: np.ndarray | None = None
        self._prefix = f"{kind}:".encode()

    # ------------------------------------------------------------------------------------------- rows

    def node(self, row: int) -> dict[str, Any]:
        """The node of a row (never mutate it: writes copy, change and `put`)."""
        written = self.written.get(row)
        if written is not None:
            return written
        if self._built is None:
            return self._build(row)
        node = self._built.get(row)
        if node is None:
            node = self._built[row] = self._build(row)
        return node

    def id_of(self, row: int) -> str:
        return str(row + self.id_base)

    def row_of_id(self, node_id: Any) -> int | None:
        try:
            row = int(str(node_id)) - self.id_base
        except ValueError:
            return None
        return row if 0 <= row < self.n else None

    def find(self, key: Any) -> dict[str, Any] | None:
        row = self.by_ref.get(key)
        return None if row is None else self.node(row)

    def put(
        self, row: int | None, node: dict[str, Any], updated_ms: int, created_ms: int | None = None
    ) -> int:
        """Store a written node (new when `row` is None: it gets the next id); re-index it."""
        if row is None:
            row = self.n
            if row + 1 >= MAX_ROWS:
                raise ValueError(f"at most {MAX_ROWS - 1} {self.kind}")
            self.n += 1
            self.updated.append(updated_ms)
            self.created.append(created_ms if created_ms is not None else updated_ms)
            for col in self.filters.values():
                col.values.append(0)
            node["id"] = self.id_of(row)
        else:
            old = self.node(row)
            self.by_ref.pop(self._ref_key(old), None)
            self.updated[row] = updated_ms
            if created_ms is not None:
                self.created[row] = created_ms
        node["_row"] = row
        self.written[row] = node
        self.by_ref[self._ref_key(node)] = row
        for name, col in self.filters.items():
            col.values[row] = col.code(self._extract[name](node))
        self._sorted = None
        return row

    def rows_updated_between(self, lo_ms: int, hi_ms: int) -> np.ndarray:
        """Rows with lo <= updatedOn < hi (half-open; the admin `counts` answer), in connection order."""
        keys = self._keys()
        a = np.searchsorted(keys, clamp(lo_ms) << ROW_BITS, "left")
        b = np.searchsorted(keys, clamp(hi_ms) << ROW_BITS, "left")
        return keys[a:b] & ROW_MASK

    # ----------------------------------------------------------------------------------------- paging

    def cursor(self, row: int) -> str:
        key = (self.updated[row] << ROW_BITS) | row
        return base64.urlsafe_b64encode(self._prefix + str(key).encode()).decode()

    def _key_of_cursor(self, cursor: str) -> int:
        try:
            raw = base64.urlsafe_b64decode(cursor.encode())
            if not raw.startswith(self._prefix):
                raise ValueError
            return int(raw[len(self._prefix) :])
        except (ValueError, TypeError) as exc:
            raise CursorError(f"cursor {cursor!r} is not a {self.kind} cursor") from exc

    def _keys(self) -> np.ndarray:
        if self._sorted is None:
            rows = np.arange(self.n, dtype=np.int64)
            self._sorted = np.sort((self.updated.view() << ROW_BITS) | rows)
        return self._sorted

    def search(
        self,
        *,
        first: int | None,
        last: int | None,
        after: str | None,
        before: str | None,
        updated: tuple[int | None, int | None] | None = None,
        created: tuple[int | None, int | None] | None = None,
        equals: dict[str, list[str | None]] | None = None,
        refs: list[Any] | None = None,
        stuck: bool = False,
    ) -> Page:
        """One page in connection order. Date bounds are inclusive (Fluent's DateRange); `equals` maps a
        filter column to accepted values; `refs` are `by_ref` keys. `stuck` (fault) returns the page that
        ends at `after` again, with hasNextPage true, so a client sees a cursor that does not advance."""
        keys = self._keys()
        lo, hi = 0, len(keys)
        if updated is not None:
            if updated[0] is not None:
                lo = int(np.searchsorted(keys, clamp(updated[0]) << ROW_BITS, "left"))
            if updated[1] is not None:
                hi = int(np.searchsorted(keys, (clamp(updated[1]) << ROW_BITS) | ROW_MASK, "right"))
        range_lo, range_hi = lo, hi
        if after is not None:
            k = self._key_of_cursor(after)
            lo = max(lo, int(np.searchsorted(keys, k, "left" if stuck else "right")))
        if before is not None:
            hi = min(hi, int(np.searchsorted(keys, self._key_of_cursor(before), "left")))
        match = self._matcher(created, equals, refs)
        if stuck and after is not None:
            size = first if first is not None else (last or 1)
            rows = self._scan_back(keys, range_lo, lo + 1 if lo < len(keys) else lo, size, match)
            return Page(rows, [self.cursor(r) for r in rows], True, True)
        if last is not None and first is None:
            rows = self._scan_back(keys, lo, hi, last + 1, match)
            has_prev = len(rows) > last
            rows = rows[-last:] if last else []
            has_next = self._any(keys, hi, range_hi, match)
            return Page(rows, [self.cursor(r) for r in rows], has_next, has_prev)
        size = first if first is not None else 0
        rows = self._scan(keys, lo, hi, size + 1, match)
        has_next = len(rows) > size
        rows = rows[:size]
        if last is not None:
            rows = rows[-last:] if last else []
        has_prev = self._any_before(keys, range_lo, lo, match)
        return Page(rows, [self.cursor(r) for r in rows], has_next or stuck, has_prev)

    def _matcher(
        self,
        created: tuple[int | None, int | None] | None,
        equals: dict[str, list[str | None]] | None,
        refs: list[Any] | None,
    ) -> Callable[[np.ndarray], np.ndarray] | None:
        tests: list[Callable[[np.ndarray], np.ndarray]] = []
        if created is not None:
            c_lo, c_hi = created
            cv = self.created.view()
            if c_lo is not None:
                tests.append(lambda rows: cv[rows] >= c_lo)
            if c_hi is not None:
                tests.append(lambda rows: cv[rows] <= c_hi)
        for name, values in (equals or {}).items():
            col = self.filters[name]
            codes, colv = col.codes(values), col.values.view()
            tests.append(lambda rows, codes=codes, colv=colv: np.isin(colv[rows], codes))
        if refs is not None:
            wanted = np.array(sorted({self.by_ref[r] for r in refs if r in self.by_ref}), dtype=np.int64)
            tests.append(lambda rows: np.isin(rows, wanted))
        if not tests:
            return None

        def match(rows: np.ndarray) -> np.ndarray:
            ok = tests[0](rows)
            for t in tests[1:]:
                ok &= t(rows)
            return rows[ok]

        return match

    @staticmethod
    def _scan(keys: np.ndarray, lo: int, hi: int, want: int, match: Any) -> list[int]:
        if match is None:
            return (keys[lo : min(hi, lo + want)] & ROW_MASK).tolist()
        out: list[int] = []
        pos = lo
        while pos < hi and len(out) < want:
            end = min(hi, pos + max(CHUNK, want))
            out.extend(match(keys[pos:end] & ROW_MASK).tolist())
            pos = end
        return out[:want]

    @staticmethod
    def _scan_back(keys: np.ndarray, lo: int, hi: int, want: int, match: Any) -> list[int]:
        if match is None:
            return (keys[max(lo, hi - want) : hi] & ROW_MASK).tolist()
        out: list[int] = []
        pos = hi
        while pos > lo and len(out) < want:
            start = max(lo, pos - max(CHUNK, want))
            out[:0] = match(keys[start:pos] & ROW_MASK).tolist()
            pos = start
        return out[-want:] if want else []

    def _any(self, keys: np.ndarray, lo: int, hi: int, match: Any) -> bool:
        return bool(self._scan(keys, lo, hi, 1, match)) if lo < hi else False

    def _any_before(self, keys: np.ndarray, lo: int, hi: int, match: Any) -> bool:
        return bool(self._scan_back(keys, lo, hi, 1, match)) if lo < hi else False


def page_list(
    items: list[Any],
    ids: list[int],
    *,
    first: int | None,
    last: int | None,
    after: str | None,
    before: str | None,
    kind: str,
) -> tuple[list[Any], list[str], bool, bool]:
    """Keyset paging of a short child list already in id order (order items, fulfilment items...)."""
    prefix = f"{kind}:".encode()

    def key(cursor: str) -> int:
        try:
            raw = base64.urlsafe_b64decode(cursor.encode())
            if not raw.startswith(prefix):
                raise ValueError
            return int(raw[len(prefix) :])
        except (ValueError, TypeError) as exc:
            raise CursorError(f"cursor {cursor!r} is not a {kind} cursor") from exc

    lo, hi = 0, len(items)
    if after is not None:
        k = key(after)
        while lo < hi and ids[lo] <= k:
            lo += 1
    if before is not None:
        k = key(before)
        while hi > lo and ids[hi - 1] >= k:
            hi -= 1
    if last is not None and first is None:
        start = max(lo, hi - last)
        sel = range(start, hi)
        has_prev, has_next = start > lo, hi < len(items)
    else:
        end = min(hi, lo + (first or 0))
        sel = range(lo, end)
        if last is not None:
            sel = sel[-last:] if last else range(0)
        has_next, has_prev = end < hi, lo > 0
    cursors = [base64.urlsafe_b64encode(prefix + str(ids[i]).encode()).decode() for i in sel]
    return [items[i] for i in sel], cursors, has_next, has_prev
