"""Files the per-tick lookback cannot see, against the real SFTP server, moto's S3 lake and a real Dagster
instance: a late copy that kept an old mtime (found by the periodic full comparison with the ledger), the
lookback as a setting, and an SFTP rewrite with the same size in the same second (told apart by content,
processed end to end against the sandbox; an identical re-upload is reported, not silently skipped)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import boto3
import dagster as dg
import pytest

from fc_assets.ingestion import sensors
from fc_assets.ingestion.deliver.files import FileLocation, FileRef
from fc_assets.ingestion.deliver.ledger import FeedState, Ledger, LedgerEntry
from fc_assets.ingestion.sensors import build_file_sensor
from fc_assets.resources import storage
from fc_assets.resources.s3 import S3Resource
from fc_assets.resources.storage import Lake
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


def test_s3_full_scan_lists_inbox_and_ledger_at_once(
    s3_server, s3_fault_proxy, dagster_instance, settings_env, monkeypatch
):
    """A full-scan tick lists the inbox and the feed's ledger in the lake at the same time (issue 16: on real
    S3 each LIST page costs a round trip; one after the other, 100 + 100 pages took 200 round trips). Through
    a proxy that holds each LIST page `DELAY` s, the tick's requests and cursor are those of the same tick
    without delay: every file with no ledger entry is requested once, none with an entry is."""
    settings_env(FC_SENSOR_FULL_SCAN_MINUTES=30, FC_MAX_FILES_PER_TICK=5000, FC_SENSOR_LOOKBACK_S=10)
    monkeypatch.setattr(sensors, "SETTLED_S", 0.0)  # moto stamps uploads "now": as if they had settled
    # this 3-page ledger is split as a 25-page one would be (test_ledger_split_only_when_...: the threshold)
    monkeypatch.setattr(storage, "SPLIT_FROM_PAGES", 0)
    direct = boto3.client("s3", endpoint_url=s3_server.endpoint_url, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")  # fmt: skip
    n = time.time_ns()
    inbox, lake_bucket = f"scan-inbox-{n}", f"scan-lake-{n}"
    direct.create_bucket(Bucket=inbox)
    s3_server.lake(lake_bucket)
    location = FileLocation("s3", "s3", f"{inbox}/inventory/", glob="*.csv")
    files = {f"inventory/f{i:05d}.csv": f"{i}\n".encode() for i in range(12)}
    other = {f"inventory/x{i:05d}.txt": b"x" for i in range(1500)}  # not the feed's: listed, not requested
    rng = random.Random(n)
    past = [f"{rng.getrandbits(64):016x}" for _ in range(2600)]  # files processed and archived earlier
    with ThreadPoolExecutor(8) as pool:  # 2 inbox LIST pages, 3 ledger ones
        items = [*files.items(), *other.items()]
        list(pool.map(lambda kv: direct.put_object(Bucket=inbox, Key=kv[0], Body=kv[1]), items))
        body = json.dumps({"file_id": "x"}).encode()

        def put(file_id: str) -> None:
            direct.put_object(Bucket=lake_bucket, Key=f"lake/state/test/ledger/{file_id}.json", Body=body)

        list(pool.map(put, past))
    # three inbox files already processed and archived, uploaded again unchanged: reported, not requested
    ledger = Ledger(s3_server.lake(lake_bucket), "test")
    ledger.save_state(FeedState(committed=len(past)))
    again = sorted(files)[::4]
    for key in again:
        ref = FileRef("test", "s3", key, hashlib.md5(files[key]).hexdigest(), len(files[key]), time.time())
        ledger.save(
            replace(LedgerEntry.new(ref), stage="archived", outcome="processed", counts={"archive": "moved"})
        )

    sensor = build_file_sensor(
        feed="test", asset_name="feed_asset", location=location, job=JOB, partitions_def=PARTS
    )
    proxied = dict(endpoint_url=s3_fault_proxy.endpoint_url, aws_access_key_id="testing",
                   aws_secret_access_key="testing", region_name="us-east-1")  # fmt: skip
    lake = Lake(f"s3://{lake_bucket}/lake", s3_fault_proxy.endpoint_url, "testing", "testing")
    start = json.dumps({"v": 1, "mark": time.time() + 3600})  # only the full scan can request these files

    def tick() -> tuple[list[dg.RunRequest], dict, float]:
        t = Ticker(sensor, dagster_instance, {"s3": S3Resource(**proxied)}, lake=lake)
        t.cursor = start
        began = time.monotonic()
        requests = t.tick()
        cursor = json.loads(t.cursor)
        cursor.pop("full_scan_at")
        return requests, cursor, time.monotonic() - began

    plain, plain_cursor, plain_s = tick()
    DELAY = 1.5
    try:
        s3_fault_proxy.delay(DELAY, only="list-type=")
        slow, slow_cursor, slow_s = tick()
        in_flight, buckets_in_flight = s3_fault_proxy.peaks()
    finally:
        s3_fault_proxy.clear()
    keys = [r.tags["fc/key"] for r in slow]
    assert len(keys) == len(set(keys)) and set(keys) == set(files) - set(again)  # none missed, none twice
    assert [r.run_key for r in slow] == [r.run_key for r in plain] and slow_cursor == plain_cursor
    assert buckets_in_flight == 2, (in_flight, buckets_in_flight)  # the inbox and the lake, listed at once
    # one after the other: 2 inbox + 3 ledger pages, 5 x DELAY more than without delay (on the loaded test
    # machine: 6.9 s); at once: 2 x DELAY (a page of the ledger, then its other key ranges at once, while the
    # inbox's 2 pages are listed; measured: 2.1 s)
    assert slow_s - plain_s < 3.5 * DELAY, (slow_s, plain_s)


def test_ledger_listed_in_key_ranges_misses_no_entry(lake):
    """The ledger's key ranges (split at `ledger/1` ... `ledger/f`) cover every key: hex file ids, the bounds
    themselves, names starting with other characters, nested keys; same answer as one listing."""
    names = ["0.json", "0", "1", "1.json", "10.json", "9~.json", ":x.json", "A.json", "G.json", "_x.json",
             "a.json", "f", "f.json", "ff.json", "f~.json", "g.json", "zz.json", "~.json", "ü.json", "!.json",
             "-x.json", " x.json", "sub/0a.json", "sub/z.json", *(f"{i:016x}.json" for i in range(0, 2**64, 2**60))]  # fmt: skip
    for name in names:
        lake.write_bytes(b"{}", "state", "feed", "ledger", name)
    lake.s3_client().put_object(Bucket=lake.bucket, Key="lake/state/feed/ledger/e/", Body=b"")  # a "folder"
    whole = lake.list_files("state", "feed", "ledger")
    assert len(whole) == len(names)
    for page in (1, 3, 7, 1000):  # a first page alone, then the rest split
        assert lake.list_files_parallel("state", "feed", "ledger", page=page) == whole
    ids = Ledger(lake, "feed").file_ids()
    assert {"0", "1", "10", "9~", ":x", "A", "G", "_x", "a", "f", "ff", "f~", "g", "zz", "~", "ü"} < ids


def test_ledger_split_only_when_its_first_page_says_it_is_long(lake):
    """A hex-named ledger whose first page covers much of the key space is listed page after page (a split's
    ranges each read a page past their end: 15 more requests, which moto pays a whole-bucket scan for); one
    whose first page covers a small share is split. Both give the whole listing."""
    from fc_assets.resources.storage import SPLIT_FROM_PAGES, estimated_pages

    assert 64 / 16 < SPLIT_FROM_PAGES < 64 / 2  # the two cases below lie on either side of the threshold

    assert (
        estimated_pages("7fff.json") == 2
        and estimated_pages("0fff") == 16
        and estimated_pages("zz") == float("inf")
    )
    names = [f"{i:016x}.json" for i in range(0, 2**64, 2**58)]  # 64 ids spread over the key space
    for name in names:
        lake.write_bytes(b"{}", "state", "feed", "ledger", name)
    whole = lake.list_files("state", "feed", "ledger")
    client, calls = lake.s3_client(), []

    def count(**_):
        calls.append(1)

    client.meta.events.register("before-call.s3.ListObjectsV2", count)
    try:
        for page, pages, split in ((16, 4, False), (2, 32, True)):
            calls.clear()
            assert lake.list_files_parallel("state", "feed", "ledger", page=page) == whole
            # page after page: pages + the empty last; split: more requests than pages (each range's last
            # page reads past its end)
            assert (len(calls) > pages + 1) == split, (page, len(calls))
    finally:
        client.meta.events.unregister("before-call.s3.ListObjectsV2", count)


def test_s3_full_scan_inbox_error_is_not_held_back_by_a_slow_ledger(
    s3_server, s3_fault_proxy, dagster_instance, settings_env
):
    """A full-scan tick whose inbox listing fails raises that error at once, as when the ledger was listed
    after the inbox: it does not wait for the ledger listing running beside it (a slow or hanging lake would
    hold the inbox's error back, past the daemon's sensor timeout, which then reports only a timeout)."""
    settings_env(FC_SENSOR_FULL_SCAN_MINUTES=30)
    lake_bucket = f"slow-lake-{time.time_ns()}"
    s3_server.lake(lake_bucket)
    lake = Lake(f"s3://{lake_bucket}/lake", s3_fault_proxy.endpoint_url, "testing", "testing")
    missing = f"no-such-inbox-{time.time_ns()}"
    location = FileLocation("s3", "s3", f"{missing}/inventory/", glob="*.csv")
    sensor = build_file_sensor(
        feed="test", asset_name="feed_asset", location=location, job=JOB, partitions_def=PARTS
    )
    inbox = S3Resource(endpoint_url=s3_server.endpoint_url, aws_access_key_id="testing",
                       aws_secret_access_key="testing", region_name="us-east-1")  # fmt: skip
    DELAY = 6.0
    try:
        s3_fault_proxy.delay(DELAY, only=lake_bucket)  # every request of the lake, its LIST pages included
        began = time.monotonic()
        with pytest.raises(Exception, match="NoSuchBucket") as failed:
            Ticker(sensor, dagster_instance, {"s3": inbox}, lake=lake).tick()
        took = time.monotonic() - began
    finally:
        s3_fault_proxy.clear()
    assert missing in str(failed.value) or "does not exist" in str(failed.value), failed.value
    assert took < DELAY / 2, took
