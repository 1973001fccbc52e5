"""End to end on a real Dagster instance: files on moto's S3 and the SFTP server → sensor → partition → run of
the feed job (real validation) → Fluent → processed/; then the same content again, then a 1 % change."""

from __future__ import annotations

import pytest

from fc_assets.ingestion.feeds import inventory_feed
from fc_assets.ingestion.senders import CRASH_ENV
from fc_assets_tests.ingestion_flow.fake_batch_api import FAKES, FakeBatchApi, FakeFluentResource
from fc_assets_tests.ingestion_flow.flow import Flow, failure_metadata, metadata
from fc_assets_tests.ingestion_flow.helpers import inventory_csv


@pytest.fixture
def fake_fluent():
    fake = FakeBatchApi()
    FAKES[str(id(fake))] = fake
    yield fake, FakeFluentResource(base_url="http://fake", client_id=str(id(fake)), client_secret="x")
    FAKES.pop(str(id(fake)), None)


@pytest.fixture
def flow(dagster_instance, lake, s3_server, sftp_server, fake_fluent, monkeypatch):
    monkeypatch.delenv(CRASH_ENV, raising=False)
    fake, resource = fake_fluent
    f = Flow(
        inventory_feed(),
        instance=dagster_instance,
        lake=lake,
        s3_endpoint=s3_server.endpoint_url,
        sftp_server=sftp_server,
        fluent=resource,
    )
    f.fake = fake
    return f


ROWS = [(f"SKU{i:04d}", f"LOC{i % 5}", i % 50) for i in range(500)]


def test_s3_and_sftp_files_end_to_end(flow):
    flow.put_s3("stock-1.csv", inventory_csv(ROWS))
    (req,) = flow.tick("s3")
    result = flow.execute(req)
    assert result.success
    md = metadata(result)
    assert (md["rows"], md["accepted"], md["rejected"], md["changed"], md["sent"], md["batches"]) == (
        500,
        500,
        0,
        500,
        500,
        1,
    )
    assert md["fluent_job_ids"] and md["archived_to"].startswith(f"{flow.feed.name}/processed/")
    assert [e.passed for e in result.get_asset_check_evaluations()] == [True]
    assert flow.fake.qty() == {(s, loc): q for s, loc, q in ROWS}
    assert flow.tick("s3") == []

    # the same content again, now over SFTP: a run, nothing sent
    flow.put_sftp("stock-2.csv", inventory_csv(ROWS))
    (r2,) = flow.drain("sftp")
    assert r2.success and metadata(r2)["sent"] == 0 and len(flow.fake.received) == 500
    assert not (flow.sftp_root / flow.sftp_dir / "stock-2.csv").exists()

    # 1 % of rows change: exactly those are sent
    changed = [(s, loc, q + 7 if i % 100 == 3 else q) for i, (s, loc, q) in enumerate(ROWS)]
    flow.put_s3("stock-3.csv", inventory_csv(changed))
    (req3,) = flow.tick("s3")
    r3 = flow.execute(req3)
    assert metadata(r3)["sent"] == 5
    assert sorted(e["skuRef"] for e in flow.fake.received[500:]) == [
        f"SKU{i:04d}" for i in range(3, 500, 100)
    ]
    assert flow.fake.qty() == {(s, loc): q for s, loc, q in changed}


@pytest.mark.parametrize("stage", ["after_send", "after_commit", "during_archive"])
def test_crashed_run_reexecuted_sends_nothing_twice(flow, stage, monkeypatch):
    flow.put_s3("stock.csv", inventory_csv(ROWS))
    (req,) = flow.tick("s3")
    monkeypatch.setenv(CRASH_ENV, stage)
    first = flow.execute(req)
    assert not first.success and "injected crash" in failure_metadata(first)["error"]
    monkeypatch.delenv(CRASH_ENV)
    again = flow.execute(req)  # what re-executing the failed run does
    assert again.success and metadata(again)["resumed_from_stage"] != "new"
    assert len(flow.fake.received) == 500 and flow.fake.qty() == {(s, loc): q for s, loc, q in ROWS}
    assert flow.s3.list_objects_v2(Bucket=flow.bucket, Prefix="inventory/stock")["KeyCount"] == 0


def test_stuck_batch_fails_with_its_ids_then_resumes(flow):
    flow.fake.stuck = True
    flow.put_s3("stock.csv", inventory_csv(ROWS[:20]))
    (req,) = flow.tick("s3")
    first = flow.execute(req, batch_timeout_s=0.5)
    fm = failure_metadata(first)
    assert not first.success and fm["batch_status"] == "RUNNING" and fm["fluent_batch_id"]
    flow.fake.stuck = False
    again = flow.execute(req)
    assert again.success and metadata(again)["sent"] == 20 and len(flow.fake.received) == 20
    assert metadata(again)["fluent_batch_ids"] == fm["fluent_batch_id"]


def test_too_many_rejects_fails_the_check_and_moves_file_to_error(flow):
    body = inventory_csv(ROWS[:10]) + b"BAD1,LOC1,12abc,AVAILABLE\nBAD2,LOC1,-4,AVAILABLE\n"
    flow.put_s3("bad.csv", body)
    (req,) = flow.tick("s3")
    result = flow.execute(req)
    checks = result.get_asset_check_evaluations()
    assert [c.passed for c in checks] == [False]
    md = metadata(result)
    assert md["rejected"] == 2 and md["sent"] == 0 and md["outcome"] == "error" and flow.fake.received == []
    keys = [o["Key"] for o in flow.s3.list_objects_v2(Bucket=flow.bucket)["Contents"]]
    assert any("/error/" in k and k.endswith(".rejects.csv") for k in keys)
    assert md["rejects_uri"].endswith(".csv") and flow.lake.exists(
        md["rejects_uri"].split(flow.lake.uri + "/")[1]
    )


def test_two_runs_of_one_feed_are_serialized_by_the_pool(flow):
    """Two run workers (separate processes, one shared instance) start together on two files of the same
    feed; the pool `feed_inventory` (limit 1) makes the second wait, so their sends never interleave."""
    import multiprocessing

    from fc_assets.ingestion.ledger import Ledger
    from fc_assets_tests.ingestion_flow.concurrency_worker import run_partition

    flow.put_s3("a.csv", inventory_csv(ROWS[:50]))
    flow.put_s3("b.csv", inventory_csv([(s, loc, q + 1) for s, loc, q in ROWS[:50]]))
    reqs = flow.tick("s3")
    assert len(reqs) == 2
    lake = flow.lake
    common = {
        "inbox": f"{flow.bucket}/inventory/",
        "lake_uri": lake.uri,
        "endpoint": lake.endpoint_url,
        "instance_ref": flow.instance.get_ref(),
        "fake_fluent": "slow-4",
    }
    jobs = [
        {**common, "partition_key": r.partition_key, "run_config": r.run_config, "tags": r.tags} for r in reqs
    ]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        assert pool.map_async(run_partition, jobs).get(timeout=120) == [True, True]
    spans = []
    for e in Ledger(lake, "inventory").entries():
        at = {h["stage"]: h["at"] for h in e.history}
        spans.append((at["claimed"], at["archived"]))
    (a0, a1), (b0, b1) = sorted(spans)
    assert a1 < b0, f"runs of one feed overlapped: {spans}"
    waited = [
        ev
        for run in flow.instance.get_runs()
        for ev in flow.instance.all_logs(run.run_id)
        if ev.dagster_event and "blocked by limit for pool feed_inventory" in (ev.dagster_event.message or "")
    ]
    assert waited, "the second run should have waited for the feed_inventory slot"
