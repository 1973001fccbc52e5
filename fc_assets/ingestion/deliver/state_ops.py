"""Operations on one feed's state in the lake: the in-flight slot (lease, takeover, release), retention, and
the views and changes behind `fc-assets state …` (every change is appended to `state/<feed>/audit.jsonl`).

**The rule for later files while one is in flight** (a file that reached `sending` and is not committed):

- its holder run is alive (Dagster says queued/starting/started) and its lease (`FC_FEED_LEASE_S`, renewed at
  each attempt) has not expired → the later file's step waits and retries (`FeedBusyError`, retried until the
  lease runs out, so never forever);
- its holder run no longer exists or has ended (failed, canceled, its worker died and the lease expired) →
  the later run first finishes the in-flight file from its ledger entry (re-polls its recorded batches,
  re-sends nothing, commits, archives), then processes its own file: deltas stay in the order Fluent saw
  them;
- if finishing it keeps failing (`FC_FEED_MAX_RETRIES` failed attempts of that file, counted in its ledger
  entry across runs), the in-flight file is released to `error/`
  (`release_to_error`): the keys of its delta are removed from the snapshot — Fluent may or may not hold
  them — so the next file sends them in full (a delta computed before the release is computed again),
  the requests Fluent got stay recorded in its send log,
  and the later file goes on.
"""

from __future__ import annotations

import getpass
import json
import socket
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from fc_assets.ingestion.deliver.files import FileRef
from fc_assets.ingestion.deliver.ledger import FeedBusyError, Ledger, LedgerEntry, now_iso
from fc_assets.resources.storage import Lake

if TYPE_CHECKING:
    from fc_assets.ingestion.deliver.pipeline import FeedPlan, PipelineEnv
    from fc_assets.ingestion.deliver.sources import SourceStore

ALIVE_STATUSES = ("NOT_STARTED", "QUEUED", "STARTING", "STARTED", "CANCELING")


def ref_of(entry: LedgerEntry) -> FileRef:
    return FileRef(entry.feed, entry.location, entry.key, entry.version, entry.size, entry.mtime, entry.etag)


def run_alive(instance) -> Callable[[str | None], bool]:
    """Whether a Dagster run still exists and has not ended (a run worker that died stays STARTED until run
    monitoring notices: the lease covers that case)."""

    def alive(run_id: str | None) -> bool:
        if not run_id:
            return False
        run = instance.get_run_by_id(run_id)
        return run is not None and run.status.value in ALIVE_STATUSES

    return alive


def lease_expired(slot: dict[str, Any], now: datetime | None = None) -> bool:
    until = slot.get("lease_until")
    return until is None or datetime.fromisoformat(until) <= (now or datetime.now(UTC))


def settle_inflight(
    plan: FeedPlan,
    ref: FileRef,
    env: PipelineEnv,
    *,
    alive: Callable[[str | None], bool],
    max_retries: int,
) -> str | None:
    """Before `ref` is processed: apply the module's rule to another file holding the slot. Returns what
    was done (for the log and metadata), raises `FeedBusyError` while a live holder keeps its lease."""
    from fc_assets.ingestion.deliver.pipeline import process_file

    ledger = Ledger(env.lake, plan.name)
    slot = ledger.state().inflight
    if not slot or slot.get("file_id") == ref.file_id:
        return None
    other = ledger.get(slot["file_id"])
    if other is None or other.done or other.reached("committed"):
        ledger.update_state(inflight=None)  # a stale slot (its file finished)
        return None
    holder = slot.get("run_id")
    if holder != env.run_id and alive(holder) and not lease_expired(slot):
        raise FeedBusyError(
            f"feed {plan.name}: {other.key} (partition {other.partition_key}) is in flight in run {holder} "
            f"(lease until {slot.get('lease_until')}); waiting for it to finish"
        )
    env.log(f"taking over {other.key} (partition {other.partition_key}) left in flight by run {holder}")
    try:
        process_file(plan, ref_of(other), env)
        return f"finished {other.key} left in flight by run {holder}"
    except Exception as e:
        other = ledger.get(other.file_id) or other
        other.attempts += 1
        ledger.save(other)
        if other.attempts <= max_retries or other.reached("committed"):
            raise
        release_to_error(
            plan,
            other,
            env.lake,
            env.sources,
            f"released after failing again in run {env.run_id}: {e}",
            env.run_id,
        )
        return f"released {other.key} to error/ after it failed again: {e}"


def release_to_error(
    plan: FeedPlan,
    entry: LedgerEntry,
    lake: Lake,
    sources: SourceStore,
    reason: str,
    run_id: str | None = None,
) -> LedgerEntry:
    """End an unfinished file in `error/` with its reason, keeping the delta base consistent (see module doc).
    A file already committed is not an error: it only lacks its archive step and is left to a rerun."""
    ledger = Ledger(lake, plan.name)
    if entry.reached("committed"):
        raise ValueError(f"{entry.key} is committed; rerun it to finish archiving instead of releasing it")
    forgotten = 0
    delta_rel = ledger.work(entry.file_id, "delta.parquet")
    if entry.reached("sending") and lake.exists(delta_rel):
        forgotten = forget_keys(lake, plan, delta_rel)
    from fc_assets.ingestion.deliver.senders import delivery_counts

    answered, unanswered = delivery_counts(ledger.sends(entry.file_id))
    entry.outcome = "error"
    entry.error = (
        f"{reason}; Fluent answered {answered} request(s) of this file"
        + (f" and {unanswered} more got no answer (Fluent may have acted on them)" if unanswered else "")
        + (f"; {forgotten} key(s) removed from the snapshot so the next file sends them" if forgotten else "")
    )
    location = plan.location(entry.location)
    ref = ref_of(entry)
    if entry.archive_target is None or "/processed/" in f"/{entry.archive_target}":
        entry.archive_target = sources.archive_target(location, ref, "error")
    ledger.advance(entry, entry.stage, run_id, counts={**entry.counts, "released": True})
    rejects = (
        lake.read_bytes(entry.rejects_uri) if entry.rejects_uri and lake.exists(entry.rejects_uri) else None
    )
    moved = sources.archive(location, ref, entry.archive_target, rejects)
    ledger.advance(entry, "archived", run_id, counts={**entry.counts, "archive": moved})
    state = ledger.state()
    changes: dict[str, Any] = {"committed": state.committed + 1} if forgotten else {}  # older deltas stale
    if state.inflight and state.inflight.get("file_id") == entry.file_id:
        changes["inflight"] = None
    if changes:
        ledger.update_state(**changes)
    return entry


def forget_keys(lake: Lake, plan: FeedPlan, delta_rel: str) -> int:
    """Remove the keys of a delta from the feed's snapshot (their state in Fluent is unknown); returns how many
    snapshot rows were removed."""
    from fc_assets.ingestion.deliver.delta import connect, duck_path, ident, snapshot_rel

    snap = snapshot_rel(plan.name)
    if not plan.delta.keeps_snapshot or not lake.exists(snap):
        return 0
    import pyarrow.parquet as pq

    keys = ", ".join(ident(k) for k in plan.delta.keys)
    con = connect(lake)
    try:
        before = con.sql(f"SELECT count(*) FROM read_parquet('{duck_path(lake, snap)}')").fetchone()[0]
        kept = con.sql(
            f"SELECT * FROM read_parquet('{duck_path(lake, snap)}') "
            f"ANTI JOIN (SELECT {keys} FROM read_parquet('{duck_path(lake, delta_rel)}')) USING ({keys})"
        ).fetch_arrow_table()
    finally:
        con.close()
    with lake.atomic_write(snap) as out:
        pq.write_table(kept, out, compression="zstd")
    return before - kept.num_rows


# ------------------------------------------------------------------------------------------------ audit


def operator() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def audit(lake: Lake, feed: str, action: str, who: str, **details: Any) -> dict[str, Any]:
    """Append one line to `state/<feed>/audit.jsonl` (read-modify-write: operator changes are rare)."""
    rel = Ledger(lake, feed).rel("audit.jsonl")
    line = {"at": now_iso(), "who": who, "action": action, **details}
    old = lake.read_bytes(rel) if lake.exists(rel) else b""
    lake.write_bytes(old + json.dumps(line, default=str).encode() + b"\n", rel)
    return line


def audit_log(lake: Lake, feed: str) -> list[dict[str, Any]]:
    rel = Ledger(lake, feed).rel("audit.jsonl")
    if not lake.exists(rel):
        return []
    return [json.loads(x) for x in lake.read_bytes(rel).splitlines() if x.strip()]


# ------------------------------------------------------------------------------------------------ views


def show(lake: Lake, feed: str) -> dict[str, Any]:
    from fc_assets.ingestion.deliver.delta import snapshot_rel

    ledger = Ledger(lake, feed)
    state = ledger.state()
    last = ledger.get(state.last_file_id) if state.last_file_id else None
    out: dict[str, Any] = {
        "feed": feed,
        "watermark": state.watermark,
        "committed": state.committed,
        "last_file": f"{last.location}:{last.key} ({last.partition_key})" if last else None,
        "inflight": state.inflight,
        "snapshot_rows": None,
        "snapshot_bytes": None,
        "ledger_entries": len(ledger.file_ids()),
    }
    snap = snapshot_rel(feed)
    if lake.exists(snap):
        import pyarrow.parquet as pq

        with lake.fs.open_input_file(lake.path(snap)) as f:
            out["snapshot_rows"] = pq.ParquetFile(f).metadata.num_rows
        out["snapshot_bytes"] = lake.fs.get_file_info(lake.path(snap)).size
    return out


def files(
    lake: Lake, feed: str, outcome: str | None = None, since: str | None = None, until: str | None = None
) -> list[dict[str, Any]]:
    """Ledger rows, oldest first; `outcome` is processed | error | unfinished; dates compare with the first
    time the file was claimed (ISO prefixes: `2026-01-31`)."""
    rows = []
    for e in Ledger(lake, feed).entries():
        at = e.history[0]["at"] if e.history else ""
        state = e.outcome if e.done else "unfinished"
        if outcome and state != outcome:
            continue
        if (since and at[: len(since)] < since) or (until and at[: len(until)] > until):
            continue
        rows.append(
            {
                "file_id": e.file_id,
                "claimed_at": at,
                "outcome": state,
                "stage": e.stage,
                "location": e.location,
                "key": e.key,
                "version": e.version,
                "partition_key": e.partition_key,
                "rows": e.counts.get("rows"),
                "sent": e.counts.get("sent"),
                "attempts": e.attempts,
                "archived_to": e.archive_target,
                "error": e.error,
            }
        )
    return rows


def find_entry(ledger: Ledger, file: str) -> LedgerEntry:
    """A file by file id, partition key or source key (the newest version of that key)."""
    entry = ledger.get(file) if len(file) == 16 else None
    if entry is not None:
        return entry
    matches = [e for e in ledger.entries() if file in (e.partition_key, e.key, f"{e.location}:{e.key}")]
    if not matches:
        raise KeyError(f"no ledger entry of feed {ledger.feed} matches {file!r}")
    return matches[-1]


# ---------------------------------------------------------------------------------------------- changes


def reprocess(lake: Lake, plan: FeedPlan, sources: SourceStore, file: str, who: str) -> dict[str, Any]:
    """Forget one file version: its ledger entry moves into the audit line, an archived copy goes back to the
    inbox, and a new generation makes the sensor's next full scan request it under a new run key."""
    ledger = Ledger(lake, plan.name)
    entry = find_entry(ledger, file)
    state = ledger.state()
    if state.inflight and state.inflight.get("file_id") == entry.file_id:
        raise ValueError(f"{entry.key} is in flight; `release` it first")
    restored = None
    if entry.done and entry.archive_target:
        restored = restore_to_inbox(plan, sources, entry)
    generation = state.reprocess.get(entry.file_id, 0) + 1
    ledger.update_state(reprocess={**state.reprocess, entry.file_id: generation})
    lake.delete(ledger.rel("ledger", f"{entry.file_id}.json"))
    lake.delete(ledger.work(entry.file_id, "delta.parquet"))
    lake.delete(ledger.work(entry.file_id, "accepted.parquet"))
    # the same file version runs again: its old send log would make the sender skip every chunk as sent
    kept_sends = ledger.rel("reprocessed", f"{entry.file_id}.g{generation}")
    for rel in lake.list_files(ledger.rel("sends", entry.file_id)):
        lake.write_bytes(lake.read_bytes(rel), kept_sends, rel.rsplit("/", 1)[-1])
        lake.delete(rel)
    return audit(
        lake,
        plan.name,
        "reprocess",
        who,
        file_id=entry.file_id,
        key=entry.key,
        generation=generation,
        restored_from=restored,
        forgotten_sends=kept_sends,
        forgotten_entry=asdict(entry),
    )


def restore_to_inbox(plan: FeedPlan, sources: SourceStore, entry: LedgerEntry) -> str | None:
    """Put the archived copy back at its source key (same bytes: same ETag / size+mtime, so the same version)."""
    location = plan.location(entry.location)
    target = entry.archive_target
    if location.kind == "s3":
        s3, bucket = sources.s3_client, location.bucket
        s3.copy_object(Bucket=bucket, Key=entry.key, CopySource={"Bucket": bucket, "Key": target})
        s3.delete_object(Bucket=bucket, Key=target)
        return f"s3://{bucket}/{target}"
    with sources.sftp.session() as s:
        if not s.exists(target):
            return None
        s.rename(target, entry.key)
    return f"sftp:{target}"


def reset(
    lake: Lake,
    feed: str,
    who: str,
    *,
    to_empty: bool = False,
    to: str | None = None,
    keys: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """The next file is sent in full (`to_empty`) or against the snapshot `to` (a lake path or local file).
    The current snapshot is kept as `state/<feed>/snapshots/<time>.parquet`, so a reset can be undone.
    With the feed's `keys`, `to` may lack other columns of the current snapshot (one from before the feed
    gained a column: the delta reads those as NULL, `delta.snapshot_rows`); without them it may lack none."""
    from fc_assets.ingestion.deliver.delta import snapshot_rel

    if to_empty == (to is not None):
        raise ValueError("give exactly one of --to-empty or --to SNAPSHOT")
    ledger = Ledger(lake, feed)
    state = ledger.state()
    if state.inflight:
        raise ValueError(f"feed {feed} has {state.inflight.get('key')} in flight; `release` it first")
    snap = snapshot_rel(feed)
    backup = None
    if lake.exists(snap):
        backup = ledger.rel("snapshots", datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ") + ".parquet")
        lake.write_bytes(lake.read_bytes(snap), backup)
    if to_empty:
        lake.delete(snap)
    else:
        data = _read_snapshot_source(lake, to)
        _check_snapshot(lake, data, snap, keys)
        lake.write_bytes(_without_hash_mark(data), snap)
    ledger.update_state(watermark=None, committed=state.committed + 1)  # deltas computed before are stale
    return audit(lake, feed, "reset", who, to="empty" if to_empty else to, previous_snapshot=backup)


def _read_snapshot_source(lake: Lake, to: str) -> bytes:
    import pathlib

    if lake.exists(to):
        return lake.read_bytes(to)
    path = pathlib.Path(to)
    if path.is_file():
        return path.read_bytes()
    raise FileNotFoundError(
        f"no snapshot at {to!r} (a path in the lake, e.g. state/<feed>/snapshots/…, or a file)"
    )


def _without_hash_mark(data: bytes) -> bytes:
    """A snapshot from elsewhere may have been edited (a pyarrow round trip keeps the file's key-value
    metadata), so its `_h` are not trusted to be the hashes of its rows: its `hash_mark` is dropped, the next
    delta compares stored hashes and the next commit hashes its rows again (delta.py)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from fc_assets.ingestion.deliver.delta import HASH_MARK

    pf = pq.ParquetFile(pa.BufferReader(data))
    if HASH_MARK.encode() not in (pf.metadata.metadata or {}):
        return data
    table = pf.read()
    meta = {k: v for k, v in (table.schema.metadata or {}).items() if k != HASH_MARK.encode()}
    out = pa.BufferOutputStream()
    pq.write_table(table.replace_schema_metadata(meta), out, compression="zstd")
    return out.getvalue().to_pybytes()


def _check_snapshot(lake: Lake, data: bytes, snap: str, keys: tuple[str, ...] | None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = set(pq.ParquetFile(pa.BufferReader(data)).schema_arrow.names)
    if "_h" not in names:
        raise ValueError("not a feed snapshot: it has no `_h` (row hash) column")
    if lake.exists(snap):
        with lake.fs.open_input_file(lake.path(snap)) as f:
            current = set(pq.ParquetFile(f).schema_arrow.names)
        lacking = current - names
        if keys is not None:  # (the others read as NULL: each row with one is sent once more)
            lacking &= set(keys)
        if lacking:
            what = "key columns" if keys is not None else "columns"
            raise ValueError(f"the snapshot lacks {what} {sorted(lacking)} of the feed's snapshot")


def release(lake: Lake, plan: FeedPlan, sources: SourceStore, who: str, reason: str) -> dict[str, Any]:
    """Force the in-flight file out: released to `error/` (see `release_to_error`), the slot freed."""
    ledger = Ledger(lake, plan.name)
    slot = ledger.state().inflight
    if not slot:
        raise ValueError(f"feed {plan.name} has no file in flight")
    entry = ledger.get(slot["file_id"])
    if entry is None or entry.done or entry.reached("committed"):
        ledger.update_state(inflight=None)
        return audit(lake, plan.name, "release", who, slot=slot, note="stale slot cleared")
    release_to_error(plan, entry, lake, sources, f"released by {who}: {reason}")
    return audit(
        lake, plan.name, "release", who, slot=slot, file_id=entry.file_id, key=entry.key, reason=reason
    )


# -------------------------------------------------------------------------------------------- retention


def prune(lake: Lake, feed: str, retention_days: int, now: datetime | None = None) -> dict[str, int]:
    """Retention: work files of archived entries are removed; archived entries last touched more than
    `retention_days` ago are compacted into `state/<feed>/summary/<yyyy-mm>.jsonl` (one line per file: what,
    when, outcome, counts, archive) and removed. Their send logs go with them (the summary keeps the counts). Unfinished entries and the audit log are never
    pruned."""
    ledger = Ledger(lake, feed)
    cutoff = ((now or datetime.now(UTC)) - timedelta(days=retention_days)).isoformat()
    work_ids = {rel.split("/")[3] for rel in lake.list_files(ledger.rel("work")) if rel.count("/") >= 4}
    done: dict[str, LedgerEntry] = {}
    months: dict[str, list[dict[str, Any]]] = {}
    for e in ledger.entries():
        if not e.done:
            continue
        done[e.file_id] = e
        last = e.history[-1]["at"] if e.history else ""
        if last and last < cutoff:
            months.setdefault(last[:7], []).append(_summary_line(e, last))
    work_removed = 0
    for file_id in sorted(work_ids & set(done)):
        for rel in lake.list_files(ledger.rel("work", file_id)):
            lake.delete(rel)
            work_removed += 1
    removed = 0
    for month, lines in sorted(months.items()):
        rel = ledger.rel("summary", f"{month}.jsonl")
        old = lake.read_bytes(rel) if lake.exists(rel) else b""
        have = {json.loads(x)["file_id"] for x in old.splitlines() if x.strip()}
        new = b"".join(json.dumps(x).encode() + b"\n" for x in lines if x["file_id"] not in have)
        lake.write_bytes(old + new, rel)  # written before the entries go: a crash repeats harmlessly
        for x in lines:
            for sent in lake.list_files(ledger.rel("sends", x["file_id"])):
                lake.delete(sent)  # its counts are in the summary line
            lake.delete(ledger.rel("ledger", f"{x['file_id']}.json"))
            removed += 1
    return {"entries_compacted": removed, "work_files_removed": work_removed, "months": len(months)}


def _summary_line(e: LedgerEntry, last: str) -> dict[str, Any]:
    return {
        "file_id": e.file_id,
        "archived_at": last,
        "location": e.location,
        "key": e.key,
        "version": e.version,
        "content_sha256": e.content_sha256,
        "outcome": e.outcome,
        "counts": e.counts,
        "archive_target": e.archive_target,
        "error": e.error,
    }
