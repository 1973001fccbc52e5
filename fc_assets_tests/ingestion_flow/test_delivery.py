"""Delivery you can trust (issue 12), end to end on a real Dagster instance against the Fluent sandbox over
HTTP, with files on moto's S3: a daily job the sandbox no longer knows, product events and location
mutations whose POST failed or whose answer was lost, and the per-file job strategy."""

from __future__ import annotations

import pytest

from fc_assets.ingestion.feeds import inventory_feed
from fc_assets.ingestion.senders import CRASH_ENV
from fc_assets_tests.ingestion_flow.flow import (
    Flow,
    Received,
    failure_metadata,
    metadata,
    on_hand,
    sandbox_fluent,
)
from fc_assets_tests.ingestion_flow.helpers import inventory_csv


def make_flow(feed, dagster_instance, lake, s3_server, sftp_server, sandbox, monkeypatch) -> Flow:
    monkeypatch.delenv(CRASH_ENV, raising=False)
    f = Flow(
        feed,
        instance=dagster_instance,
        lake=lake,
        s3_endpoint=s3_server.endpoint_url,
        sftp_server=sftp_server,
        fluent=sandbox_fluent(sandbox),
    )
    f.sandbox = sandbox
    f.received = Received(sandbox.admin)
    return f


def run_file(flow: Flow, name: str, body: bytes, **config) -> tuple[bool, dict]:
    flow.put_s3(name, body)
    (req,) = flow.tick("s3")
    result = flow.execute(req, **config)
    return result.success, metadata(result) if result.success else failure_metadata(result)


ROWS = [(f"DLV{i:04d}", f"LOC{i % 5}", i % 50) for i in range(40)]
SKUS = sorted({s for s, _, _ in ROWS})


@pytest.fixture
def inventory_flow(dagster_instance, lake, s3_server, sftp_server, sandbox_clean, monkeypatch):
    return make_flow(
        inventory_feed(), dagster_instance, lake, s3_server, sftp_server, sandbox_clean, monkeypatch
    )


# ------------------------------------------------------------------------------ the daily job is gone


def test_daily_job_gone_after_sandbox_reset_opens_a_new_job(inventory_flow):
    flow = inventory_flow
    ok, first = run_file(flow, "a.csv", inventory_csv(ROWS))
    assert ok and first["sent"] == 40
    flow.sandbox.admin.reset()  # the sandbox restarts from its seed: it knows no job any more
    flow.received = Received(flow.sandbox.admin)
    changed = [(s, loc, q + 1) for s, loc, q in ROWS]
    ok, second = run_file(flow, "b.csv", inventory_csv(changed))
    assert ok, second.get("error")
    assert second["sent"] == 40 and second["batches"] == 1
    batches = flow.received.batches()
    assert len(batches) == 1 and len(flow.received.entities()) == 40  # the batch sent once
    assert [j["id"] for j in flow.sandbox.admin.received()["jobs"]] == [batches[0]["jobId"]]  # one new job
    assert on_hand(flow.resources["fluent"], SKUS) == {(s, loc): q for s, loc, q in changed}
    # and the next file of the day reuses that new job
    ok, third = run_file(flow, "c.csv", inventory_csv(ROWS))
    assert ok and third["fluent_job_ids"] == second["fluent_job_ids"]
    assert len(flow.sandbox.admin.received()["jobs"]) == 1
