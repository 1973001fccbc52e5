"""`fc-assets state …` run as a real subprocess against a moto S3 lake and inbox: show, files, release of a
file left in flight, reprocess (the sensor asks again under a new run key), reset and the retention (prune),
each change confirmed and written to the feed's audit log."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fc_assets.ingestion.deliver.delta import snapshot_rel
from fc_assets.ingestion.deliver.ledger import Ledger
from fc_assets.ingestion.deliver.senders import CRASH_ENV, InjectedCrash
from fc_assets.ingestion.sensors import build_file_sensor
from fc_assets_tests.ingestion_flow.test_pipeline_resume import World
from fc_assets_tests.ingestion_flow.test_sensors import JOB, PARTS, Ticker

FC_ASSETS = str(Path(sys.executable).parent / "fc-assets")
ROWS = [(f"CL{i:03d}", "L1", i) for i in range(30)]


@pytest.fixture
def world(s3_server, lake, monkeypatch):
    monkeypatch.delenv(CRASH_ENV, raising=False)
    return World(s3_server, lake)


def cli(world: World, s3_server, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "FC_LAKE_URI": world.lake.uri,
        "FC_INBOX_S3_URI": f"s3://{world.bucket}",
        "AWS_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "USER": "alice",
        "LOGNAME": "alice",
    }
    env.pop(CRASH_ENV, None)
    return subprocess.run(
        [FC_ASSETS, "state", *args], env=env, input=input, capture_output=True, text=True, timeout=300
    )


def ok(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 0, p.stderr + p.stdout
    return p.stdout


@pytest.mark.timeout(900)  # a dozen CLI processes, each importing Dagster
def test_state_commands_against_the_lake(world, s3_server, monkeypatch, dagster_instance):
    base = world.run(world.drop("base.csv", ROWS))
    bumped = [(s, loc, q + 5) for s, loc, q in ROWS]
    a_ref = world.drop("a.csv", bumped)
    monkeypatch.setenv(CRASH_ENV, "after_send")  # its run dies after Fluent took the batch
    with pytest.raises(InjectedCrash):
        world.run(a_ref)
    monkeypatch.delenv(CRASH_ENV)
    ledger = Ledger(world.lake, "inventory")

    shown = json.loads(ok(cli(world, s3_server, "show", "inventory", "--json")))
    assert shown["committed"] == 1 and shown["snapshot_rows"] == 30 and shown["snapshot_bytes"] > 0
    assert shown["inflight"]["key"] == "inventory/a.csv" and shown["inflight"]["run_id"] == "r"
    assert "inventory/base.csv" in shown["last_file"]
    assert [r["key"] for r in json.loads(ok(cli(world, s3_server, "files", "inventory", "--json")))] == [
        "inventory/base.csv",
        "inventory/a.csv",
    ]
    unfinished = json.loads(
        ok(cli(world, s3_server, "files", "inventory", "--outcome", "unfinished", "--json"))
    )
    assert [r["stage"] for r in unfinished] == ["sending"]

    # release: asks first (answering no changes nothing), then frees the slot and ends a.csv in error/
    no = cli(world, s3_server, "release", "inventory", input="n\n")
    assert no.returncode != 0 and ledger.state().inflight is not None
    ok(cli(world, s3_server, "release", "inventory", "--yes", "--reason", "partner resends it"))
    assert ledger.state().inflight is None
    entry = ledger.get(a_ref.file_id)
    assert entry.outcome == "error" and "partner resends it" in entry.error and "alice@" in entry.error
    assert world.objects("inventory/a.csv") == [] and world.objects("inventory/error/")
    assert json.loads(ok(cli(world, s3_server, "show", "inventory", "--json")))["snapshot_rows"] == 0

    # reprocess: base.csv comes back to the inbox, is forgotten, and the sensor requests it again
    ok(cli(world, s3_server, "reprocess", "inventory", "inventory/base.csv", "--yes"))
    assert (
        world.objects("inventory/base.csv") == ["inventory/base.csv"]
        and ledger.get(base.entry.file_id) is None
    )
    sensor = build_file_sensor(
        feed="inventory", asset_name="feed_asset", location=world.location, job=JOB, partitions_def=PARTS
    )
    from fc_assets.resources.s3 import S3Resource

    s3 = S3Resource(
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    (again,) = Ticker(sensor, dagster_instance, {"s3": s3}, lake=world.lake).tick()
    assert again.tags["fc/key"] == "inventory/base.csv" and again.run_key.endswith("#1")

    # reset to empty, then back to the snapshot kept by the reset
    world.run(world.drop("c.csv", ROWS))
    assert json.loads(ok(cli(world, s3_server, "show", "inventory", "--json")))["snapshot_rows"] == 30
    out = ok(cli(world, s3_server, "reset", "inventory", "--to-empty", "--yes"))
    assert not world.lake.exists(snapshot_rel("inventory")) and ledger.state().watermark is None
    kept = out.rsplit("previous kept at ", 1)[1].strip()
    ok(cli(world, s3_server, "reset", "inventory", "--to", kept, "--yes"))
    assert json.loads(ok(cli(world, s3_server, "show", "inventory", "--json")))["snapshot_rows"] == 30

    audit = [json.loads(x) for x in ok(cli(world, s3_server, "audit", "inventory")).splitlines()]
    assert [x["action"] for x in audit] == ["release", "reprocess", "reset", "reset"]
    assert all(x["who"].startswith("alice@") and x["at"] for x in audit)


def test_retention_prunes_only_what_resume_and_audit_do_not_need(world, s3_server, monkeypatch):
    done = [world.run(world.drop(f"f{i}.csv", [(s, loc, q + i) for s, loc, q in ROWS])) for i in range(3)]
    ref = world.drop("open.csv", [(s, loc, q + 9) for s, loc, q in ROWS])
    monkeypatch.setenv(CRASH_ENV, "after_send")
    with pytest.raises(InjectedCrash):
        world.run(ref)
    monkeypatch.delenv(CRASH_ENV)
    ledger = Ledger(world.lake, "inventory")
    work = world.lake.list_files("state/inventory/work")
    assert any(done[0].entry.file_id in k for k in work) and any(ref.file_id in k for k in work)

    # within the retention: entries stay, work files of archived entries go, the unfinished file keeps its
    ok(cli(world, s3_server, "prune", "inventory", "--days", "30", "--yes"))
    assert len(ledger.file_ids()) == 4
    work = world.lake.list_files("state/inventory/work")
    assert work and all(ref.file_id in k for k in work)

    # past the retention: archived entries compacted into the month's summary, the unfinished one kept
    ok(cli(world, s3_server, "prune", "inventory", "--days", "0", "--yes"))
    assert ledger.file_ids() == {ref.file_id}
    (summary,) = world.lake.list_files("state/inventory/summary")
    lines = [json.loads(x) for x in world.lake.read_bytes(summary).splitlines()]
    assert sorted(x["file_id"] for x in lines) == sorted(d.entry.file_id for d in done)
    assert all(x["outcome"] == "processed" and x["counts"]["rows"] == 30 for x in lines)
    # the unfinished file still resumes: nothing sent twice
    r = world.run(ref)
    assert r.resumed_from == "sending" and len(world.fluent.received) == 30 * 1 + 30 * 3


def test_daily_retention_job_on_a_real_instance(world, dagster_instance, settings_env):
    import dagster as dg

    from fc_assets.ingestion.state_jobs import build_state_retention_definitions
    from fc_assets.resources.storage import LakeResource

    done = [world.run(world.drop(f"g{i}.csv", [(s, loc, q + i) for s, loc, q in ROWS])) for i in range(2)]
    settings_env(FC_STATE_RETENTION_DAYS=0)
    lake = LakeResource(
        uri=world.lake.uri,
        endpoint_url=world.lake.endpoint_url,
        access_key_id="testing",
        secret_access_key="testing",
    )
    defs = dg.Definitions.merge(
        build_state_retention_definitions(["inventory"]), dg.Definitions(resources={"lake": lake})
    )
    assert defs.resolve_schedule_def("prune_feed_state_daily").cron_schedule == "17 3 * * *"
    result = defs.resolve_job_def("prune_feed_state").execute_in_process(instance=dagster_instance)
    assert result.success and Ledger(world.lake, "inventory").file_ids() == set()
    (summary,) = world.lake.list_files("state/inventory/summary")
    ids = {json.loads(x)["file_id"] for x in world.lake.read_bytes(summary).splitlines()}
    assert ids == {d.entry.file_id for d in done}
    assert world.lake.list_files("state/inventory/work") == []
