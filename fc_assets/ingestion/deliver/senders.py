"""Sending a file's delta to Fluent: Batch API (inventory), Event API (products), GraphQL mutations
(locations) — streamed chunk by chunk from delta.parquet, with every step in the file's send log.

Memory and ledger size are bounded by the chunk, not the file: the delta is read back in file order with
`DeltaFile.chunks` (only the chunk being sent becomes Python dicts), and progress is recorded per chunk
ordinal in the send log (`ledger.SendLog`, one small object per request), never as row-id lists.

What a rerun after a crash or an uncertain POST (5xx, timeout, dropped connection: Fluent may or may not
have acted) does, per sender:

- Inventory (Batch API): a batch is recorded `posting` (with the job's batch count) before the POST and
  `posted` with its id right after — before waiting on it. A rerun re-polls posted batches, never re-sends
  them; a batch left `posting` is reconciled against the job's batch list (a batch that appeared since is
  ours: adopted, not re-sent; else it is sent). Jobs: `daily` (one job per feed per UTC day, reused across
  files while OPEN) or `per_file` (one job per file); a job Fluent reports CLOSED or no longer knows (404)
  gets a new job and the batch is sent once to it; a job creation without an answer is simply done again
  (an orphan job holds nothing). At most 5,000 entities per batch; polled to COMPLETE
  with backoff and a timeout (`SendIncomplete`: the rerun polls again). Per-entity errors are mapped back
  to rows and only those rows are sent again (`entity_retries`); what still fails is reported and kept out
  of the snapshot, so the next file sends it again.
- Products (Event API, sync): an event counts as sent only once Fluent answered it. A POST without an
  answer is repeated at once, up to the client's `max_retries` (an upsert: a repeat is harmless), so a short
  5xx burst does not cost the file an attempt. Before a window of
  up to `EVENT_WINDOW` POSTs the chunk's record says which events are in flight, and after it how many were
  answered (two lake writes per window, not one per event); events left in flight (no answer, or a crash)
  are sent again by the rerun — `UPSERT_PRODUCT` is an upsert, so a duplicate is harmless and a loss is
  not — and counted in `events_resent_after_uncertain_post` (each a possible duplicate). A 4xx refusal or an event Fluent reports FAILED is a
  rejection of that row. Standard products go before variants (two passes over the delta).
- Locations (GraphQL): looked up by ref, then `createLocation`/`updateLocation` for up to N aliases per
  request, per-alias results. A request without an answer is re-done by the rerun after a fresh lookup (a
  create that ran becomes an update), counted in `mutations_resent_after_uncertain_post`. An alias that
  failed is retried alone (`entity_retries`); what still fails is reported and kept out of the snapshot.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

# the crash hook (crashpoints.py), re-exported where the tests and assets.py have always imported it
import orjson

from fc_assets.ingestion.deliver.crashpoints import CRASH_ENV as CRASH_ENV
from fc_assets.ingestion.deliver.crashpoints import InjectedCrash as InjectedCrash
from fc_assets.ingestion.deliver.crashpoints import crash_point
from fc_assets.ingestion.deliver.delta_chunks import DeltaFile
from fc_assets.ingestion.deliver.inventory_json import arrow_entities_json, iso_array
from fc_assets.ingestion.deliver.ledger import Ledger, LedgerEntry, SendLog
from fc_assets.prefetch import prefetch
from fc_assets.resources.fluent import FluentClient, SerializedEntities
from fc_assets.resources.fluent_errors import (
    FluentAuthError,
    FluentBatchTimeout,
    FluentGraphQLError,
    FluentHTTPError,
    FluentJobClosedError,
    FluentRateLimited,
    FluentTransportError,
)

if TYPE_CHECKING:
    import pyarrow as pa

MAX_BATCH = 5000
EVENT_CHUNK = 1000  # delta rows read at a time for product events (one event per row)
EVENT_WINDOW = 50  # events between two send-log writes: the most a crash can make the rerun send twice
ALIASES_PER_REQUEST = 25
JobStrategy = Literal["daily", "per_file"]


class SendIncomplete(RuntimeError):
    """Fluent did not finish in time (e.g. a batch stuck in RUNNING); the ledger keeps the request ids and a
    rerun polls them again instead of re-sending."""

    def __init__(self, message: str, metadata: dict[str, Any]) -> None:
        super().__init__(message)
        self.metadata = metadata


@dataclass
class SendOutcome:
    sent: int = 0  # entities (or events / mutations) Fluent acknowledged, retries included
    requests: int = 0  # HTTP requests that carried data
    rejected: dict[int, str] = field(default_factory=dict)  # file row → Fluent's reason, after retries
    retried: int = 0  # rows sent a second time because Fluent rejected them the first time
    ids: dict[str, Any] = field(default_factory=dict)  # job/batch ids, created/updated, resends

    def as_metadata(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "fluent_requests": self.requests,
            "fluent_rejected": len(self.rejected),
            "fluent_retried_rows": self.retried,
            **{f"fluent_{k}": v for k, v in self.ids.items()},
        }


def _open_log(ledger: Ledger, entry: LedgerEntry, run_id: str | None, chunk: int) -> tuple[SendLog, int]:
    """The file's send log and its chunk size: fixed by the first run, so ordinals keep meaning the same
    rows whatever batch size a rerun is configured with."""
    log = ledger.sends(entry.file_id)
    if entry.stage != "sending":
        ledger.advance(entry, "sending", run_id)
    plan = log.get("plan") or log.put("plan", {"chunk": chunk})
    return log, int(plan["chunk"])


def _uncertain(e: Exception) -> bool:
    """True when Fluent may have acted on a POST that got no usable answer (5xx, timeout, dropped
    connection) or refused it only for now (429 after retries): not a rejection of the row."""
    if isinstance(e, FluentHTTPError):
        return isinstance(e, FluentRateLimited) or e.status >= 500 or e.request_may_have_been_processed
    return True


def delivery_counts(log: SendLog) -> tuple[int, int]:
    """(requests Fluent answered, requests sent without a recorded answer) of a file's send log, for what
    a release says about the file; bookkeeping records (the plan, a per-file job) are not requests. Batches
    (`b…`) are answered once they have an id and without an answer while `posting`; events (`e…`) count
    their acknowledged events and the one in flight; mutation requests (`m…`) are answered once `done`."""
    answered = unanswered = 0
    for key, rec in log.items(""):
        if key.startswith("b"):
            answered += bool(rec.get("batch_id"))
            unanswered += not rec.get("batch_id") and rec.get("state") == "posting"
        elif key.startswith("e"):
            answered += int(rec.get("acked") or 0)
            unanswered += rec.get("in_flight") is not None
        elif key.startswith("m"):
            answered += rec.get("state") == "done"
            unanswered += rec.get("state") == "posting"
    return answered, unanswered


def _refused(e: Exception) -> bool:
    """True when Fluent certainly did not act on a request that failed: refused with 429 or 401, never
    connected, or the failure was the token request before it — nothing to count as a re-send later."""
    if isinstance(e, FluentHTTPError | FluentTransportError) and e.path.endswith("/oauth/token"):
        return True
    if isinstance(e, FluentRateLimited | FluentAuthError):
        return True
    return isinstance(e, FluentTransportError) and not e.request_sent


# ---------------------------------------------------------------------------------------- inventory


def inventory_entity(row: dict[str, Any], retailer_id: str) -> dict[str, Any]:
    """A canonical inventory row as a Batch API entity (`delete` rows become qty 0)."""
    qty = 0 if row.get("_op") == "delete" else int(row["qty"])
    g = row.get
    return _entity(
        row["sku_ref"], row["location_ref"], qty, g("status"), g("expected_on"), g("condition"), retailer_id
    )


def inventory_entities(table: pa.Table, retailer_id: str) -> list[dict[str, Any]]:
    """`inventory_entity` of every row of a delta chunk, read column by column: no dict per row first
    (`Table.to_pylist` took about two thirds of the sender's CPU). The sender posts
    `inventory_json.entities_json` instead (these entities' JSON, built by Arrow); this stays its reference
    and its fallback for column types Arrow does not serialise there."""
    names = set(table.column_names)

    def col(name: str) -> list[Any]:
        return table.column(name).to_pylist() if name in names else [None] * table.num_rows

    ops = col("_op")
    qtys = [
        0 if op == "delete" else int(q) for q, op in zip(table.column("qty").to_pylist(), ops, strict=True)
    ]
    columns = (table.column("sku_ref").to_pylist(), table.column("location_ref").to_pylist(), qtys)
    eta = _iso_texts(table.column("expected_on")) if "expected_on" in names else col("expected_on")
    more = (col("status"), eta, col("condition"))
    return [_entity(*values, retailer_id) for values in zip(*columns, *more, strict=True)]


def entities_json(table: pa.Table, retailer_id: str) -> bytes:
    """The JSON array of the chunk's entities, byte for byte `orjson.dumps(inventory_entities(...))`: built
    by Arrow (inventory_json.py), or from the entities where Arrow does not serialise the chunk's types."""
    body = arrow_entities_json(table, retailer_id)
    if body is None:
        return orjson.dumps(inventory_entities(table, retailer_id))
    return body


def _iso_texts(column: pa.ChunkedArray) -> list[str | None]:
    """`datetime.isoformat()` of each value; for UTC microsecond timestamps (the canonical `expected_on`)
    computed by Arrow: building a tz-aware datetime per row cost more than the rest of the entity."""
    iso = iso_array(column)
    if iso is not None:
        return iso.to_pylist()
    return [v.isoformat() if hasattr(v, "isoformat") else v for v in column.to_pylist()]


def _entity(
    sku: Any, loc: Any, qty: int, status: Any, eta: Any, condition: Any, retailer_id: str
) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "skuRef": sku,
        "locationRef": loc,
        "qty": qty,
        "type": "LAST_ON_HAND",
        "status": status or "AVAILABLE",
        "retailerId": retailer_id,
    }
    attributes = {}
    if eta is not None:
        attributes["expectedOn"] = eta.isoformat() if hasattr(eta, "isoformat") else str(eta)
    if condition:
        attributes["condition"] = condition
    if attributes:
        entity["attributes"] = attributes
    return entity


def batch_errors(
    batch: dict[str, Any],
    entities: list[dict[str, Any]] | Callable[[], list[dict[str, Any]]],
    *,
    count: int | None = None,
) -> dict[int, str]:
    """Per-entity errors of a COMPLETE batch as {index in the batch: reason}.

    Accepts the shapes seen for Fluent's batch `results`: an index (`entityIndex`/`index`) or the entity's
    refs (`skuRef` + `locationRef`, top-level or under `entity`). `entities` may be a callable: it is only
    called (e.g. to read the batch's rows back) when an error names refs instead of an index."""
    out: dict[int, str] = {}
    by_ref: dict[tuple[Any, Any], int] | None = None
    n = count if count is not None else len(entities)  # type: ignore[arg-type]
    for item in batch.get("results") or batch.get("errors") or []:
        if not isinstance(item, dict):
            continue
        status = str(item.get("status", "")).upper()
        if status in ("SUCCESS", "OK", "COMPLETE", "PROCESSED") and not item.get("error"):
            continue
        reason = (
            item.get("message") or item.get("error") or item.get("reason") or item.get("code") or "rejected"
        )
        if isinstance(reason, dict):
            reason = reason.get("message") or str(reason)
        idx = item.get("entityIndex", item.get("index"))
        if idx is None:
            if by_ref is None:
                listed = entities() if callable(entities) else entities
                by_ref = {(e["skuRef"], e["locationRef"]): i for i, e in enumerate(listed)}
            ent = item.get("entity") if isinstance(item.get("entity"), dict) else item
            idx = by_ref.get((ent.get("skuRef"), ent.get("locationRef")))
        if idx is not None and 0 <= int(idx) < n:
            out[int(idx)] = str(reason)
    return out


def job_status(client: FluentClient, job_id: str) -> str:
    """OPEN, CLOSED, or GONE when Fluent no longer knows the job (404: e.g. a sandbox restarted from its
    seed) — a gone job is handled like a closed one: a new job is opened."""
    try:
        return str(client.get_job(job_id).get("status", "OPEN")).upper()
    except FluentHTTPError as e:
        if e.status == 404:
            return "GONE"
        raise


def _job_batch_ids(job: dict[str, Any]) -> list[str]:
    items = job.get("batch") or job.get("batches") or []
    return [str(b.get("batchId") or b.get("id")) for b in items if isinstance(b, dict)]


class BatchInventorySender:
    def __init__(
        self,
        client: FluentClient,
        ledger: Ledger,
        *,
        batch_size: int = MAX_BATCH,
        timeout_s: float = 300.0,
        entity_retries: int = 1,
        job_strategy: JobStrategy = "daily",
        run_id: str | None = None,
        log: Callable[[str], None] = lambda m: None,
    ) -> None:
        if job_strategy not in ("daily", "per_file"):
            raise ValueError(f"job_strategy must be 'daily' or 'per_file', got {job_strategy!r}")
        self.client, self.ledger = client, ledger
        self.batch_size = max(1, min(batch_size, MAX_BATCH))
        self.timeout_s, self.entity_retries, self.run_id, self.log = timeout_s, entity_retries, run_id, log
        self.job_strategy = job_strategy
        self._checked_job: str | None = None
        self._day_job: dict[str, Any] | None = None  # FeedState.job as read once per file (daily strategy)
        self._job_batches: dict[str, int] = {}  # batches each job holds (read once, then counted here)
        self._sends: SendLog | None = None
        self._file_name = ""

    # the job: today's (FeedState.job) or this file's (the send log's "job" record)
    def job_id(self, *, replace: str | None = None) -> str:
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        if self.job_strategy == "daily":
            if replace is None and self._day_job and self._day_job.get("day") == today:
                job = self._day_job  # this file's sending already read (or made) today's job: no re-read
            else:
                job = self._day_job = self.ledger.state().job or {}
            usable = job.get("day") == today
        else:
            job = (self._sends.get("job") if self._sends else None) or {}
            usable = True
        if job.get("job_id") and usable and job["job_id"] != replace:
            if self._checked_job == job["job_id"]:
                return job["job_id"]
            status = job_status(self.client, job["job_id"])
            if status == "OPEN":
                self._checked_job = job["job_id"]
                return job["job_id"]
            self.log(f"job {job['job_id']} is {status.lower()}; creating a new one")
        label = today if self.job_strategy == "daily" else self._file_name
        name = f"fc_assets/{self.ledger.feed}/{label}"
        job_id = self._create_job(name)
        crash_point("inventory.job_created")
        record = {"day": today, "job_id": job_id, "name": name}
        if self.job_strategy == "daily":
            self.ledger.update_state(job=record)
            self._day_job = record
        elif self._sends is not None:
            self._sends.put("job", record)
        self._checked_job = job_id
        return job_id

    def _create_job(self, name: str) -> str:
        """Create a job; when the creation got no answer (5xx, timeout, dropped connection) Fluent may hold
        the job, but an orphan job holds nothing and closes at midnight, so another one is created at once
        (up to the client's `max_retries` times) instead of failing the file's attempt."""
        # our delta already dropped unchanged rows, so Fluent's batch pre-processing would only repeat it
        meta = {"preprocessing": "skip", "source": "fc_assets", "feed": self.ledger.feed}
        for retry in range(self.client.max_retries + 1):
            try:
                return self.client.create_job(name, meta=meta)
            except (FluentHTTPError, FluentTransportError) as e:
                no_answer = isinstance(e, FluentTransportError) or e.status >= 500
                # the job POST itself (not e.g. the token request before it, which the client retried)
                if not no_answer or not e.path.endswith("/job") or retry == self.client.max_retries:
                    raise
                self.log(f"job creation got no answer ({e}); creating another job (an orphan holds nothing)")
                time.sleep(min(self.client.backoff_max, self.client.backoff_base * 2**retry))
        raise AssertionError("unreachable")

    def send(self, entry: LedgerEntry, delta: DeltaFile) -> SendOutcome:
        log, size = _open_log(self.ledger, entry, self.run_id, self.batch_size)
        crash_point("inventory.sending")
        self._sends, self._file_name, self._day_job = log, entry.partition_key, None
        rid = self.client.retailer_id
        n_chunks = math.ceil(delta.num_rows / size)

        def unsent() -> Iterator[tuple[int, str, SerializedEntities]]:
            for i, table in delta.chunks(size):
                key = f"b0-{i:06d}"
                rec = log.get(key)
                if rec and rec.get("batch_id"):
                    continue  # posted by an earlier run: never again (its rows are not even converted)
                yield i, key, SerializedEntities(entities_json(table, rid), table.num_rows)

        # the next chunk is read and serialised (by Arrow, inventory_json.py) by a thread while this one is
        # posted (and Fluent takes it in): the main thread only posts bytes. Only the POSTs write the send log.
        for i, key, entities in prefetch(unsent(), name="inventory-chunks"):
            self._post(log, key, {"attempt": 0, "chunk": i, "start": i * size}, entities)
            if i == 0 and n_chunks > 1:
                crash_point("mid_send")
        crash_point("after_send")
        self._confirm(log, delta, size)
        for attempt in range(1, self.entity_retries + 1):
            failed = sorted(self._failed_positions(log, attempt - 1))
            if not failed:
                break
            rows = delta.rows_at(failed)
            for k in range(0, len(failed), size):
                part = failed[k : k + size]
                self._post(
                    log,
                    f"b{attempt}-{k // size:06d}",
                    {"attempt": attempt, "chunk": k // size, "positions": part},
                    [inventory_entity(rows[p], rid) for p in part],
                )
            self._confirm(log, delta, size)
        return self._outcome(log, delta)

    def _post(
        self,
        log: SendLog,
        key: str,
        ident: dict[str, Any],
        entities: list[dict[str, Any]] | SerializedEntities,
    ) -> None:
        rec = log.get(key)
        if rec and rec.get("batch_id"):
            return  # posted by an earlier run: never again
        if rec and rec.get("state") == "posting":
            adopted = self._reconcile(log, rec)
            if adopted:
                log.put(key, {**rec, "batch_id": adopted, "state": "posted", "reconciled": True})
                return
        job_id = self.job_id()
        # the job's batch count before the POST: a batch beyond it after a crash is this one. Read from
        # Fluent once per job and run, then counted here (one run per feed at a time adds batches to it)
        if job_id not in self._job_batches:
            self._job_batches[job_id] = len(_job_batch_ids(self.client.get_job(job_id)))
        known = self._job_batches[job_id]
        rec = log.put(
            key, {**ident, "entities": len(entities), "job_id": job_id, "state": "posting", "known": known}
        )
        crash_point("inventory.posting_recorded")
        try:
            batch_id = self.client.send_batch(job_id, entities)
        except FluentHTTPError as e:
            if not (isinstance(e, FluentJobClosedError) or e.status == 404):
                raise  # no answer: the record stays `posting`, the rerun reconciles it
            # refused without effect (the job closed or is gone): a new job, this batch once more
            new_job = self.job_id(replace=job_id)
            self.log(f"job {job_id} refused batch {key} ({e.status}); re-sending once to new job {new_job}")
            rec = log.put(key, {**rec, "closed_job": job_id, "job_id": new_job, "known": 0})
            self._job_batches[new_job] = 0
            batch_id = self.client.send_batch(new_job, entities)
        self._job_batches[rec["job_id"]] += 1
        crash_point("after_post")
        rec = {k: v for k, v in rec.items() if k != "known"}
        log.put(key, {**rec, "batch_id": batch_id, "state": "posted"})
        crash_point("inventory.posted_recorded")

    def _reconcile(self, log: SendLog, rec: dict[str, Any]) -> str | None:
        """A batch that appeared in the job after the `known` count and is claimed by no other request."""
        if job_status(self.client, rec["job_id"]) == "GONE":
            return None
        claimed = {r.get("batch_id") for _, r in log.items("b") if r.get("batch_id")}
        now = _job_batch_ids(self.client.get_job(rec["job_id"]))
        fresh = [b for b in now[int(rec.get("known") or 0) :] if b not in claimed]
        return fresh[0] if len(fresh) == 1 else None

    def _confirm(self, log: SendLog, delta: DeltaFile, size: int) -> None:
        rid = self.client.retailer_id
        for key, rec in log.items("b"):
            if rec.get("state") != "posted":
                continue
            try:
                body = self.client.wait_for_batch(rec["job_id"], rec["batch_id"], timeout=self.timeout_s)
            except FluentBatchTimeout as e:
                raise SendIncomplete(
                    f"batch {rec['batch_id']} of job {rec['job_id']} not COMPLETE after {self.timeout_s:.0f}s "
                    f"(last status {e.last_status}); re-execute the run to poll it again — it will not be "
                    "re-sent",
                    {
                        "fluent_job_id": rec["job_id"],
                        "fluent_batch_id": rec["batch_id"],
                        "batch_status": e.last_status,
                        "stage": "sending",
                    },
                ) from e
            positions = rec.get("positions") or range(rec["start"], rec["start"] + rec["entities"])

            def entities(positions=positions) -> list[dict[str, Any]]:
                rows = delta.rows_at(positions)  # only for errors given by refs, not by index
                return [inventory_entity(rows[p], rid) for p in positions]

            errors = batch_errors(body, entities, count=rec["entities"])
            log.put(
                key,
                {**rec, "state": "complete", "errors": {str(positions[i]): m for i, m in errors.items()}},
            )
            crash_point("inventory.batch_complete_recorded")
        crash_point("after_confirm_batches")

    @staticmethod
    def _failed_positions(log: SendLog, attempt: int) -> set[int]:
        return {int(p) for _, r in log.items(f"b{attempt}-") for p in (r.get("errors") or {})}

    def _outcome(self, log: SendLog, delta: DeltaFile) -> SendOutcome:
        reqs = [r for _, r in log.items("b")]
        final: dict[int, str] = {}
        for r in sorted(reqs, key=lambda r: r["attempt"]):
            errors = r.get("errors") or {}
            for p in r.get("positions") or ():
                final.pop(p, None)  # a retried row: its latest attempt decides
            for p, msg in errors.items():
                final[int(p)] = msg
        rows = delta.rows_at(final)
        batch_ids = [r["batch_id"] for r in reqs if r.get("batch_id")]
        return SendOutcome(
            sent=sum(r["entities"] for r in reqs),
            requests=len(reqs),
            rejected={int(rows[p]["_row"]): msg for p, msg in final.items()},
            retried=sum(r["entities"] for r in reqs if r["attempt"] > 0),
            ids={
                "job_ids": sorted({r["job_id"] for r in reqs}),
                "batches": len(batch_ids),
                "batch_ids": batch_ids[:50],
                "closed_jobs_replaced": sorted({r["closed_job"] for r in reqs if r.get("closed_job")}),
                "batches_adopted": sum(1 for r in reqs if r.get("reconciled")),
            },
        )


# ----------------------------------------------------------------------------------------- products


def product_event(row: dict[str, Any], retailer_id: str, catalogue_ref: str) -> dict[str, Any]:
    """A canonical `products` row (feeds.py) as an UPSERT_PRODUCT event: the record is the attributes."""
    attrs = {k: v for k, v in row.items() if not k.startswith("_") and v is not None}
    catalogue_ref = row.get("catalogue_ref") or catalogue_ref
    return {
        "name": "UPSERT_PRODUCT",
        "entityType": "PRODUCT",
        "entityRef": row.get("ref") or row.get("sku_ref"),
        "rootEntityType": "PRODUCT_CATALOGUE",
        "rootEntityRef": catalogue_ref,
        "retailerId": retailer_id,
        "attributes": {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in attrs.items()},
    }


def _is_variant(row: dict[str, Any]) -> bool:
    return str(row.get("type") or "STANDARD").upper() == "VARIANT"


class EventProductSender:
    def __init__(
        self,
        client: FluentClient,
        ledger: Ledger,
        *,
        catalogue_ref: str | None = None,
        mode: str = "sync",
        run_id: str | None = None,
        to_event: Callable[[dict[str, Any], str, str], dict[str, Any]] = product_event,
    ) -> None:
        self.client, self.ledger, self.mode, self.run_id, self.to_event = (
            client,
            ledger,
            mode,
            run_id,
            to_event,
        )
        self.catalogue_ref = catalogue_ref or f"PC:MASTER:{client.retailer_id}"

    def send(self, entry: LedgerEntry, delta: DeltaFile) -> SendOutcome:
        log, size = _open_log(self.ledger, entry, self.run_id, EVENT_CHUNK)
        crash_point("products.sending")
        first = True
        # standard products before their variants (a variant event needs its standard product to exist);
        # Fluent has no product delete event, so rows gone from the file are not sent
        for phase, variants in ((0, False), (1, True)):
            for i, table in delta.chunks(size):
                key = f"e{phase}-{i:06d}"
                rec = log.get(key)
                if rec and rec["state"] == "done":
                    continue
                rows = [
                    r for r in table.to_pylist() if r.get("_op") != "delete" and _is_variant(r) == variants
                ]
                if not rows:
                    continue
                rec = rec or {"chunk": i, "events": len(rows), "acked": 0, "resent": 0, "errors": {}}
                if rec.get("in_flight") is not None:
                    # events of a window without a recorded answer: sent again (an upsert: harmless), and
                    # counted, each as a possible duplicate
                    rec["resent"] += int(rec["in_flight"]) - rec["acked"]
                while rec["acked"] < len(rows):
                    # two small writes per window of events, not one per event: the window is in flight,
                    # then acknowledged (a crash inside it re-sends at most EVENT_WINDOW events)
                    end = min(rec["acked"] + EVENT_WINDOW, len(rows))
                    rec = log.put(key, {**rec, "state": "sending", "in_flight": end})
                    crash_point("products.in_flight_recorded")
                    errors = dict(rec["errors"])
                    for j in range(rec["acked"], end):
                        try:
                            error = self._post_upsert(rows[j], rec)
                        except Exception as e:
                            # answered up to j; j itself uncertain (the rerun re-sends exactly that one),
                            # or certainly refused (429/401, never connected: the rerun sends it, not a re-send)
                            in_flight = None if _refused(e) else j + 1
                            log.put(key, {**rec, "acked": j, "errors": errors, "in_flight": in_flight})
                            raise
                        crash_point("after_post")
                        if error:
                            errors[str(rows[j]["_row"])] = error
                        if first and delta.num_rows > 1:
                            log.put(key, {**rec, "acked": j + 1, "errors": errors})
                            crash_point("mid_send")
                        first = False
                    rec = {**rec, "acked": end, "errors": errors, "in_flight": None}
                log.put(key, {**rec, "state": "done", "in_flight": None})
                crash_point("products.chunk_done")
        crash_point("after_send")
        recs = [r for _, r in log.items("e")]
        return SendOutcome(
            sent=sum(r["acked"] for r in recs),
            requests=sum(r["acked"] for r in recs),
            rejected={int(row): msg for r in recs for row, msg in r["errors"].items()},
            ids={"events_resent_after_uncertain_post": sum(r["resent"] for r in recs)},
        )

    def _post_upsert(self, row: dict[str, Any], rec: dict[str, Any]) -> str | None:
        """`_post`, repeated at once (with the client's backoff, up to its `max_retries`) when the POST got no
        answer: the event is an upsert, so a repeat is harmless, and a short 5xx burst does not cost the file
        an attempt. Each repeat is counted in `rec["resent"]` as a possible duplicate."""
        for repeat in range(self.client.max_retries + 1):
            try:
                return self._post(row)
            except Exception as e:
                if _refused(e) or not _uncertain(e) or repeat == self.client.max_retries:
                    raise
                rec["resent"] += 1
                time.sleep(min(self.client.backoff_max, self.client.backoff_base * 2**repeat))
        raise AssertionError("unreachable")

    def _post(self, row: dict[str, Any]) -> str | None:
        """Post one event; its rejection reason, or None. No answer (5xx, dropped, timeout) raises."""
        try:
            answer = self.client.post_event(
                self.to_event(row, self.client.retailer_id, self.catalogue_ref), mode=self.mode
            )
        except FluentHTTPError as e:
            if _uncertain(e):
                raise
            return f"refused: HTTP {e.status} {e.body_excerpt}"  # a 4xx: Fluent did not take it
        status = str(answer.get("eventStatus") or "").upper()
        return None if status in ("", "COMPLETE", "SUCCESS") else f"event status {status}"


# ---------------------------------------------------------------------------------------- locations

LOOKUP = "{alias}: location(ref: ${alias}) {{ id ref primaryAddress {{ id }} openingSchedule {{ id }} }}"


def chunked(items: list[Any], n: int) -> Iterable[list[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class GraphQLLocationSender:
    """Upsert locations: aliased lookups by ref, then aliased create/update mutations (per-alias results)."""

    def __init__(
        self,
        client: FluentClient,
        ledger: Ledger,
        *,
        aliases_per_request: int = ALIASES_PER_REQUEST,
        entity_retries: int = 1,
        run_id: str | None = None,
        to_inputs: Callable[[dict[str, Any], dict[str, Any] | None, str], tuple[str, dict[str, Any]]]
        | None = None,
    ) -> None:
        self.client, self.ledger, self.run_id = client, ledger, run_id
        self.n = max(1, aliases_per_request)
        self.entity_retries = entity_retries
        self.to_inputs = to_inputs or location_input

    def lookup(self, refs: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for part in chunked(refs, self.n):
            aliases = {f"l{i}": ref for i, ref in enumerate(part)}
            decl = ", ".join(f"${a}: String" for a in aliases)
            body = " ".join(LOOKUP.format(alias=a) for a in aliases)
            data = self.client.graphql(f"query Lookup({decl}) {{ {body} }}", aliases)
            for a, ref in aliases.items():
                if data.get(a):
                    found[ref] = data[a]
        return found

    def send(self, entry: LedgerEntry, delta: DeltaFile) -> SendOutcome:
        log, size = _open_log(self.ledger, entry, self.run_id, self.n)
        crash_point("locations.sending")
        for i, table in delta.chunks(size):
            rows = [(i * size + k, r) for k, r in enumerate(table.to_pylist()) if r.get("_op") != "delete"]
            if rows:
                self._request(log, f"m0-{i:06d}", {"attempt": 0, "chunk": i}, rows)
            if i == 0:
                crash_point("mid_send")
        crash_point("after_send")
        for attempt in range(1, self.entity_retries + 1):
            failed = sorted({int(p) for _, r in log.items(f"m{attempt - 1}-") for p in r.get("errors") or {}})
            if not failed:
                break
            rows = delta.rows_at(failed)
            for p in failed:  # a failed alias is retried alone
                self._request(log, f"m{attempt}-{p:09d}", {"attempt": attempt, "position": p}, [(p, rows[p])])
        return self._outcome(log, delta)

    def _request(self, log: SendLog, key: str, ident: dict[str, Any], rows: list[tuple[int, dict]]) -> None:
        rec = log.get(key)
        if rec and rec["state"] == "done":
            return
        uncertain = bool(rec) and rec["state"] == "posting"  # sent before, no answer recorded
        resent = (rec or {}).get("resent", 0) + (len(rows) if uncertain else 0)
        existing = self.lookup([r["ref"] for _, r in rows])  # fresh on resume: creates that ran are updates
        crash_point("locations.looked_up")
        rid = self.client.retailer_id
        ops = [self.to_inputs(r, existing.get(r["ref"]), rid) for _, r in rows]
        decl = ", ".join(
            f"$i{i}: {'CreateLocationInput' if m == 'createLocation' else 'UpdateLocationInput'}!"
            for i, (m, _) in enumerate(ops)
        )
        body = " ".join(f"a{i}: {m}(input: $i{i}) {{ id ref }}" for i, (m, _) in enumerate(ops))
        variables = {f"i{i}": inp for i, (_, inp) in enumerate(ops)}
        log.put(key, {**ident, "aliases": len(rows), "state": "posting", "resent": resent})
        crash_point("locations.posting_recorded")
        try:
            result = self.client.graphql(f"mutation Upsert({decl}) {{ {body} }}", variables, partial=True)
        except Exception as e:
            if _refused(e):  # Fluent did not act: the rerun's request is not a re-send
                log.put(key, {**ident, "aliases": len(rows), "state": "refused", "resent": resent})
            raise
        crash_point("after_post")
        errors: dict[str, str] = {}
        for err in result.errors:
            path = err.get("path") or []
            alias = str(path[0]) if path else ""
            if alias.startswith("a") and alias[1:].isdigit() and int(alias[1:]) < len(rows):
                errors[str(rows[int(alias[1:])][0])] = str(err.get("message", "error"))
            else:  # an error not tied to an alias: the request as a whole failed
                raise FluentGraphQLError(result.errors, data=result.data)
        ok = [m for k, (m, _) in enumerate(ops) if str(rows[k][0]) not in errors]
        log.put(
            key,
            {
                **ident,
                "aliases": len(rows),
                "state": "done",
                "resent": resent,
                "created": ok.count("createLocation"),
                "updated": ok.count("updateLocation"),
                "errors": errors,
            },
        )
        crash_point("locations.done_recorded")

    def _outcome(self, log: SendLog, delta: DeltaFile) -> SendOutcome:
        recs = [r for _, r in log.items("m")]
        final: dict[int, str] = {}
        for r in sorted(recs, key=lambda r: r["attempt"]):
            if r["attempt"] > 0:
                final.pop(r["position"], None)
            final.update({int(p): m for p, m in (r.get("errors") or {}).items()})
        rows = delta.rows_at(final)
        return SendOutcome(
            sent=sum(r["aliases"] for r in recs),
            requests=len(recs),
            rejected={int(rows[p]["_row"]): msg for p, msg in final.items()},
            retried=sum(r["aliases"] for r in recs if r["attempt"] > 0),
            ids={
                "created": sum(r.get("created", 0) for r in recs),
                "updated": sum(r.get("updated", 0) for r in recs),
                "mutations_resent_after_uncertain_post": sum(r.get("resent", 0) for r in recs),
            },
        )


ADDRESS_FIELDS = {
    "company_name": "companyName",
    "street": "street",
    "street2": "street2",
    "city": "city",
    "state": "state",
    "postcode": "postcode",
    "region": "region",
    "country": "country",
    "email": "email",
    "time_zone": "timeZone",
}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _schedule(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"allHours": bool(row.get("all_hours") or False)}
    for d in DAYS:
        for part in ("start", "end"):
            v = row.get(f"{d}_{part}")
            out[f"{d}{part.capitalize()}"] = int(v) if v is not None else 0
    return out


def _attributes(row: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The row's attribute list as AttributeInputs, in the row's order (by name); None when it has none."""
    attrs = [{"name": a["name"], "type": a["type"], "value": a["value"]} for a in row.get("attributes") or ()]
    return attrs or None


def location_input(
    row: dict[str, Any], existing: dict[str, Any] | None, retailer_id: str
) -> tuple[str, dict[str, Any]]:
    """A canonical `locations` row (feeds.py) → (`createLocation`, CreateLocationInput) when the ref is new,
    else (`updateLocation`, UpdateLocationInput) with the ids of the existing address and schedule.
    `attributes` go as the file's `[{name, type, value}]` (values as text, as products' events carry them);
    Fluent upserts them by name, so an attribute dropped from the file stays on the location.
    `networks` are refs in the file but `NetworkId` needs ids, so they are not sent (documented gap)."""
    address = {gql: row[col] for col, gql in ADDRESS_FIELDS.items() if row.get(col) is not None}
    coords = {k: float(row[k]) for k in ("latitude", "longitude") if row.get(k) is not None}
    common = {
        "name": row.get("name"),
        "type": row.get("type"),
        "supportPhoneNumber": row.get("support_phone"),
        "defaultCarrier": row.get("default_carrier"),
        "attributes": _attributes(row),
    }
    if existing is None:
        inp = {
            "ref": row["ref"],
            **{k: v for k, v in common.items() if v is not None},
            "retailer": {"id": retailer_id},
            "primaryAddress": {
                "ref": row["ref"],
                "latitude": coords.get("latitude", 0.0),
                "longitude": coords.get("longitude", 0.0),
                **address,
            },
            "openingSchedule": _schedule(row),
        }
        inp.setdefault("type", "STORE")
        inp.setdefault("name", row["ref"])
        return "createLocation", inp
    upd: dict[str, Any] = {"id": existing["id"], "status": row.get("status"), **common}
    if (existing.get("primaryAddress") or {}).get("id"):
        upd["primaryAddress"] = {"id": existing["primaryAddress"]["id"], **address, **coords}
    if (existing.get("openingSchedule") or {}).get("id"):
        upd["openingSchedule"] = {"id": existing["openingSchedule"]["id"], **_schedule(row)}
    return "updateLocation", {k: v for k, v in upd.items() if v is not None}
