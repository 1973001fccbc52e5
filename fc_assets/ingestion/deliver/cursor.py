"""Sensor cursor logic, pure (no I/O): which listed files are new, which wait, and the next cursor.

The cursor is a small JSON document (Dagster copies it into every tick row, dagster-notes §2.4):

    {"v": 1, "mark": 1718000000.0, "tie_keys": ["3f9a…"], "recent": {"1717999990.0": "ab12…cd34…"},
     "pending": {"inbox/a.csv": [1024, 1718000001.0]}, "pruned_on": "2025-06-01", "full_scan_at": 1718000000.0}

- `mark`: high-water mark, the largest last-modified time of an emitted file. It never regresses.
- `tie_keys`: digests of `key@version` emitted at exactly `mark`. SFTP mtimes are whole seconds and S3's
  LastModified too, so many files share the mark; "newer than the mark" alone would drop them
  (connector-pitfalls §2 item 8, dagster-io/dagster#25310).
- `recent`: digests emitted in the lookback window `[mark - lookback, mark)`, bucketed by mtime. Each tick
  re-scans that window, so a file that shows up late with an older time (an S3 multipart upload carries
  its *start* time; a client that preserves mtimes) is still found, and the digests keep it from repeating.
- `pending`: files seen but held back (still growing, no marker yet, too large), keyed by path with the
  size/mtime last observed. They are re-examined every tick whatever the mark, so holding never loses them.
- `full_scan_at`: when the sensor last compared the whole listing with the feed's ledger (sensors.py): a file
  older than the lookback window that was never processed is "rescued" by that comparison, whatever its mtime.

A digest is 12 hex characters of BLAKE2b over `key@version` (version = S3 ETag, or `mtime:size` on SFTP), so
the cursor stays in the low kilobytes even for long file names, and a re-uploaded file with new content is a
new digest (and a new run). On SFTP a same-size rewrite in the same second keeps `mtime:size`; the full scan
tells it apart by content and gives it the version `mtime:size:<sha256 prefix>` (`ListedFile.fingerprint`). Files over the per-tick limit are neither recorded nor held: they sort after
everything emitted, so they stay "new" for the next tick. Of a size_stable backlog at most a tick's worth
(`max_files`) is watched (kept in `pending`) at once, stable files over the limit first, so the cursor stays
small and every tick can start `max_files` files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

CURSOR_VERSION = 1
MAX_DIGESTS = 6000  # beyond this the oldest lookback buckets are dropped (the window shrinks, the mark holds)

Stability = Literal["atomic", "size_stable", "marker"]


@dataclass(frozen=True)
class ListedFile:
    """One file in a listing. `etag` is set for S3; SFTP files are versioned by mtime and size."""

    key: str
    mtime: float
    size: int
    etag: str | None = None
    fingerprint: str | None = None  # content hash prefix, set only when mtime:size is ambiguous (SFTP)

    @property
    def version(self) -> str:
        if self.etag:
            return self.etag.strip('"')
        base = f"{_num(self.mtime)}:{self.size}"
        return f"{base}:{self.fingerprint}" if self.fingerprint else base

    @property
    def digest(self) -> str:
        return version_digest(self.key, self.version)


def version_digest(key: str, version: str) -> str:
    return hashlib.blake2b(f"{key}@{version}".encode(), digest_size=6).hexdigest()


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


@dataclass
class Cursor:
    mark: float | None = None
    tie_keys: list[str] = field(default_factory=list)
    recent: dict[str, list[str]] = field(default_factory=dict)
    pending: dict[str, list] = field(
        default_factory=dict
    )  # key → [size, mtime] or [size, mtime, fingerprint]
    pruned_on: str | None = None
    full_scan_at: float | None = None

    @classmethod
    def parse(cls, raw: str | None) -> Cursor:
        if not raw:
            return cls()
        d = json.loads(raw)
        if d.get("v") != CURSOR_VERSION:
            raise ValueError(f"unknown sensor cursor version {d.get('v')!r}; reset the cursor deliberately")
        recent = {k: _split(v) for k, v in (d.get("recent") or {}).items()}
        return cls(
            d.get("mark"),
            list(d.get("tie_keys") or []),
            recent,
            dict(d.get("pending") or {}),
            d.get("pruned_on"),
            d.get("full_scan_at"),
        )

    def dump(self) -> str:
        d = {
            "v": CURSOR_VERSION,
            "mark": self.mark,
            "tie_keys": sorted(self.tie_keys),
            "recent": {k: "".join(sorted(v)) for k, v in sorted(self.recent.items())},
            "pending": dict(sorted(self.pending.items())),
        }
        if self.pruned_on:
            d["pruned_on"] = self.pruned_on
        if self.full_scan_at is not None:
            d["full_scan_at"] = self.full_scan_at
        return json.dumps(d, separators=(",", ":"))

    def seen(self) -> set[str]:
        out = set(self.tie_keys)
        for v in self.recent.values():
            out.update(v)
        return out


def _split(s: str) -> list[str]:
    return [s[i : i + 12] for i in range(0, len(s), 12)]


@dataclass
class Held:
    file: ListedFile
    reason: str


@dataclass
class TickPlan:
    ready: list[ListedFile]
    held: list[Held]
    deferred: list[ListedFile]
    cursor: Cursor

    def skip_summary(self) -> str | None:
        """One line for the tick's skip reason / log: what waits and why (nothing is silently dropped)."""
        parts = []
        if self.deferred:
            parts.append(f"{len(self.deferred)} file(s) over the per-tick limit wait for the next tick")
        for h in self.held[:10]:
            parts.append(f"{h.file.key}: {h.reason}")
        if len(self.held) > 10:
            parts.append(f"… and {len(self.held) - 10} more held")
        return "; ".join(parts) or None


def plan_tick(
    cursor: Cursor,
    listing: Iterable[ListedFile],
    *,
    lookback_s: float = 600.0,
    max_files: int = 50,
    max_bytes: int | None = None,
    stability: Stability = "atomic",
    markers: set[str] | None = None,
    rescued: Iterable[ListedFile] = (),
) -> TickPlan:
    """Decide one tick. `markers` holds the keys whose completion marker exists (stability="marker").

    `rescued` are files the full scan found unprocessed (older than the lookback window, or an SFTP rewrite
    told apart by content): candidates whatever their mtime, held like any other file until complete. A held
    file's fingerprint is kept in `pending` so the next tick knows the same version without hashing again."""
    files = {f.key: f for f in listing}  # a listing has each key once
    for key, prev in cursor.pending.items():
        f = files.get(key)
        if (
            f is not None
            and len(prev) > 2
            and not f.etag
            and [float(f.size), float(f.mtime)]
            == [
                float(prev[0]),
                float(prev[1]),
            ]
        ):
            files[key] = ListedFile(f.key, f.mtime, f.size, None, str(prev[2]))
    rescued_keys = set()
    for f in rescued:
        files[f.key] = f
        rescued_keys.add(f.key)
    seen = cursor.seen()
    floor = None if cursor.mark is None else cursor.mark - lookback_s

    def is_candidate(f: ListedFile) -> bool:
        if f.digest in seen and f.key not in rescued_keys:  # rescued: no ledger entry (e.g. reprocess)
            return False
        return floor is None or f.mtime >= floor or f.key in cursor.pending or f.key in rescued_keys

    candidates = sorted((f for f in files.values() if is_candidate(f)), key=lambda f: (f.mtime, f.key))
    ready: list[ListedFile] = []
    held: list[Held] = []
    deferred: list[ListedFile] = []
    pending: dict[str, list[float]] = {}
    watched = 0  # size_stable sightings recorded this tick: at most a tick's worth (`max_files`)

    def record(f: ListedFile) -> None:
        pending[f.key] = [f.size, f.mtime, *([f.fingerprint] if f.fingerprint else [])]

    for f in candidates:
        reason = None
        sighting = False
        if max_bytes is not None and f.size > max_bytes:
            reason = f"too large ({f.size} bytes > max {max_bytes}); raise FC_MAX_FILE_BYTES to take it"
        elif stability == "marker" and f.key not in (markers or set()):
            reason = "waiting for its completion marker"
        elif stability == "size_stable" and not (f.key in rescued_keys and f.digest in seen):
            prev = cursor.pending.get(f.key)
            if f.size == 0:
                reason = "empty so far"
            elif prev is None or [float(prev[0]), float(prev[1])] != [float(f.size), float(f.mtime)]:
                reason = "still being written (size/mtime not yet stable across two ticks)"
            sighting = True
        if reason and sighting and watched >= max_files:
            # a backlog: watching more files than a tick can start only grows the cursor (each is a
            # pending entry); these sort after everything watched, so they stay candidates and are
            # watched as the ones before them are started
            deferred.append(f)
        elif reason:
            held.append(Held(f, reason))
            record(f)
            watched += sighting
        elif len(ready) < max_files:
            ready.append(f)
        else:
            deferred.append(f)
            if sighting and watched < max_files:
                record(f)  # stable already: keep its sighting so the next tick can start it
                watched += 1
    return TickPlan(ready, held, deferred, _advance(cursor, ready, pending, lookback_s))


def _advance(
    cursor: Cursor, emitted: list[ListedFile], pending: dict[str, list[float]], lookback_s: float
) -> Cursor:
    buckets: dict[float, set[str]] = {float(k): set(v) for k, v in cursor.recent.items()}
    if cursor.mark is not None:
        buckets.setdefault(float(cursor.mark), set()).update(cursor.tie_keys)
    for f in emitted:
        buckets.setdefault(float(f.mtime), set()).add(f.digest)
    marks = [m for m in (cursor.mark, *(f.mtime for f in emitted)) if m is not None]
    mark = max(marks) if marks else None
    if mark is None:
        return Cursor(None, [], {}, pending, cursor.pruned_on, cursor.full_scan_at)
    floor = mark - lookback_s
    kept = {t: d for t, d in buckets.items() if floor <= t < mark}
    tie = sorted(buckets.get(mark, set()))
    total = len(tie) + sum(len(d) for d in kept.values())
    for t in sorted(kept):  # keep the cursor small: drop the oldest lookback buckets first
        if total <= MAX_DIGESTS:
            break
        total -= len(kept.pop(t))
    recent = {_num(t): sorted(d) for t, d in sorted(kept.items())}
    return Cursor(mark, tie, recent, pending, cursor.pruned_on, cursor.full_scan_at)
