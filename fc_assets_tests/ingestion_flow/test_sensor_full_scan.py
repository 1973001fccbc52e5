"""Files the per-tick lookback cannot see, against the real SFTP server, moto's S3 lake and a real Dagster
instance: a late copy that kept an old mtime (found by the periodic full comparison with the ledger), the
lookback as a setting, and an SFTP rewrite with the same size in the same second (told apart by content,
processed end to end against the sandbox; an identical re-upload is reported, not silently skipped)."""

from __future__ import annotations

import json
import os
import time

import pytest

from fc_assets.ingestion.deliver.files import FileLocation
from fc_assets.ingestion.sensors import build_file_sensor
from fc_assets_tests.ingestion_flow.flow import metadata, on_hand
from fc_assets_tests.ingestion_flow.helpers import inventory_csv
from fc_assets_tests.ingestion_flow.test_sensors import JOB, PARTS, Ticker, keys_of, sftp_resource


def sftp_ticker(sftp_server, instance, lake, rel) -> Ticker:
    location = FileLocation("sftp", "sftp", rel, glob="*.csv", stability="size_stable")
    sensor = build_file_sensor(
        feed="test", asset_name="feed_asset", location=location, job=JOB, partitions_def=PARTS
    )
    return Ticker(sensor, instance, {"sftp": sftp_resource(sftp_server)}, lake=lake)


def age_full_scan(t: Ticker, seconds: float) -> None:
    """As if `seconds` had passed since the last full scan (the cursor is the sensor's only memory)."""
    c = json.loads(t.cursor)
    c["full_scan_at"] = c.get("full_scan_at", time.time()) - seconds
    t.cursor = json.dumps(c)


def write(path, body: bytes, mtime: int) -> None:
    path.write_bytes(body)
    os.utime(path, (mtime, mtime))


def test_late_copy_with_an_old_mtime_is_found_by_the_full_scan(
    sftp_server, dagster_instance, lake, settings_env, tmp_path
):
    settings_env(FC_SENSOR_FULL_SCAN_MINUTES=30, FC_MAX_FILES_PER_TICK=50)
    rel = f"late{time.time_ns()}/inventory"
    local = sftp_server.root / rel
    local.mkdir(parents=True)
    t = sftp_ticker(sftp_server, dagster_instance, lake, rel)
    mark = int(time.time()) - 300
    write(local / "today.csv", b"1,2\n", mark)
    t.tick()
    assert keys_of(t.tick()) == [f"{rel}/today.csv"]
    # a partner's late copy that preserved its mtime, two hours behind the mark
    write(local / "yesterday.csv", b"3,4\n", mark - 7200)
    assert t.tick() == [] and t.tick() == []  # outside the lookback window: ticks alone do not see it
    age_full_scan(t, 31 * 60)
    t.tick()  # the full scan finds it; held once like any SFTP file (size must be stable)
    assert keys_of(t.tick()) == [f"{rel}/yesterday.csv"]
    age_full_scan(t, 31 * 60)
    assert t.tick() == [] and t.tick() == []  # requested once (its run key is known)


def test_lookback_window_is_a_setting(sftp_server, dagster_instance, lake, settings_env):
    settings_env(FC_SENSOR_LOOKBACK_S=10, FC_SENSOR_FULL_SCAN_MINUTES=30)
    rel = f"lookback{time.time_ns()}/inventory"
    local = sftp_server.root / rel
    local.mkdir(parents=True)
    t = sftp_ticker(sftp_server, dagster_instance, lake, rel)
    mark = int(time.time()) - 300
    write(local / "a.csv", b"1,2\n", mark)
    t.tick()
    assert keys_of(t.tick()) == [f"{rel}/a.csv"]
    write(local / "b.csv", b"1,2\n", mark - 100)  # inside the default hour, outside 10 s
    assert t.tick() == [] and t.tick() == []
    age_full_scan(t, 31 * 60)
    t.tick()
    assert keys_of(t.tick()) == [f"{rel}/b.csv"]


@pytest.fixture
def flow(make_flow):
    return make_flow(FC_SENSOR_FULL_SCAN_MINUTES=0)  # every tick compares the listing with the ledger


ROWS = [(f"RW{i:04d}", "LOC1", 10 + i % 50) for i in range(100)]


def test_sftp_same_size_rewrite_in_the_same_second_is_processed(flow):
    path = flow.sftp_root / flow.sftp_dir / "stock.csv"
    mtime = int(time.time()) - 120  # e.g. an upload tool that preserves the partner's mtime
    write(path, inventory_csv(ROWS), mtime)
    (r1,) = flow.drain("sftp")
    assert r1.success and metadata(r1)["sent"] == 100 and not path.exists()

    # same name, same size, same mtime second, different quantities (two digits → two digits)
    changed = [(s, loc, q + 1 if i < 5 else q) for i, (s, loc, q) in enumerate(ROWS)]
    assert len(inventory_csv(changed)) == len(inventory_csv(ROWS))
    write(path, inventory_csv(changed), mtime)
    (r2,) = flow.drain("sftp")
    md = metadata(r2)
    assert r2.success and md["sent"] == 5 and md["version"].startswith(f"{mtime}:{len(inventory_csv(ROWS))}:")
    assert on_hand(flow.resources["fluent"], [s for s, _, _ in ROWS[:5]]) == {
        (s, loc): q for s, loc, q in changed[:5]
    }
    assert not path.exists()

    # the identical content once more: not a new version; said in the tick message, not silently dropped
    write(path, inventory_csv(changed), mtime)
    assert flow.drain("sftp") == []
    assert "identical to a version already processed" in flow.skip and "stock.csv" in flow.skip
