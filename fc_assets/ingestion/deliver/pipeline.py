"""One file through the feed: claim → fetch/validate → delta → send → confirm → commit → archive.

Plain functions (no Dagster context) so they are testable alone; `assets.py` calls `process_file` from the
feed asset. Every stage is recorded in the ledger (`ledger.py`) before the next starts, and a rerun of the
same file version resumes after the last recorded stage:

| crash after …          | the rerun …                                                                  |
|------------------------|------------------------------------------------------------------------------|
| claim / prepare        | downloads and validates again (nothing was sent); a stale delta is redone     |
| some requests sent     | sends only the chunks the send log has no answer for; adopts a batch Fluent   |
|                        | created just before the crash (job batch list); re-sends an event or mutation |
|                        | request left without an answer (upserts: a duplicate is harmless, a loss not) |
| send, before confirm   | polls the recorded batch ids; sends nothing                                  |
| confirm, before commit | commits the snapshot/watermark (idempotent replace by key); sends nothing     |
| commit, before entry   | sees the state at its commit generation: does not apply the commit again     |
| commit, during archive | finishes the move (copy again if needed, verify, delete)                      |

Crash injection for tests: `FC_CRASH_AT=<point>` raises, `FC_KILL_AT=<point>` SIGKILLs the process at a named
stage boundary (crashpoints.py lists them).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fc_assets.ingestion.deliver.crashpoints import crash_point
from fc_assets.ingestion.deliver.delta import DELTA_METADATA, DeltaSpec, commit_delta, compute_delta
from fc_assets.ingestion.deliver.delta_chunks import DeltaFile
from fc_assets.ingestion.deliver.files import FileLocation, FileRef
from fc_assets.ingestion.deliver.ledger import Ledger, LedgerEntry
from fc_assets.ingestion.deliver.senders import (
    ALIASES_PER_REQUEST,
    BatchInventorySender,
    EventProductSender,
    GraphQLLocationSender,
    SendOutcome,
)
from fc_assets.ingestion.deliver.sources import SourceStore
from fc_assets.resources.fluent import FluentClient
from fc_assets.resources.storage import Lake


@dataclass
class ValidationSummary:
    """What validation of one file produced (accepted rows are in the lake as Parquet with `_row`)."""

    rows: int
    accepted: int
    rejected: int
    failed: bool  # over the reject threshold, or unreadable: nothing is sent
    reason: str | None = None
    rejects_rel: str | None = None  # rejects CSV in the lake
    metadata: dict[str, Any] = field(default_factory=dict)
    rejected_keys_rel: str | None = None  # Parquet of the rejected rows' keys (null where unknown)


# (local file, file name, lake, where to write accepted rows, where to write rejects) → summary
Validator = Callable[[Path, str, Lake, str, str], ValidationSummary]


@dataclass(frozen=True)
class FeedPlan:
    """What the ingestion flow needs to know about a feed (built from its declaration in feeds.py)."""

    name: str
    locations: tuple[FileLocation, ...]
    columns: tuple[str, ...]
    delta: DeltaSpec
    sender: str  # batch_inventory | event_product | graphql_location
    validate: Validator
    reject_threshold: float = 0.05
    job_strategy: str = "daily"  # batch_inventory: "daily" (today's job, shared by files) | "per_file"

    def location(self, name: str) -> FileLocation:
        for loc in self.locations:
            if loc.name == name:
                return loc
        raise KeyError(f"feed {self.name} has no location {name!r} (has {[x.name for x in self.locations]})")


@dataclass
class PipelineEnv:
    lake: Lake
    sources: SourceStore
    fluent: Callable[[], FluentClient]
    run_id: str | None = None
    log: Callable[[str], None] = print
    batch_timeout_s: float = 300.0
    batch_size: int = 5000  # entities per Batch API request; aliases per GraphQL request up to 25


@dataclass
class FileResult:
    entry: LedgerEntry
    metadata: dict[str, Any]
    check_passed: bool
    resumed_from: str | None


def make_sender(plan: FeedPlan, client: FluentClient, ledger: Ledger, env: PipelineEnv):
    if plan.sender == "batch_inventory":
        return BatchInventorySender(
            client,
            ledger,
            batch_size=env.batch_size,
            timeout_s=env.batch_timeout_s,
            job_strategy=plan.job_strategy,
            run_id=env.run_id,
            log=env.log,
        )
    if plan.sender == "event_product":
        return EventProductSender(client, ledger, run_id=env.run_id)
    if plan.sender == "graphql_location":
        aliases = min(env.batch_size, ALIASES_PER_REQUEST)
        return GraphQLLocationSender(client, ledger, aliases_per_request=aliases, run_id=env.run_id)
    raise ValueError(f"unknown sender {plan.sender!r}")


def process_file(plan: FeedPlan, ref: FileRef, env: PipelineEnv) -> FileResult:
    started = time.monotonic()
    lake, ledger = env.lake, Ledger(env.lake, plan.name)
    location = plan.location(ref.location)
    location.require_own(ref.key)  # before anything is claimed: never another feed's file
    entry = ledger.get(ref.file_id)
    resumed_from = entry.stage if entry else None
    if entry is None:
        entry = LedgerEntry.new(ref)
        ledger.advance(entry, "claimed", env.run_id)
    elif entry.done:
        env.log(f"{ref.key}@{ref.version} was already processed ({entry.outcome}); nothing to do")
        return _result(plan, entry, lake, started, resumed_from, outcome=None)
    else:
        env.log(f"resuming {ref.key}@{ref.version} after stage '{entry.stage}'")
    crash_point("after_claim")

    state = ledger.check_not_busy(ref.file_id)
    accepted_rel = ledger.work(ref.file_id, "accepted.parquet")
    delta_rel = ledger.work(ref.file_id, "delta.parquet")
    stale = (
        entry.reached("prepared") and not entry.reached("sending") and entry.base_commit != state.committed
    )
    if not entry.reached("prepared") or stale:
        _prepare(
            plan, ref, location, env, ledger, entry, accepted_rel, delta_rel, state.committed, state.watermark
        )
    crash_point("after_prepare")

    outcome: SendOutcome | None = None
    if entry.outcome != "error":
        if not entry.reached("confirmed"):
            ledger.take_slot(ref, env.run_id)
            crash_point("pipeline.slot_taken")
            delta = DeltaFile(lake, delta_rel)  # streamed chunk by chunk by the sender
            if delta.num_rows:
                with env.fluent() as client:
                    outcome = make_sender(plan, client, ledger, env).send(entry, delta)
            else:
                outcome = SendOutcome()
            ledger.advance(
                entry,
                "confirmed",
                env.run_id,
                fluent_rejected_rows=sorted(outcome.rejected),
                counts={**entry.counts, **_send_counts(outcome)},
                send_summary=_send_summary(outcome),
                error=_rejected_summary(outcome.rejected) or None,
            )
        crash_point("after_confirm")
        if not entry.reached("committed"):
            state = ledger.state()
            if entry.commit_generation is None:
                entry.commit_generation = state.committed + 1
                ledger.save(entry)
            # a state at or past this generation: the commit was made before a kill, and later files may
            # have committed since — applying this delta again would put its older values back
            if state.committed < entry.commit_generation:
                watermark = commit_delta(
                    lake,
                    plan.name,
                    plan.delta,
                    delta_rel=delta_rel,
                    columns=list(plan.columns),
                    failed_rows=entry.fluent_rejected_rows,
                    watermark=state.watermark,
                    file_watermark=entry.watermark,
                )
                crash_point("pipeline.snapshot_committed")
                ledger.update_state(
                    watermark=watermark,
                    last_file_id=ref.file_id,
                    inflight=None,
                    committed=entry.commit_generation,
                )
                crash_point("pipeline.state_committed")
            ledger.advance(entry, "committed", env.run_id)
        crash_point("after_commit")

    final = entry.outcome or "processed"
    if entry.archive_target is None:
        entry.archive_target = env.sources.archive_target(location, ref, final)
        ledger.save(entry)
        crash_point("pipeline.archive_target_saved")
    rejects = (
        lake.read_bytes(entry.rejects_uri) if entry.rejects_uri and lake.exists(entry.rejects_uri) else None
    )
    moved = env.sources.archive(location, ref, entry.archive_target, rejects, crash_hook=crash_point)
    crash_point("pipeline.archive_moved")
    ledger.advance(entry, "archived", env.run_id, outcome=final, counts={**entry.counts, "archive": moved})
    crash_point("pipeline.archived")
    lake.delete(accepted_rel)
    lake.delete(ledger.work(ref.file_id, "rejected_keys.parquet"))
    return _result(plan, entry, lake, started, resumed_from, outcome=outcome)


def _prepare(
    plan: FeedPlan,
    ref: FileRef,
    location: FileLocation,
    env: PipelineEnv,
    ledger: Ledger,
    entry: LedgerEntry,
    accepted_rel: str,
    delta_rel: str,
    committed: int,
    watermark: str | None,
) -> None:
    rejects_rel = f"rejects/{plan.name}/{ref.partition_key}.csv"
    with env.sources.fetch(location, ref) as fetched:
        summary = plan.validate(fetched.path, ref.name, env.lake, accepted_rel, rejects_rel)
    crash_point("pipeline.validated")
    counts = {"rows": summary.rows, "accepted": summary.accepted, "rejected": summary.rejected}
    changes: dict[str, Any] = {
        "content_sha256": fetched.sha256,
        "base_commit": committed,
        "rejects_uri": summary.rejects_rel if summary.rejected else None,
    }
    unknown = summary.metadata.get("unknown_keys")
    if unknown:  # ignored, not silently: once per file in the log, the ledger and the run's metadata
        distinct = unknown.get("distinct", unknown.get("distinct_at_least", 0))
        counts["unknown_keys"] = distinct
        changes["unknown_keys"] = unknown["names"]
        more = "at least " if "distinct_at_least" in unknown else ""
        env.log(
            f"{ref.key}: {more}{distinct:,} distinct key(s) the feed does not use, ignored: "
            f"{', '.join(unknown['names'])}{', …' if distinct > len(unknown['names']) else ''}"
        )
    if summary.failed:
        ledger.advance(
            entry,
            "prepared",
            env.run_id,
            outcome="error",
            error=summary.reason,
            counts={**counts, "changed": 0, "sent": 0},
            **changes,
        )
        return
    result = compute_delta(
        env.lake,
        plan.name,
        plan.delta,
        accepted_rel=accepted_rel,
        delta_rel=delta_rel,
        columns=list(plan.columns),
        watermark=watermark,
        rejected_keys_rel=summary.rejected_keys_rel,
    )
    ledger.advance(
        entry,
        "prepared",
        env.run_id,
        watermark=result.watermark,
        counts={**counts, **result.as_metadata()},
        **changes,
    )


def _send_counts(outcome: SendOutcome) -> dict[str, Any]:
    extra = {f"fluent_{k}": v for k, v in outcome.ids.items() if isinstance(v, int)}  # e.g. created/updated
    return {
        "sent": outcome.sent,
        "fluent_requests": outcome.requests,
        "fluent_rejected": len(outcome.rejected),
        "fluent_retried_rows": outcome.retried,
        **extra,
    }


def _send_summary(outcome: SendOutcome) -> dict[str, Any]:
    """Ids and counts for the entry and the run's metadata (the full request list is the send log)."""
    return {k: v for k, v in outcome.ids.items() if v not in (None, [], "")}


def _rejected_summary(rejected: dict[int, str]) -> str:
    items = sorted(rejected.items())[:20]
    return "; ".join(f"row {r}: {m}" for r, m in items) + (" …" if len(rejected) > 20 else "")


def _result(
    plan: FeedPlan,
    entry: LedgerEntry,
    lake: Lake,
    started: float,
    resumed_from: str | None,
    outcome: SendOutcome | None,
) -> FileResult:
    c, sent = entry.counts, entry.send_summary
    md: dict[str, Any] = {
        "file": f"{entry.location}:{entry.key}",
        "version": entry.version,
        "content_sha256": entry.content_sha256,
        "outcome": entry.outcome,
        "rows": c.get("rows", 0),
        "accepted": c.get("accepted", 0),
        "rejected": c.get("rejected", 0),
        "changed": c.get("changed", 0),
        "sent": c.get("sent", 0),
        "batches": sent.get("batches", 0),
        "fluent_requests": c.get("fluent_requests", 0),
        "fluent_rejected": c.get("fluent_rejected", 0),
        "fluent_retried_rows": c.get("fluent_retried_rows", 0),
        **{k: v for k, v in c.items() if k in ("fluent_created", "fluent_updated")},
        **{k: v for k, v in c.items() if k in DELTA_METADATA},
        "duration_s": round(time.monotonic() - started, 3),
        "archived_to": entry.archive_target,
        "resumed_from_stage": resumed_from or "new",
        "ledger": lake.uri_for(Ledger(lake, plan.name).rel("ledger", f"{entry.file_id}.json")),
    }
    if entry.rejects_uri:
        md["rejects_uri"] = lake.uri_for(entry.rejects_uri)
    if c.get("unknown_keys"):
        md["unknown_keys"] = c["unknown_keys"]
        md["unknown_key_names"] = ", ".join(entry.unknown_keys)
    if sent.get("job_ids"):
        md["fluent_job_ids"] = ", ".join(sent["job_ids"])
        more = sent.get("batches", 0) - len(sent.get("batch_ids", []))
        md["fluent_batch_ids"] = ", ".join(sent.get("batch_ids", [])) + (f" … (+{more})" if more > 0 else "")
    if sent.get("closed_jobs_replaced"):
        md["fluent_closed_jobs_replaced"] = ", ".join(sent["closed_jobs_replaced"])
    for key in ("events_resent_after_uncertain_post", "mutations_resent_after_uncertain_post"):
        if key in sent:
            md[key] = sent[key]
    if sent.get("batches_adopted"):
        md["fluent_batches_adopted"] = sent["batches_adopted"]
    if entry.fluent_rejected_rows:
        md["fluent_rejections"] = entry.error or ""
    rows = c.get("rows", 0) or 0
    passed = entry.outcome != "error" and (rows == 0 or c.get("rejected", 0) / rows <= plan.reject_threshold)
    return FileResult(entry, md, passed, resumed_from)
