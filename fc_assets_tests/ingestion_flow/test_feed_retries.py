"""Failures of a feed's run end to end (real Dagster instance, sandbox over HTTP, moto S3 inbox and lake):
transient errors retried with backoff in the same run, a file failing for good released to `error/` with its
reason while the next file of the feed goes on with a consistent delta base, a file left in flight by a dead
run finished by the next file's run, and a live holder's lease making the next file wait, then reclaimed."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from fc_assets.ingestion.deliver.ledger import Ledger
from fc_assets.ingestion.deliver.senders import CRASH_ENV
from fc_assets_tests.ingestion_flow.flow import (
    Flow,
    failure_metadata,
    metadata,
    on_hand,
)
from fc_assets_tests.ingestion_flow.helpers import inventory_csv


@pytest.fixture
def make_flow(make_flow):
    """The inventory feed with two quick in-run retries unless a test says otherwise."""
    return functools.partial(make_flow, None, FC_FEED_MAX_RETRIES=2)


ROWS = [(f"RT{i:03d}", "LOC1", i) for i in range(20)]
SKUS = [s for s, _, _ in ROWS]


def keys(flow: Flow, prefix: str) -> list[str]:
    got = flow.s3.list_objects_v2(Bucket=flow.bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in got)


def retried(result: dg.ExecuteInProcessResult) -> int:
    return sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")


def run(flow: Flow, name: str, rows, **config) -> dg.ExecuteInProcessResult:
    flow.put_s3(name, inventory_csv(rows))
    (req,) = flow.tick("s3")
    return flow.execute(req, **config)


def test_transient_fluent_errors_are_retried_with_backoff(make_flow):
    flow = make_flow()
    # six 503s on the job's GET: the client's three tries fail twice, two attempts of the run fail and the
    # third goes through (the job POST before is not hit: a job creation without an answer is simply done
    # again in place, test below)
    flow.sandbox.admin.set_faults(server_errors={"count": 6, "status": 503}, paths=["/api/v4.1/job/"])
    result = run(flow, "stock.csv", ROWS)
    assert result.success and retried(result) == 2
    assert metadata(result)["sent"] == 20 and len(flow.received.entities()) == 20
    assert on_hand(flow.resources["fluent"], SKUS) == {(s, loc): q for s, loc, q in ROWS}
    assert keys(flow, "inventory/processed/")


def test_permanent_failure_goes_to_error_and_the_next_file_goes_on(make_flow):
    flow = make_flow(FC_FEED_MAX_RETRIES=1)
    assert run(flow, "base.csv", ROWS).success
    flow.sandbox.admin.set_faults(stuck_batches=True)
    bumped = [(s, loc, q + 100) for s, loc, q in ROWS]
    failed = run(flow, "a.csv", bumped, batch_timeout_s=0.5)
    fm = failure_metadata(failed)
    assert not failed.success and retried(failed) == 1  # two attempts, the second polls the same batch
    assert fm["outcome"] == "error" and "failed 2 times" in fm["error"] and "/error/" in fm["archived_to"]
    assert keys(flow, "inventory/a.csv") == [] and keys(flow, "inventory/error/")
    assert len(flow.received.batches()) == 2  # base + a's one batch: never re-sent
    ledger = Ledger(flow.lake, "inventory")
    (entry,) = [e for e in ledger.entries() if e.key == "inventory/a.csv"]
    assert entry.outcome == "error" and entry.attempts == 2 and ledger.sends(entry.file_id).records
    assert ledger.state().inflight is None

    # a later file with the base values: Fluent may hold a's values, so every key a touched is sent again
    flow.sandbox.admin.clear_faults()
    later = run(flow, "b.csv", ROWS)
    assert later.success and metadata(later)["sent"] == 20
    assert on_hand(flow.resources["fluent"], SKUS) == {(s, loc): q for s, loc, q in ROWS}


def test_next_file_finishes_the_file_a_dead_run_left_in_flight(make_flow, monkeypatch):
    flow = make_flow()
    monkeypatch.setenv(CRASH_ENV, "after_send")  # the worker dies after Fluent took the batch
    dead = run(flow, "a.csv", ROWS)
    assert not dead.success and Ledger(flow.lake, "inventory").state().inflight["run_id"] == dead.run_id
    monkeypatch.delenv(CRASH_ENV)
    changed = [(s, loc, q + 1 if i < 3 else q) for i, (s, loc, q) in enumerate(ROWS)]
    later = run(flow, "b.csv", changed)
    assert later.success and metadata(later)["sent"] == 3  # its delta is against a's committed rows
    assert len(flow.received.entities()) == 23  # a's rows once (polled, not re-sent) + b's 3
    assert len(keys(flow, "inventory/processed/")) == 2 and keys(flow, "inventory/a.csv") == []
    assert on_hand(flow.resources["fluent"], SKUS) == {(s, loc): q for s, loc, q in changed}
    assert Ledger(flow.lake, "inventory").state().inflight is None


def test_live_holder_makes_the_next_file_wait_until_its_lease_expires(make_flow, monkeypatch):
    flow = make_flow(FC_FEED_LEASE_S=4)
    monkeypatch.setenv(CRASH_ENV, "after_send")
    assert not run(flow, "a.csv", ROWS).success
    monkeypatch.delenv(CRASH_ENV)
    flow.put_s3("b.csv", inventory_csv(ROWS))
    (req,) = flow.tick("s3")
    # the holder looks alive to Dagster (a worker that died without anyone noticing: still STARTED)
    ledger = Ledger(flow.lake, "inventory")
    ghost = dg.DagsterRun(
        job_name="inventory_feed_job", run_id=str(uuid.uuid4()), status=dg.DagsterRunStatus.STARTED
    )
    flow.instance.add_run(ghost)
    lease_until = (datetime.now(UTC) + timedelta(seconds=25)).isoformat()  # renewed just now
    ledger.update_state(
        inflight={**ledger.state().inflight, "run_id": ghost.run_id, "lease_until": lease_until}
    )
    later = flow.execute(req)
    assert later.success and retried(later) >= 2  # waited (retrying) while the lease held
    logs = [e.message for e in flow.instance.all_logs(later.run_id)]
    assert any("waiting for it to finish" in m for m in logs)
    assert any(f"left in flight by run {ghost.run_id}" in m for m in logs)
    assert len(flow.received.entities()) == 20 and len(keys(flow, "inventory/processed/")) == 2


def test_release_makes_a_file_prepared_earlier_compute_its_delta_again(make_flow, monkeypatch):
    """b.csv's delta was computed before a.csv was sent and released: the snapshot lost a's keys, so b's
    delta is stale and must be computed again (else b's unchanged-looking rows are never sent and Fluent
    keeps a's values)."""
    import time

    from fc_assets.ingestion.deliver.plans import plan_for
    from fc_assets.ingestion.deliver.sources import SourceStore
    from fc_assets.ingestion.deliver.state_ops import release

    flow = make_flow()
    assert run(flow, "base.csv", ROWS).success
    bumped = [(s, loc, q + 100) for s, loc, q in ROWS]
    flow.put_s3("a.csv", inventory_csv(bumped))
    flow.put_s3("b.csv", inventory_csv(ROWS))
    reqs = {r.tags["fc/key"].rsplit("/", 1)[-1]: r for r in flow.tick("s3")}
    monkeypatch.setenv(CRASH_ENV, "after_prepare")  # both workers die before sending (e.g. a deploy)
    assert not flow.execute(reqs["a.csv"]).success
    assert not flow.execute(reqs["b.csv"]).success
    monkeypatch.setenv(CRASH_ENV, "after_send")  # a's rerun: Fluent takes a's batch, the worker dies
    assert not flow.execute(reqs["a.csv"]).success
    monkeypatch.delenv(CRASH_ENV)
    fluent, deadline = flow.resources["fluent"], time.monotonic() + 120
    while on_hand(fluent, SKUS) != {(s, loc): q for s, loc, q in bumped} and time.monotonic() < deadline:
        time.sleep(0.5)
    assert on_hand(fluent, SKUS) == {(s, loc): q for s, loc, q in bumped}  # Fluent holds a's values

    release(flow.lake, plan_for(flow.feed), SourceStore(s3_client=flow.s3), "ops", "partner resends it")
    later = flow.execute(reqs["b.csv"])
    assert later.success and metadata(later)["sent"] == 20
    assert on_hand(fluent, SKUS) == {(s, loc): q for s, loc, q in ROWS}


def test_reprocessed_file_is_sent_again_not_skipped_by_its_old_send_log(make_flow):
    """`state reprocess` after `state reset --to-empty`: the same file version runs again and every row goes
    to Fluent again (the first run's send log must not make the sender skip its chunks)."""
    from fc_assets.ingestion.deliver.plans import plan_for
    from fc_assets.ingestion.deliver.sources import SourceStore
    from fc_assets.ingestion.deliver.state_ops import reprocess, reset

    flow = make_flow()
    first = run(flow, "base.csv", ROWS)
    assert first.success and metadata(first)["sent"] == 20 and len(flow.received.entities()) == 20
    reset(flow.lake, "inventory", "ops", to_empty=True)
    reprocess(flow.lake, plan_for(flow.feed), SourceStore(s3_client=flow.s3), "inventory/base.csv", "ops")
    flow.cursors.pop("s3")  # a fresh cursor: the sensor's next full scan
    (req,) = flow.tick("s3")
    assert req.run_key.endswith("#1")
    again = flow.execute(req)
    assert again.success and metadata(again)["sent"] == 20
    assert len(flow.received.entities()) == 40  # Fluent got every row a second time


def test_a_file_failing_before_any_request_does_not_claim_fluent_received_one(make_flow):
    """The token request fails on every attempt: nothing of the file ever reached Fluent, and the error the
    file is released with says so (it used to count the send log's bookkeeping records as requests
    Fluent received: "Fluent received 1 recorded request(s) of this file")."""
    flow = make_flow(FC_FEED_MAX_RETRIES=0)
    flow.sandbox.admin.set_faults(server_errors={"count": 99, "status": 503}, paths=["/oauth/token"])
    failed = run(flow, "a.csv", ROWS)
    fm = failure_metadata(failed)
    assert not failed.success and fm["outcome"] == "error"
    assert flow.received.batches() == [] and flow.sandbox.admin.received()["jobs"] == []
    assert "Fluent answered 0 request(s) of this file" in fm["error"], fm["error"]
    assert "received 1" not in fm["error"]


def test_a_job_creation_without_an_answer_creates_another_job_in_the_same_attempt(make_flow):
    """Fluent created the job but its answer was lost: an orphan job holds nothing (it closes at midnight),
    so the sender creates another one at once instead of failing the file's attempt (with no attempt left
    the file used to go to error/)."""
    flow = make_flow(FC_FEED_MAX_RETRIES=0)
    flow.sandbox.admin.set_faults(lose_responses=1, paths=["/api/v4.1/job"])  # the first: POST /job
    result = run(flow, "a.csv", ROWS)
    assert result.success, failure_metadata(result).get("error")
    assert retried(result) == 0 and metadata(result)["sent"] == 20
    jobs = [j["id"] for j in flow.sandbox.admin.received()["jobs"]]
    assert len(jobs) == 2  # the orphan and the one used
    assert [b["jobId"] for b in flow.received.batches()] == [jobs[1]]
    assert on_hand(flow.resources["fluent"], SKUS) == {(s, loc): q for s, loc, q in ROWS}
