"""A backlog larger than a tick takes (FC_MAX_FILES_PER_TICK) in an SFTP inbox, through the real SFTP sensor
on our SFTP server: every tick after the first starts a full tick's worth of files, and the cursor stays small
(Dagster copies it into every tick row, dagster-io/dagster#18402). bench/sensor_scale_bench.py found, at
10,000 files, a 530 KB cursor (every waiting file recorded as "pending") and every other tick starting
nothing (files over the limit were dropped from "pending" and had to be seen twice again)."""

from __future__ import annotations

import os
import time

import pytest

from fc_assets.ingestion.feeds import inventory_feed
from fc_assets_tests.ingestion_flow.flow import Flow, sandbox_fluent
from fc_assets_tests.ingestion_flow.helpers import inventory_csv

FILES, PER_TICK = 120, 20


@pytest.fixture
def flow(dagster_instance, lake, s3_server, sftp_server, sandbox, settings_env):
    settings_env(FC_MAX_FILES_PER_TICK=PER_TICK)
    return Flow(
        inventory_feed(),
        instance=dagster_instance,
        lake=lake,
        s3_endpoint=s3_server.endpoint_url,
        sftp_server=sftp_server,
        fluent=sandbox_fluent(sandbox),
    )


def test_an_sftp_backlog_drains_at_the_tick_limit_with_a_small_cursor(flow):
    old = time.time() - 2 * 86400  # a backlog: settled files, two days old
    body = inventory_csv([("SKU-1", "LOC-1", 1)])
    for i in range(FILES):
        flow.put_sftp(f"stock-{i:04d}.csv", body)
        os.utime(flow.sftp_root / flow.sftp_dir / f"stock-{i:04d}.csv", (old + i, old + i))

    started, sizes = [], []
    for _ in range(FILES // PER_TICK + 1):
        started.append(len(flow.tick("sftp")))
        sizes.append(len(flow.cursors["sftp"]))
    assert started[0] == 0  # SFTP files are taken once their size held still across two ticks
    assert started[1:] == [PER_TICK] * (FILES // PER_TICK), started
    assert max(sizes) < 4096, sizes
