"""The processed-file ledger and the per-feed state, kept in the lake (they survive a lost Dagster instance).

Layout under `<lake>/state/<feed>/`:

    ledger/<file_id>.json    one entry per file version (path + etag/size/mtime + content hash), its stage,
                             counts, Fluent job/batch ids, archive target and history of runs
    state.json               the feed's state: watermark, last committed file, the file in flight (with the
                             run holding it and its lease), daily job, reprocess generations
    audit.jsonl              every operator change (`fc-assets state …`): who, when, what
    snapshot.parquet         last-sent rows + row hash (written by `delta.commit_snapshot`)
    work/<file_id>/          accepted.parquet (validated rows), delta.parquet (what to send)
    sends/<file_id>/<key>.json   the send log (`SendLog`): one small object per request or chunk sent

Stages, in order (a rerun resumes after the last one recorded):

    claimed → prepared → sending → confirmed → committed → archived

- `prepared`: the file was downloaded, hashed, validated and its delta written; nothing was sent yet, so a
  rerun may redo everything before it.
- `sending`: each Fluent request is recorded in the send log before it is made and right after Fluent
  answered (batch id, events acknowledged, mutation results), *before* waiting on it; a rerun re-polls
  recorded batches instead of re-sending them. The log holds batch ordinals and counts, never row-id
  lists (only Fluent's per-entity rejections, which are few), one object per request: each write is O(1)
  whatever the file's size, so a 10M-row file costs O(batches) ledger bytes.
- `confirmed`: Fluent has finished with every request; per-row rejections are recorded.
- `committed`: snapshot and watermark advanced (only now: a failed send never moves them).
- `archived`: the source file sits in `processed/` or `error/`; the entry's `outcome` is final.

Only one run per feed works at a time (Dagster pool, see assets.py); the ledger adds the guard that a file
which reached `sending` must finish before another file of the same feed computes a delta, so snapshots
are applied in the order Fluent saw the data (`FeedBusyError`). The in-flight slot names the run holding it
and a lease (`FC_FEED_LEASE_S`, renewed at each attempt); what a later file does about it is in
state_ops.settle_inflight.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from fc_assets.ingestion.deliver.files import FileRef
from fc_assets.resources.storage import Lake

STAGES = ("claimed", "prepared", "sending", "confirmed", "committed", "archived")


def stage_index(stage: str | None) -> int:
    return STAGES.index(stage) if stage in STAGES else -1


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class FeedBusyError(RuntimeError):
    """Another file of this feed is half-sent; finishing it first keeps snapshots in Fluent's order."""


@dataclass
class LedgerEntry:
    file_id: str
    feed: str
    partition_key: str
    location: str
    key: str
    version: str
    size: int
    mtime: float
    etag: str | None = None
    content_sha256: str | None = None
    stage: str = "claimed"
    outcome: str | None = None  # processed | error
    counts: dict[str, int] = field(default_factory=dict)
    send_summary: dict[str, Any] = field(default_factory=dict)  # job/batch ids, resends (the log: SendLog)
    fluent_rejected_rows: list[int] = field(default_factory=list)
    rejects_uri: str | None = None
    # keys of the file's records the feed does not use (JSON, JSONL, XML): the first few, as validation
    # reported them (their distinct count is `counts["unknown_keys"]`)
    unknown_keys: list[str] = field(default_factory=list)
    archive_target: str | None = None
    error: str | None = None
    watermark: str | None = None
    base_commit: int | None = None  # FeedState.committed when the delta was computed (stale if it moved)
    # FeedState.committed that this file's commit makes, recorded before the commit starts: a rerun finds
    # the state at or past it if the commit was made (the file holds the slot until then: nobody else
    # commits in between), so a commit is never applied twice, even after later files committed
    commit_generation: int | None = None
    attempts: int = 0  # failed attempts so far (transient failures; see assets.py for the retry rule)
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def new(cls, ref: FileRef) -> LedgerEntry:
        return cls(
            ref.file_id,
            ref.feed,
            ref.partition_key,
            ref.location,
            ref.key,
            ref.version,
            ref.size,
            ref.mtime,
            ref.etag,
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LedgerEntry:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def done(self) -> bool:
        return self.stage == "archived"

    def reached(self, stage: str) -> bool:
        return stage_index(self.stage) >= stage_index(stage)


@dataclass
class FeedState:
    watermark: str | None = None
    last_file_id: str | None = None
    # {file_id, partition_key, key, run_id, taken_at, lease_until} of a file past "prepared"
    inflight: dict[str, Any] | None = None
    job: dict[str, Any] | None = None  # {day, job_id}: the Batch API job reused across files
    committed: int = 0
    reprocess: dict[str, int] = field(default_factory=dict)  # file_id → generation (`state reprocess`)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeedState:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class Ledger:
    """Reads and writes one feed's ledger entries and state (each write is atomic: temp object + move)."""

    def __init__(self, lake: Lake, feed: str) -> None:
        self.lake, self.feed = lake, feed

    def rel(self, *parts: str) -> str:
        return "/".join(("state", self.feed, *parts))

    def work(self, file_id: str, name: str) -> str:
        return self.rel("work", file_id, name)

    # entries
    def get(self, file_id: str) -> LedgerEntry | None:
        path = self.rel("ledger", f"{file_id}.json")
        if not self.lake.exists(path):
            return None
        return LedgerEntry.from_dict(json.loads(self.lake.read_bytes(path)))

    def save(self, entry: LedgerEntry) -> None:
        self.lake.write_bytes(
            json.dumps(asdict(entry), indent=1).encode(), self.rel("ledger", f"{entry.file_id}.json")
        )

    def advance(self, entry: LedgerEntry, stage: str, run_id: str | None = None, **changes: Any) -> None:
        """Record that `entry` reached `stage` (never moves backwards) and persist it."""
        for k, v in changes.items():
            setattr(entry, k, v)
        if stage_index(stage) > stage_index(entry.stage):
            entry.stage = stage
        entry.history.append({"stage": stage, "at": now_iso(), "run_id": run_id})
        self.save(entry)

    def sends(self, file_id: str) -> SendLog:
        """The send log of one file version (read back from the lake)."""
        return SendLog(self.lake, self.rel("sends", file_id)).load()

    def file_ids(self) -> set[str]:
        """The file ids with an entry (a LIST of the ledger directory, its key ranges at once; no reads)."""
        return {
            rel.rsplit("/", 1)[-1].removesuffix(".json")
            for rel in self.lake.list_files_parallel(self.rel("ledger"))
            if rel.endswith(".json")
        }

    def entries(self) -> list[LedgerEntry]:
        out = []
        for rel in self.lake.list_files(self.rel("ledger")):
            if rel.endswith(".json"):
                out.append(LedgerEntry.from_dict(json.loads(self.lake.read_bytes(rel))))
        return sorted(out, key=lambda e: e.history[0]["at"] if e.history else "")

    # feed state
    def state(self) -> FeedState:
        path = self.rel("state.json")
        if not self.lake.exists(path):
            return FeedState()
        return FeedState.from_dict(json.loads(self.lake.read_bytes(path)))

    def save_state(self, state: FeedState) -> None:
        self.lake.write_bytes(json.dumps(asdict(state), indent=1).encode(), self.rel("state.json"))

    def update_state(self, **changes: Any) -> FeedState:
        """Read-modify-write of state.json (safe: one run per feed at a time, see module doc)."""
        state = self.state()
        for k, v in changes.items():
            setattr(state, k, v)
        self.save_state(state)
        return state

    def take_slot(self, ref: FileRef, run_id: str | None, lease_s: float | None = None) -> FeedState:
        """Hold the in-flight slot for `ref` (or renew it) with a lease of `lease_s` (FC_FEED_LEASE_S)."""
        if lease_s is None:
            from fc_assets.settings import get_settings

            lease_s = get_settings().feed_lease_s
        now = datetime.now(UTC)
        return self.update_state(
            inflight={
                "file_id": ref.file_id,
                "partition_key": ref.partition_key,
                "key": ref.key,
                "run_id": run_id,
                "taken_at": now.isoformat(timespec="seconds"),
                "lease_until": (now + timedelta(seconds=lease_s)).isoformat(timespec="seconds"),
            }
        )

    def check_not_busy(self, file_id: str) -> FeedState:
        """Raise `FeedBusyError` if another file of the feed is between `sending` and `committed`."""
        state = self.state()
        other = state.inflight
        if other and other.get("file_id") != file_id:
            entry = self.get(other["file_id"])
            if entry is not None and entry.reached("sending") and not entry.reached("committed"):
                raise FeedBusyError(
                    f"feed {self.feed}: file {entry.key} (partition {entry.partition_key}) stopped at stage "
                    f"'{entry.stage}' after sending to Fluent; re-execute its run first so its changes are "
                    "committed before this file's delta is computed"
                )
        return state


class SendLog:
    """What was sent to Fluent for one file: one small JSON object per request (or chunk of events) under
    `state/<feed>/sends/<file_id>/<key>.json`, rewritten as the request moves on (posting → posted →
    complete). Writing one record never rewrites the others, so the bytes written grow with the number of
    requests, not with its square; records hold batch ordinals and counts, not row ids."""

    def __init__(self, lake: Lake, prefix: str) -> None:
        self.lake, self.prefix = lake, prefix
        self.records: dict[str, dict[str, Any]] = {}
        self.bytes_written = 0

    def load(self) -> SendLog:
        for rel in self.lake.list_files(self.prefix):
            if rel.endswith(".json"):
                key = rel.rsplit("/", 1)[-1].removesuffix(".json")
                self.records[key] = json.loads(self.lake.read_bytes(rel))
        return self

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def put(self, key: str, record: dict[str, Any]) -> dict[str, Any]:
        self.records[key] = record
        data = json.dumps(record, separators=(",", ":")).encode()
        self.lake.write_bytes(data, self.prefix, f"{key}.json")
        self.bytes_written += len(data)
        return record

    def items(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        """Records whose key starts with `prefix`, in key (= sending) order."""
        return sorted((k, r) for k, r in self.records.items() if k.startswith(prefix))
