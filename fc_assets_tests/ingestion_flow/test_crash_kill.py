"""Crash consistency (issue 14): the process running a file is killed with SIGKILL — at every stage
boundary of each sender and of the flow (crashpoints.POINTS) and at random moments — and the file is
re-executed. What the sandbox received proves no loss and no double count (upserts: every entity's final
state right, duplicates no more than reported), the lake holds no partial object, ledger, feed state and
send logs agree, and the file left the inbox once (crash_scenarios.py). Each kill is one child forked from
a warmed forkserver (crash_harness.py); the final re-execution runs here. The soak with 50+ random kills
is bench/crash_soak.py."""

from __future__ import annotations

import random

import pytest

from fc_assets.resources.storage import Lake
from fc_assets_tests.ingestion_flow.crash_harness import warm_up
from fc_assets_tests.ingestion_flow.crash_scenarios import (
    PIPELINE_CHAINS,
    SENDER_CHAINS,
    SENDERS,
    cycle_report,
    kill_then_rerun,
    uncovered_points,
)
from fc_assets_tests.ingestion_flow.flow import Flow
from fc_assets_tests.ingestion_flow.test_delivery import make_flow


@pytest.fixture(scope="module", autouse=True)
def _forkserver():
    warm_up()  # the children's imports, once, outside every timing


@pytest.fixture
def file_lake(tmp_path) -> Lake:
    """A lake on local disk for the boundary sweep (~40 kills): each ledger or send-log write costs ~5
    requests on an S3 lake (multipart upload, copy, delete). The random kills use the S3 lake."""
    return Lake(f"file://{tmp_path}/lake")


def crash_flow(feed: str, dagster_instance, lake, s3_server, sftp_server, sandbox, monkeypatch) -> Flow:
    return make_flow(
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
    """One file per sender, killed twice at random moments, on the S3 lake (the soak runs 50+)."""
    rng = random.Random(14)
    cycles = []
    for feed in ("inventory", "products", "locations"):
        flow = crash_flow(feed, dagster_instance, lake, s3_server, sftp_server, sandbox_clean, monkeypatch)
        delays = [rng.uniform(0.1, 2.0), rng.uniform(0.1, 2.0)]
        cycles.append(kill_then_rerun(flow, SENDERS[feed], 0, kill_after_s=delays))
    print("\n".join(c.line() for c in cycles))
    assert not cycle_report(cycles), cycle_report(cycles)
