"""Crash consistency (issue 14): the process running a file is killed with SIGKILL — at every stage
boundary of each sender and of the flow (crashpoints.POINTS) and at random moments — and the file is
re-executed. What the sandbox received proves no loss and no double count (upserts: every entity's final
state right, duplicates no more than reported), the lake holds no partial object, ledger, feed state and
send logs agree, and the file left the inbox once (crash_scenarios.py). Each kill is one child forked from
a warmed forkserver (crash_harness.py); the final re-execution runs here. The soak with 50+ random kills
is bench/crash_soak.py."""

from __future__ import annotations

import logging
import os
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pytest
import yaml
from dagster._daemon.monitoring import execute_concurrency_slots_iteration

from fc_assets.ingestion.deliver.files import FileRef
from fc_assets.ingestion.deliver.pipeline import process_file
from fc_assets.ingestion.deliver.plans import plan_for
from fc_assets.ingestion.feeds import inventory_feed
from fc_assets.resources.storage import Lake
from fc_assets_tests.ingestion_flow.crash_harness import (
    KILLED,
    child_run,
    ledger_problems,
    partial_objects,
    pipeline_env,
    run_in_child,
    warm_up,
)
from fc_assets_tests.ingestion_flow.crash_scenarios import (
    PIPELINE_CHAINS,
    SENDER_CHAINS,
    SENDERS,
    cycle_report,
    extraction_cycle,
    inventory_rows,
    kill_then_rerun,
    uncovered_points,
    verify_inventory,
)
from fc_assets_tests.ingestion_flow.flow import Flow, Received, metadata, on_hand, sandbox_flow
from fc_assets_tests.ingestion_flow.helpers import inventory_csv


@pytest.fixture(scope="module", autouse=True)
def _forkserver():
    warm_up()  # the children's imports, once, outside every timing


@pytest.fixture
def file_lake(tmp_path) -> Lake:
    """A lake on local disk for the boundary sweep (~40 kills): each ledger or send-log write costs ~5
    requests on an S3 lake (multipart upload, copy, delete). The random kills use the S3 lake."""
    return Lake(f"file://{tmp_path}/lake")


def crash_flow(feed: str, dagster_instance, lake, s3_server, sftp_server, sandbox, monkeypatch) -> Flow:
    return sandbox_flow(
        SENDERS[feed].feed(), dagster_instance, lake, s3_server, sftp_server, sandbox, monkeypatch
    )


def test_every_crash_point_is_in_a_chain():
    assert uncovered_points() == []


@pytest.mark.parametrize("feed", ["inventory", "products", "locations"])
def test_sigkill_at_every_stage_boundary_then_reexecution(
    feed, dagster_instance, file_lake, s3_server, sftp_server, sandbox_clean, monkeypatch
):
    """Every boundary of the feed's sender; the flow's own boundaries (the same code for every sender)
    with the inventory feed."""
    flow = crash_flow(feed, dagster_instance, file_lake, s3_server, sftp_server, sandbox_clean, monkeypatch)
    chains = SENDER_CHAINS[feed] + (PIPELINE_CHAINS if feed == "inventory" else [])
    cycles = [kill_then_rerun(flow, SENDERS[feed], k, points=c) for k, c in enumerate(chains)]
    print("\n".join(c.line() for c in cycles))
    assert all(all(c.killed) for c in cycles), [c.line() for c in cycles if not all(c.killed)]
    assert not cycle_report(cycles), cycle_report(cycles)


def test_sigkill_at_random_moments_then_reexecution(
    dagster_instance, lake, s3_server, sftp_server, sandbox_clean, monkeypatch
):
    """One random kill per sender and one of an extraction run, on the S3 lake (the soak runs 50+)."""
    rng = random.Random(14)
    cycles = []
    for feed in ("inventory", "products", "locations"):
        flow = crash_flow(feed, dagster_instance, lake, s3_server, sftp_server, sandbox_clean, monkeypatch)
        cycles.append(kill_then_rerun(flow, SENDERS[feed], 0, kill_after_s=[rng.uniform(0.3, 2.0)]))
    today = datetime.now(UTC)
    keys = [(today - timedelta(days=d)).strftime("%Y-%m-%d") for d in (4, 3, 2)]
    cycles.append(extraction_cycle(sandbox_clean, lake, dagster_instance, keys, rng.uniform(0.5, 2.5)))
    print("\n".join(c.line() for c in cycles))
    assert not cycle_report(cycles), cycle_report(cycles)


def test_killed_after_committing_state_then_a_later_file_then_reexecution_loses_nothing(
    dagster_instance, file_lake, s3_server, sftp_server, sandbox_clean, monkeypatch
):
    """A is killed after its commit freed the feed's slot but before its entry said `committed`; B (newer
    values for some rows) runs before A is re-executed; A's re-execution must not apply A's delta to the
    snapshot again (that would put A's older values back over B's), or C — A's values again — would
    look unchanged and never reach Fluent, which holds B's."""
    flow = crash_flow(
        "inventory", dagster_instance, file_lake, s3_server, sftp_server, sandbox_clean, monkeypatch
    )
    a = inventory_rows(0)
    b = [(s, loc, q + 5000 if i < 10 else q) for i, (s, loc, q) in enumerate(a)]
    ref_a = drop(flow, "a.csv", inventory_csv(a))
    assert run_in_child(child_run(flow, ref_a, batch_size=15, kill_at="pipeline.state_committed")) == KILLED
    env = pipeline_env(flow.resources, 15, "later")
    plan = plan_for(flow.feed)
    process_file(plan, drop(flow, "b.csv", inventory_csv(b)), env)  # the sensor's next file runs first
    process_file(plan, ref_a, env)  # A's re-execution
    c = process_file(plan, drop(flow, "c.csv", inventory_csv(a)), env)
    skus = sorted({s for s, _, _ in a})
    assert on_hand(flow.resources["fluent"], skus) == {(s, loc): q for s, loc, q in a}
    assert c.metadata["sent"] == 10
    assert not ledger_problems(flow.lake, "inventory")


def drop(flow: Flow, name: str, body: bytes) -> FileRef:
    flow.put_s3(name, body)
    (req,) = flow.tick("s3")
    return FileRef.from_tags(flow.feed.name, req.tags)


ROOT = Path(__file__).resolve().parents[2]


def production_run_monitoring() -> dict:
    """deploy/dagster.yaml's `run_monitoring`, with its slot-freeing delay (if any) scaled to 1 s."""
    monitoring = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())["run_monitoring"]
    if "free_slots_after_run_end_seconds" in monitoring:
        monitoring["free_slots_after_run_end_seconds"] = 1
    return monitoring


def dagster_child(instance: dg.DagsterInstance, req: dg.RunRequest, batch_size: int = 15) -> dict:
    """What a child needs to run `req` as a run of the feed's job on `instance`."""
    op = next(iter(req.run_config["ops"]))
    config = {**req.run_config["ops"][op]["config"], "batch_size": batch_size}
    return {
        "instance_ref": instance.get_ref(),
        "partition_key": req.partition_key,
        "run_config": {"ops": {op: {"config": config}}},
        "tags": {**req.tags, "dagster/run_key": req.run_key},
    }


def monitor_dead_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    """What production's run monitoring does about a run whose worker was killed: marks it failed, then
    (deploy/dagster.yaml) frees the pool slots it held. Returns the run."""
    (dead,) = [r for r in instance.get_runs() if r.status == dg.DagsterRunStatus.STARTED]
    instance.report_run_failed(dead, "run worker exited unexpectedly (SIGKILL)")
    time.sleep(2.5)  # past the (scaled) 1 s after the run ended, with a margin for a loaded machine
    list(execute_concurrency_slots_iteration(SimpleNamespace(instance=instance), logging.getLogger()))
    held = instance.event_log_storage.get_concurrency_info("feed_inventory").claimed_slots
    assert [s.run_id for s in held] == [], "the killed run still holds the feed's pool slot"
    return dead


def test_killed_feed_run_frees_its_pool_slot_and_the_full_scan_resumes_its_file(
    tmp_path, lake, s3_server, sftp_server, sandbox_clean, monkeypatch
):
    """A feed run (a real Dagster run on a SQLite instance) killed mid-send, with no run retry left (the
    demo instance has none; production's are used up): production's run monitoring marks it failed and must
    free its step's slot of the pool `feed_inventory` (limit 1) — else every later run of the feed waits
    forever (`monitor_dead_run`) — and, since its run key is taken and the cursor has seen the file, the
    sensor's full scan, which compares the inbox with the ledger, must request the unfinished file again
    (a new run key) once no run of it is alive, not skip it as "in progress" forever. The new run resumes:
    the batch Fluent took before the kill is adopted, nothing is sent twice."""
    monkeypatch.setenv("FC_SENSOR_FULL_SCAN_MINUTES", "0")
    with dg.instance_for_test(
        temp_dir=str(tmp_path), overrides={"run_monitoring": production_run_monitoring()}
    ) as instance:
        flow = sandbox_flow(
            inventory_feed(), instance, lake, s3_server, sftp_server, sandbox_clean, monkeypatch
        )
        path = flow.sftp_root / flow.sftp_dir / "stock.csv"
        path.write_bytes(inventory_csv(inventory_rows(0)))
        old = time.time() - 3600  # settled: the full scan looks at it
        os.utime(path, (old, old))
        (req,) = flow.tick("sftp") or flow.tick("sftp")  # size-stable: seen on two ticks
        ref = FileRef.from_tags("inventory", req.tags)
        received = Received(sandbox_clean.admin)
        child = child_run(flow, ref, kill_at="after_post", dagster=dagster_child(instance, req))
        assert run_in_child(child) == KILLED
        dead = monitor_dead_run(instance)
        (again,) = flow.tick("sftp")
        assert again.partition_key == req.partition_key and again.run_key == f"{req.run_key}#resume-1"
        result = flow.execute(again, batch_size=15)
        assert result.success and result.run_id != dead.run_id
        md = metadata(result)
        assert md["resumed_from_stage"] == "sending" and md["fluent_batches_adopted"] == 1
        assert verify_inventory(flow, received, md, 0) == []
        assert not path.exists() and ledger_problems(lake, "inventory", [ref.file_id]) == []
        assert partial_objects(lake) == []
        assert flow.tick("sftp") == []  # done: not requested again


@pytest.mark.parametrize("point", ["during_archive", "pipeline.archive_moved"])
def test_sigkill_during_the_sftp_archive_then_two_reexecutions(
    point, dagster_instance, file_lake, s3_server, sftp_server, sandbox_clean, monkeypatch
):
    """The kills above archive on S3 (copy, verify, delete); on SFTP the archive is a rename. Killed before
    or after it, the file is archived once and re-executed twice: nothing more reaches Fluent, no run is
    requested again."""
    flow = crash_flow(
        "inventory", dagster_instance, file_lake, s3_server, sftp_server, sandbox_clean, monkeypatch
    )
    t0 = time.time()
    flow.put_sftp("stock.csv", inventory_csv(inventory_rows(0)))
    (req,) = flow.tick("sftp") or flow.tick("sftp")  # size-stable: seen on two ticks
    ref = FileRef.from_tags("inventory", req.tags)
    received = Received(sandbox_clean.admin)
    assert run_in_child(child_run(flow, ref, batch_size=15, kill_at=point)) == KILLED
    env = pipeline_env(flow.resources, 15, "rerun")
    md = process_file(plan_for(flow.feed), ref, env).metadata
    assert verify_inventory(flow, received, md, 0) == []
    again = process_file(plan_for(flow.feed), ref, env).metadata
    assert again["resumed_from_stage"] == "archived" and len(received.entities()) == 40
    inbox = flow.sftp_root / flow.sftp_dir
    files = [p.relative_to(inbox).as_posix() for p in inbox.rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].startswith("processed/") and md["archived_to"].endswith(files[0])
    assert flow.tick("sftp") == [] and flow.tick("sftp") == []
    assert ledger_problems(file_lake, "inventory", [ref.file_id]) == []
    assert partial_objects(file_lake, since=t0) == []
