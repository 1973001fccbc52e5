"""Sensor ticks in sequence against the real servers (moto's S3 server, the asyncssh SFTP server) and a real
Dagster instance: new files, ties at the mark, deletions, re-uploads, 2,500 keys, growing files, limits."""

from __future__ import annotations

import itertools
import os
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import dagster as dg
import pytest

from fc_assets.ingestion.deliver.files import FileLocation
from fc_assets.ingestion.sensors import build_file_sensor
from fc_assets.resources import boto_clients
from fc_assets.resources.s3 import S3Resource
from fc_assets.resources.sftp import SFTPConfigError, SFTPResource
from fc_assets.resources.storage import Lake, LakeResource

PARTS = dg.DynamicPartitionsDefinition(name="test_feed_files")
_n = itertools.count()


@dg.asset(partitions_def=PARTS)
def feed_asset() -> None: ...


JOB = dg.define_asset_job("test_feed_job", selection=[feed_asset])


class Ticker:
    """Evaluates a sensor tick after tick the way the daemon does: cursor carried over, partitions added,
    run keys deduplicated (Dagster skips a run key it has seen, whatever that run's outcome)."""

    def __init__(self, sensor, instance, resources, lake: Lake | None = None):
        if lake is None:  # the sensors' full scan reads the ledger: an empty lake unless one is given
            lake = Lake("file:///nonexistent-fc-lake")
        resources = {"lake": lake_resource(lake), **resources}
        self.sensor, self.instance, self.resources = sensor, instance, resources
        self.cursor: str | None = None
        self.run_keys: set[str] = set()
        self.last: dg.SensorResult | None = None
        self.skip = ""

    def tick(self) -> list[dg.RunRequest]:
        ctx = dg.build_sensor_context(instance=self.instance, cursor=self.cursor, resources=self.resources)
        result = self.sensor(ctx)
        self.last = result
        self.skip = result.skip_reason.skip_message if result.skip_reason else ""
        self.cursor = result.cursor
        for req in result.dynamic_partitions_requests or []:
            if isinstance(req, dg.AddDynamicPartitionsRequest):
                self.instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        known = set(self.instance.get_dynamic_partitions(PARTS.name))
        assert all(r.partition_key in known for r in result.run_requests or [])
        new = [r for r in result.run_requests or [] if r.run_key not in self.run_keys]
        self.run_keys.update(r.run_key for r in new)
        return new


def lake_resource(lake: Lake) -> LakeResource:
    return LakeResource(
        uri=lake.uri,
        endpoint_url=lake.endpoint_url,
        access_key_id=lake.access_key_id,
        secret_access_key=lake.secret_access_key,
    )


def keys_of(requests) -> list[str]:
    return sorted(r.tags["fc/key"] for r in requests)


@pytest.fixture
def limits(settings_env):
    def set_limits(files: int = 50, size: int = 2 * 1024**3):
        settings_env(FC_MAX_FILES_PER_TICK=files, FC_MAX_FILE_BYTES=size)

    set_limits()
    return set_limits


@pytest.fixture
def inbox(s3_server):
    bucket = f"inbox-{next(_n)}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=bucket)
    return bucket, client


def s3_ticker(s3_server, instance, bucket, aws_access_key_id: str = "testing", **loc) -> Ticker:
    location = FileLocation("s3", "s3", f"{bucket}/inventory/", glob=loc.pop("glob", "*.csv"), **loc)
    sensor = build_file_sensor(
        feed="test", asset_name="feed_asset", location=location, job=JOB, partitions_def=PARTS
    )
    s3 = S3Resource(
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=aws_access_key_id,
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    return Ticker(sensor, instance, {"s3": s3})


def test_s3_tick_sequence(s3_server, inbox, dagster_instance, limits):
    bucket, s3 = inbox
    t = s3_ticker(s3_server, dagster_instance, bucket)
    assert t.tick() == [] and "no new files" in t.skip

    names = ["a.csv", "stock file (1).csv", "a&b [x].csv", "Übersicht ünicode.csv", "x" * 300 + ".csv"]
    for n in names:
        s3.put_object(Bucket=bucket, Key=f"inventory/{n}", Body=f"{n}\n".encode())
    # not matched: other case, dot not escaped in naive globs, a sub-"directory", another prefix
    for k in ["inventory/b.CSV", "inventory/bcsv", "inventory/sub/c.csv", "other/d.csv"]:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    first = t.tick()
    assert keys_of(first) == sorted(f"inventory/{n}" for n in names)
    r = next(r for r in first if r.tags["fc/key"] == "inventory/a.csv")
    etag = s3.head_object(Bucket=bucket, Key="inventory/a.csv")["ETag"].strip('"')
    assert r.run_key == f"test:s3:inventory/a.csv@{etag}"
    assert r.run_config["ops"]["feed_asset"]["config"]["key"] == "inventory/a.csv"
    assert t.tick() == []  # nothing new

    # a new file in the same second as the mark, plus deletion of an already-seen one
    s3.put_object(Bucket=bucket, Key="inventory/late.csv", Body=b"late\n")
    s3.delete_object(Bucket=bucket, Key="inventory/a.csv")
    assert keys_of(t.tick()) == ["inventory/late.csv"]
    assert t.tick() == []

    # re-upload with new content → new run key; identical re-upload → no new run
    s3.put_object(Bucket=bucket, Key="inventory/late.csv", Body=b"late, v2\n")
    again = t.tick()
    assert keys_of(again) == ["inventory/late.csv"] and again[0].run_key != r.run_key
    s3.put_object(Bucket=bucket, Key="inventory/late.csv", Body=b"late, v2\n")
    assert t.tick() == []
    assert len(t.cursor) < 2000


def test_s3_2500_keys_across_ticks(s3_server, inbox, dagster_instance, limits):
    bucket, s3 = inbox
    limits(files=1000)
    t = s3_ticker(s3_server, dagster_instance, bucket)
    with ThreadPoolExecutor(6) as pool:  # moto answers ~150 PUT/s per thread
        list(
            pool.map(
                lambda i: s3.put_object(Bucket=bucket, Key=f"inventory/f{i:05d}.csv", Body=b"x"), range(2500)
            )
        )
    batches = [t.tick() for _ in range(4)]
    assert [len(b) for b in batches] == [1000, 1000, 500, 0]
    assert "over the per-tick limit" not in t.skip
    all_keys = [k for b in batches for k in keys_of(b)]
    assert len(set(all_keys)) == 2500 == len(all_keys)
    assert len(dagster_instance.get_dynamic_partitions(PARTS.name)) >= 2500


def test_s3_ticks_reuse_one_client_per_configuration(s3_server, inbox, dagster_instance, limits, monkeypatch):
    """A new boto3 session + client per tick costs 0.2-0.4 s (botocore reads its service models again): ticks
    of the long-lived code server share one client per configuration; other credentials get their own."""
    bucket, s3 = inbox
    made = []
    client = boto3.session.Session.client
    monkeypatch.setattr(
        boto3.session.Session, "client", lambda self, *a, **k: made.append(k) or client(self, *a, **k)
    )
    key_id = f"testing-{time.time_ns()}"  # a configuration no earlier test made a client for
    t = s3_ticker(s3_server, dagster_instance, bucket, aws_access_key_id=key_id)
    s3.put_object(Bucket=bucket, Key="inventory/a.csv", Body=b"a")
    assert keys_of(t.tick()) == ["inventory/a.csv"]
    s3.put_object(Bucket=bucket, Key="inventory/b.csv", Body=b"b")
    assert keys_of(t.tick()) == ["inventory/b.csv"]
    assert [k["aws_access_key_id"] for k in made] == [key_id]  # one client for both ticks

    resource = t.resources["s3"]
    assert resource.get_client() is resource.get_client() is S3Resource(**resource.model_dump()).get_client()
    rotated = S3Resource(**{**resource.model_dump(), "aws_secret_access_key": "rotated"})
    assert rotated.get_client() is not resource.get_client()
    assert [k["aws_secret_access_key"] for k in made] == ["testing", "rotated"]

    fresh = S3Resource(**{**resource.model_dump(), "aws_access_key_id": f"{key_id}-threads"})
    with ThreadPoolExecutor(8) as pool:  # made under a lock: concurrent first calls share one client
        assert len({id(c) for c in pool.map(lambda _: fresh.get_client(), range(8))}) == 1
    assert len(made) == 3

    # ... for at most MAX_AGE_S: keys read by botocore from a credentials file or profile when the client was
    # made would never be read again (a rotated file: every tick failing until the code server restarts)
    now = time.monotonic()
    monkeypatch.setattr(boto_clients, "_clock", lambda: now + boto_clients.MAX_AGE_S + 1)
    aged = fresh.get_client()
    assert len(made) == 4 and aged is fresh.get_client()  # made again, then shared again


def test_s3_over_limit_is_reported_not_dropped(s3_server, inbox, dagster_instance, limits):
    bucket, s3 = inbox
    limits(files=2, size=100)
    t = s3_ticker(s3_server, dagster_instance, bucket)
    s3.put_object(Bucket=bucket, Key="inventory/big.csv", Body=b"x" * 500)
    for i in range(3):
        s3.put_object(Bucket=bucket, Key=f"inventory/s{i}.csv", Body=b"x")
    assert len(t.tick()) == 2
    assert len(t.tick()) == 1
    assert t.tick() == [] and "too large" in t.skip and "big.csv" in t.skip
    limits(files=2, size=1000)
    assert keys_of(t.tick()) == ["inventory/big.csv"]


def test_s3_marker_files(s3_server, inbox, dagster_instance, limits):
    bucket, s3 = inbox
    t = s3_ticker(s3_server, dagster_instance, bucket, stability="marker", marker_suffix=".done", glob="*")
    s3.put_object(Bucket=bucket, Key="inventory/m.csv", Body=b"x")
    assert t.tick() == [] and "marker" in t.skip
    s3.put_object(Bucket=bucket, Key="inventory/m.csv.done", Body=b"")
    assert keys_of(t.tick()) == ["inventory/m.csv"]
    assert t.tick() == []


@pytest.fixture
def sftp_dir(sftp_server):
    rel = f"inbox{next(_n)}/inventory"
    (sftp_server.root / rel).mkdir(parents=True)
    return rel, sftp_server.root / rel


def sftp_resource(sftp_server, **kw) -> SFTPResource:
    kw = {"known_hosts": str(sftp_server.known_hosts), "password": sftp_server.password, **kw}
    return SFTPResource(host=sftp_server.host, port=sftp_server.port, username=sftp_server.user, **kw)


def test_sftp_tick_sequence(sftp_server, sftp_dir, dagster_instance, limits):
    rel, local = sftp_dir
    location = FileLocation("sftp", "sftp", rel, glob="*.csv", stability="size_stable")
    sensor = build_file_sensor(
        feed="test", asset_name="feed_asset", location=location, job=JOB, partitions_def=PARTS
    )
    t = Ticker(sensor, dagster_instance, {"sftp": sftp_resource(sftp_server)})
    mark = int(time.time()) - 100

    def write(name: str, body: bytes, mtime: int = mark) -> None:
        (local / name).write_bytes(body)
        os.utime(local / name, (mtime, mtime))

    for n in ["a.csv", "b.csv", "c d (1).csv"]:
        write(n, b"1,2\n")
    write("xcsv", b"no")  # `*.csv` must not match it (the SDK's unescaped glob does)
    write("A.CSV", b"no")
    (local / "sub").mkdir()
    write("sub/deep.csv", b"no")  # no recursion
    assert t.tick() == [] and "still being written" in t.skip  # first sight: size not proven
    assert keys_of(t.tick()) == [f"{rel}/a.csv", f"{rel}/b.csv", f"{rel}/c d (1).csv"]
    assert t.tick() == []

    # same mtime as the mark (whole seconds on SFTP): found, once
    write("tie.csv", b"1,2\n")
    t.tick()
    assert keys_of(t.tick()) == [f"{rel}/tie.csv"]
    # a growing file is held while it grows
    write("grow.csv", b"1,")
    assert t.tick() == []
    write("grow.csv", b"1,2\n3,", mtime=mark + 1)
    assert t.tick() == [] and "grow.csv" in t.skip
    write("grow.csv", b"1,2\n3,4\n", mtime=mark + 2)
    assert t.tick() == []
    assert keys_of(t.tick()) == [f"{rel}/grow.csv"]
    # deleted and re-uploaded with new content (same second, new size): a new version
    (local / "a.csv").unlink()
    assert t.tick() == []
    write("b.csv", b"1,2\n5,6\n")
    t.tick()
    new_b = t.tick()
    assert keys_of(new_b) == [f"{rel}/b.csv"] and new_b[0].tags["fc/version"] == f"{mark}:8"
    assert t.tick() == [] and t.tick() == []


def test_sftp_host_key_is_verified(sftp_server, tmp_path):
    bad = tmp_path / "known_hosts"
    bad.write_text(
        f"[{sftp_server.host}]:{sftp_server.port} ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    )
    with pytest.raises(SFTPConfigError), sftp_resource(sftp_server, known_hosts=str(bad)).session():
        pass
    with (
        pytest.raises(SFTPConfigError),
        sftp_resource(sftp_server, known_hosts=str(tmp_path / "none")).session(),
    ):
        pass
    with pytest.raises(SFTPConfigError), sftp_resource(sftp_server, password="wrong").session():
        pass
    with sftp_resource(sftp_server).session() as s:
        assert s.list_dir("does/not/exist") == []


def test_sftp_sensor_against_openssh(openssh_server, dagster_instance, limits):
    """The same sensor against OpenSSH's sshd (key authentication, its own host key)."""
    rel = f"inbox{next(_n)}/inventory"
    local = openssh_server.root / rel
    local.mkdir(parents=True)
    location = FileLocation("sftp", "sftp", rel, glob="*.csv", stability="size_stable")
    sensor = build_file_sensor(
        feed="test", asset_name="feed_asset", location=location, job=JOB, partitions_def=PARTS
    )
    sftp = SFTPResource(
        host=openssh_server.host,
        port=openssh_server.port,
        username=openssh_server.user,
        key_path=str(openssh_server.key_path),
        known_hosts=str(openssh_server.known_hosts),
    )
    t = Ticker(sensor, dagster_instance, {"sftp": sftp})
    mark = int(time.time()) - 50
    for n in ["a.csv", "b.csv", "notes.txt"]:
        (local / n).write_bytes(b"1,2\n")
        os.utime(local / n, (mark, mark))
    assert t.tick() == []
    assert keys_of(t.tick()) == [f"{rel}/a.csv", f"{rel}/b.csv"]
    (local / "c.csv").write_bytes(b"1,2\n")
    os.utime(local / "c.csv", (mark, mark))
    t.tick()
    assert keys_of(t.tick()) == [f"{rel}/c.csv"] and t.tick() == []
    wrong = SFTPResource(
        host=openssh_server.host,
        port=openssh_server.port,
        username=openssh_server.user,
        password="nope",
        known_hosts=str(openssh_server.known_hosts),
    )
    with pytest.raises(SFTPConfigError), wrong.session():
        pass


def test_old_partitions_are_pruned_once_a_day(s3_server, inbox, dagster_instance, limits):
    bucket, s3 = inbox
    t = s3_ticker(s3_server, dagster_instance, bucket)
    dagster_instance.add_dynamic_partitions(
        PARTS.name, ["2001-01-01_old.csv_deadbeef", "2999-01-01_new.csv_0"]
    )
    t.tick()
    deletes = [
        r for r in t.last.dynamic_partitions_requests if isinstance(r, dg.DeleteDynamicPartitionsRequest)
    ]
    assert [list(r.partition_keys) for r in deletes] == [["2001-01-01_old.csv_deadbeef"]]
    t.tick()  # already pruned today: no second listing of all partitions
    assert not any(
        isinstance(r, dg.DeleteDynamicPartitionsRequest) for r in t.last.dynamic_partitions_requests
    )
