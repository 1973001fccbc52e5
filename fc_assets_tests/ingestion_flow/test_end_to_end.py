"""End to end on a real Dagster instance against the Fluent sandbox: files on moto's S3 and the SFTP server →
sensor → partition → run of the feed job (real validation) → Batch API → processed/. Then the same content
again, a 1 % change, crashes and re-execution, a job closed at midnight, rejected entities, a stuck batch,
the reject threshold and two concurrent runs of one feed."""

from __future__ import annotations

import pytest

from fc_assets.ingestion.deliver.senders import CRASH_ENV
from fc_assets_tests.ingestion_flow.flow import (
    failure_metadata,
    metadata,
    on_hand,
)
from fc_assets_tests.ingestion_flow.helpers import inventory_csv


@pytest.fixture
def flow(make_flow):
    return make_flow()


ROWS = [(f"E2E{i:04d}", f"LOC{i % 5}", i % 50) for i in range(500)]
SKUS = sorted({s for s, _, _ in ROWS})


def expected(rows) -> dict[tuple[str, str], int]:
    return {(s, loc): q for s, loc, q in rows}


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
    assert on_hand(flow.resources["fluent"], SKUS) == expected(ROWS)  # what Fluent now holds
    assert flow.tick("s3") == []

    # the same content again, now over SFTP: a run, nothing sent
    flow.put_sftp("stock-2.csv", inventory_csv(ROWS))
    (r2,) = flow.drain("sftp")
    assert r2.success and metadata(r2)["sent"] == 0 and len(flow.received.entities()) == 500
    assert not (flow.sftp_root / flow.sftp_dir / "stock-2.csv").exists()

    # 1 % of rows change: exactly those are sent
    changed = [(s, loc, q + 7 if i % 100 == 3 else q) for i, (s, loc, q) in enumerate(ROWS)]
    flow.put_s3("stock-3.csv", inventory_csv(changed))
    (req3,) = flow.tick("s3")
    r3 = flow.execute(req3)
    assert metadata(r3)["sent"] == 5
    assert sorted(e["skuRef"] for e in flow.received.entities()[500:]) == [
        f"E2E{i:04d}" for i in range(3, 500, 100)
    ]
    assert on_hand(flow.resources["fluent"], SKUS) == expected(changed)


@pytest.mark.parametrize("stage", ["mid_send", "during_archive"])  # every stage: test_pipeline_resume.py
def test_crashed_run_reexecuted_sends_nothing_twice(flow, stage, monkeypatch):
    flow.put_s3("stock.csv", inventory_csv(ROWS))
    (req,) = flow.tick("s3")
    monkeypatch.setenv(CRASH_ENV, stage)
    first = flow.execute(req, batch_size=200)
    assert not first.success and "injected crash" in failure_metadata(first)["error"]
    monkeypatch.delenv(CRASH_ENV)
    again = flow.execute(req, batch_size=200)  # what re-executing the failed run does
    assert again.success and metadata(again)["resumed_from_stage"] != "new"
    entities = flow.received.entities()
    assert len(entities) == 500 and len({(e["skuRef"], e["locationRef"]) for e in entities}) == 500
    assert on_hand(flow.resources["fluent"], SKUS) == expected(ROWS)
    assert flow.s3.list_objects_v2(Bucket=flow.bucket, Prefix="inventory/stock")["KeyCount"] == 0


def test_job_closed_at_midnight_between_two_files(flow):
    admin = flow.sandbox.admin
    admin.set_clock("2030-03-01T12:00:00Z")  # hours before midnight: a slow first run still ends that day
    flow.put_s3("a.csv", inventory_csv(ROWS[:20]))
    (ra,) = flow.tick("s3")
    first = metadata(flow.execute(ra))
    admin.set_clock("2030-03-02T00:00:10Z")  # the job of the first file is CLOSED now
    flow.put_s3("b.csv", inventory_csv([(s, loc, q + 1) for s, loc, q in ROWS[:20]]))
    (rb,) = flow.tick("s3")
    second = metadata(flow.execute(rb))
    assert second["sent"] == 20 and second["fluent_job_ids"] != first["fluent_job_ids"]
    batches = flow.received.batches()
    assert [b["jobId"] for b in batches] == [first["fluent_job_ids"], second["fluent_job_ids"]]
    assert len(flow.received.entities()) == 40  # each batch sent once


def test_rejected_entities_reported_and_only_they_retried(flow):
    flow.sandbox.admin.set_faults(reject_entities={"skuRefs": ["E2E0005", "E2E0006"]})
    flow.put_s3("stock.csv", inventory_csv(ROWS[:50]))
    (req,) = flow.tick("s3")
    md = metadata(flow.execute(req))
    assert md["fluent_rejected"] == 2 and md["fluent_retried_rows"] == 2 and md["batches"] == 2
    assert "E2E0005" in md["fluent_rejections"] or "row 6" in md["fluent_rejections"]
    retry = flow.received.batches()[1]
    assert sorted(e["skuRef"] for e in retry["entities"]) == ["E2E0005", "E2E0006"]  # never the whole batch
    flow.sandbox.admin.clear_faults()
    flow.put_s3("stock-2.csv", inventory_csv(ROWS[:50]))  # unchanged file: only the two missing rows go
    (r2,) = flow.tick("s3")
    assert metadata(flow.execute(r2))["sent"] == 2


def test_stuck_batch_times_out_and_is_never_resent(flow):
    flow.sandbox.admin.set_faults(stuck_batches=True)
    flow.put_s3("stock.csv", inventory_csv(ROWS[:20]))
    (req,) = flow.tick("s3")
    first = flow.execute(req, batch_timeout_s=1.0)  # retried once: polls the same batch, sends nothing
    fm = failure_metadata(first)
    assert not first.success and fm["batch_status"] == "RUNNING" and fm["fluent_batch_id"]
    assert len(flow.received.batches()) == 1
    # failed for good: released to error/ with its reason (test_feed_retries.py)
    assert fm["outcome"] == "error" and fm["archived_to"].startswith("inventory/error/")
    assert flow.s3.list_objects_v2(Bucket=flow.bucket, Prefix="inventory/stock")["KeyCount"] == 0


def test_too_many_rejects_fails_the_check_and_moves_file_to_error(flow):
    body = inventory_csv(ROWS[:10]) + b"BAD1,LOC1,12abc,AVAILABLE\nBAD2,LOC1,-4,AVAILABLE\n"
    flow.put_s3("bad.csv", body)
    (req,) = flow.tick("s3")
    result = flow.execute(req)
    assert [c.passed for c in result.get_asset_check_evaluations()] == [False]
    md = metadata(result)
    assert md["rejected"] == 2 and md["sent"] == 0 and md["outcome"] == "error"
    assert flow.received.batches() == []
    keys = [o["Key"] for o in flow.s3.list_objects_v2(Bucket=flow.bucket)["Contents"]]
    assert any("/error/" in k and k.endswith(".rejects.csv") for k in keys)
    assert flow.lake.exists(md["rejects_uri"].removeprefix(flow.lake.uri + "/"))


def test_two_runs_of_one_feed_are_serialized_by_the_pool(flow, tmp_path):
    """Two run workers (separate processes, one shared instance) start together on two files of the same
    feed; the pool `feed_inventory` (limit 1) makes the second wait, so their batches never interleave."""
    from fc_assets_tests.ingestion_flow import child_run

    flow.put_s3("a.csv", inventory_csv([(f"A{i:03d}", "L1", i) for i in range(100)]))
    flow.put_s3("b.csv", inventory_csv([(f"B{i:03d}", "L1", i) for i in range(100)]))
    reqs = flow.tick("s3")
    assert len(reqs) == 2
    fluent = flow.resources["fluent"]
    common = {
        "inbox": f"{flow.bucket}/inventory/",
        "lake_uri": flow.lake.uri,
        "endpoint": flow.lake.endpoint_url,
        "instance_ref": flow.instance.get_ref(),
        "fluent": {
            "base_url": fluent.base_url,
            "client_id": fluent.client_id,
            "client_secret": fluent.client_secret,
        },
    }
    jobs = []
    for r in reqs:
        op = next(iter(r.run_config["ops"]))
        cfg = {"ops": {op: {"config": {**r.run_config["ops"][op]["config"], "batch_size": 20}}}}
        jobs.append({**common, "partition_key": r.partition_key, "run_config": cfg, "tags": r.tags})
    exchanges = [tmp_path / f"run-{i}.pickle" for i in range(len(jobs))]
    procs = [child_run.start(job, exchange) for job, exchange in zip(jobs, exchanges, strict=True)]
    assert [
        child_run.result(p, x, timeout=180)["success"] for p, x in zip(procs, exchanges, strict=True)
    ] == [
        True,
        True,
    ]
    order = [b["entities"][0]["skuRef"][0] for b in flow.received.batches()]
    assert len(order) == 10 and order in (["A"] * 5 + ["B"] * 5, ["B"] * 5 + ["A"] * 5), order
    waited = [
        ev
        for run in flow.instance.get_runs()
        for ev in flow.instance.all_logs(run.run_id)
        if ev.dagster_event and "blocked by limit for pool feed_inventory" in (ev.dagster_event.message or "")
    ]
    assert waited, "the second run should have waited for the feed_inventory slot"
