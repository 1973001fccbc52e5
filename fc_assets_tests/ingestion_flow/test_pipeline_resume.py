"""The file pipeline against moto's S3 (inbox + lake) and an in-memory Batch API: exactly-once under crashes
at every stage, closed jobs, rejected entities, stuck batches. (The same behaviours end to end against the
sandbox and a real Dagster instance are in test_end_to_end.py.)"""

from __future__ import annotations

import itertools

import boto3
import pytest

from fc_assets.ingestion.deliver.files import FileLocation, FileRef
from fc_assets.ingestion.deliver.ledger import Ledger
from fc_assets.ingestion.deliver.pipeline import PipelineEnv, process_file
from fc_assets.ingestion.deliver.senders import CRASH_ENV, InjectedCrash, SendIncomplete
from fc_assets.ingestion.deliver.sources import SourceStore
from fc_assets.ingestion.sensors import list_s3, list_sftp
from fc_assets.resources.sftp import SFTPResource
from fc_assets_tests.ingestion_flow.fake_batch_api import FakeBatchApi
from fc_assets_tests.ingestion_flow.helpers import inventory_csv, inventory_plan

_n = itertools.count()


class World:
    def __init__(self, s3_server, lake):
        self.bucket = f"inbox-p{next(_n)}"
        self.s3 = boto3.client(
            "s3",
            endpoint_url=s3_server.endpoint_url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        self.s3.create_bucket(Bucket=self.bucket)
        self.location = FileLocation("s3", "s3", f"{self.bucket}/inventory/", glob="*.csv")
        self.plan = inventory_plan((self.location,))
        self.lake = lake
        self.fluent = FakeBatchApi()
        self.batch_size = 5000
        self.timeout = 5.0

    def env(self) -> PipelineEnv:
        return PipelineEnv(
            self.lake,
            SourceStore(s3_client=self.s3),
            self.fluent.client,
            run_id="r",
            log=lambda m: None,
            batch_timeout_s=self.timeout,
            batch_size=self.batch_size,
        )

    def drop(self, name: str, rows) -> FileRef:
        self.s3.put_object(Bucket=self.bucket, Key=f"inventory/{name}", Body=inventory_csv(rows))
        listed = {f.key: f for f in list_s3(self.s3, self.location)[0]}
        return FileRef.of("inventory", self.location, listed[f"inventory/{name}"])

    def run(self, ref: FileRef):
        return process_file(self.plan, ref, self.env())

    def objects(self, prefix: str = "inventory/") -> list[str]:
        return sorted(
            o["Key"] for o in self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", [])
        )


@pytest.fixture
def world(s3_server, lake, monkeypatch):
    monkeypatch.delenv(CRASH_ENV, raising=False)
    return World(s3_server, lake)


ROWS = [(f"SKU{i:03d}", f"L{i % 3}", i) for i in range(200)]


def test_happy_path_then_same_content_then_one_percent(world):
    r1 = world.run(world.drop("a.csv", ROWS))
    assert r1.metadata["sent"] == 200 and r1.metadata["batches"] == 1 and r1.check_passed
    assert world.fluent.qty() == {(s, loc): q for s, loc, q in ROWS}
    assert world.objects() == [r1.entry.archive_target] and "/processed/" in r1.entry.archive_target
    r2 = world.run(world.drop("b.csv", ROWS))  # same content, another file: nothing to send
    assert r2.metadata["sent"] == 0 and r2.metadata["changed"] == 0 and len(world.fluent.received) == 200
    changed = [(s, loc, q + 1000 if i % 100 == 7 else q) for i, (s, loc, q) in enumerate(ROWS)]
    r3 = world.run(world.drop("c.csv", changed))
    assert r3.metadata["sent"] == 2 and {e["skuRef"] for e in world.fluent.received[200:]} == {
        "SKU007",
        "SKU107",
    }
    # re-running a finished file (e.g. re-executing its run) does nothing
    r4 = world.run(_ref_of(r3))
    assert r4.resumed_from == "archived" and len(world.fluent.received) == 202


def _ref_of(result) -> FileRef:
    e = result.entry
    return FileRef(e.feed, e.location, e.key, e.version, e.size, e.mtime, e.etag)


STAGES = [
    "after_claim",
    "after_prepare",
    "mid_send",
    "after_send",
    "after_confirm_batches",
    "after_confirm",
    "after_commit",
    "during_archive",
]


@pytest.mark.parametrize("stage", STAGES)
def test_crash_at_each_stage_then_rerun_is_exactly_once(world, stage, monkeypatch):
    world.batch_size = 70  # 3 batches, so a crash can fall between two of them
    world.run(world.drop("base.csv", ROWS))
    base = len(world.fluent.received)
    changed = [(s, loc, q + 1 if i % 2 else q) for i, (s, loc, q) in enumerate(ROWS)]  # 100 changed rows
    ref = world.drop("next.csv", changed)
    monkeypatch.setenv(CRASH_ENV, stage)
    with pytest.raises(InjectedCrash):
        world.run(ref)
    monkeypatch.delenv(CRASH_ENV)
    result = world.run(ref)
    assert result.resumed_from is not None
    sent = world.fluent.received[base:]
    assert len(sent) == 100, f"double-count or loss after a crash at {stage}"
    assert len({(e["skuRef"], e["locationRef"]) for e in sent}) == 100
    assert world.fluent.qty() == {(s, loc): q for s, loc, q in changed}
    assert world.objects() == sorted(
        [result.entry.archive_target, *[k for k in world.objects() if "base" in k]]
    )
    # and the snapshot moved: the same content again sends nothing
    again = world.run(world.drop("again.csv", changed))
    assert again.metadata["sent"] == 0 and len(world.fluent.received) == base + 100


def test_crash_between_post_and_record_adopts_the_batch(world):
    ref = world.drop("a.csv", ROWS)
    world.fluent.drop_after_post = 1  # Fluent took the batch, the answer never arrived
    with pytest.raises(Exception, match="(?i)dropped|processed"):
        world.run(ref)
    result = world.run(ref)
    assert len(world.fluent.received) == 200 and result.metadata["sent"] == 200
    assert Ledger(world.lake, "inventory").sends(ref.file_id).get("b0-000000").get("reconciled") is True
    assert result.metadata["fluent_batches_adopted"] == 1


def test_closed_job_is_replaced_and_batch_resent_once(world):
    world.run(world.drop("a.csv", ROWS[:10]))
    world.fluent.close_all_jobs()  # midnight UTC passed
    r = world.run(world.drop("b.csv", [(s, loc, q + 1) for s, loc, q in ROWS[:10]]))
    assert r.metadata["sent"] == 10 and len(world.fluent.jobs) == 2 and len(world.fluent.received) == 20


def test_job_closing_mid_file_resends_that_batch_once(world):
    world.batch_size = 5
    world.fluent.close_jobs_at_post = 2
    r = world.run(world.drop("a.csv", ROWS[:10]))
    assert len(world.fluent.received) == 10 and len(world.fluent.jobs) == 2
    assert r.metadata["fluent_closed_jobs_replaced"] and len(r.metadata["fluent_job_ids"].split(", ")) == 2


def test_rejected_entities_retried_alone_reported_and_resent_next_file(world):
    world.fluent.reject_skus = {"SKU005", "SKU006"}
    r = world.run(world.drop("a.csv", ROWS))
    assert r.metadata["fluent_rejected"] == 2 and r.metadata["fluent_retried_rows"] == 2
    assert [e["skuRef"] for e in world.fluent.received[200:]] == ["SKU005", "SKU006"]  # only those rows
    assert "unknown product SKU005" in r.metadata["fluent_rejections"]
    world.fluent.reject_skus = set()
    r2 = world.run(world.drop("b.csv", ROWS))  # nothing changed in the file, but those two never landed
    assert r2.metadata["sent"] == 2 and world.fluent.qty() == {(s, loc): q for s, loc, q in ROWS}


def test_stuck_batch_times_out_then_rerun_polls_without_resending(world):
    world.fluent.stuck = True
    world.timeout = 0.5
    ref = world.drop("a.csv", ROWS)
    with pytest.raises(SendIncomplete) as e:
        world.run(ref)
    assert e.value.metadata["batch_status"] == "RUNNING" and e.value.metadata["fluent_batch_id"]
    assert world.objects() == ["inventory/a.csv"]  # not archived, snapshot not moved
    world.fluent.stuck = False
    r = world.run(ref)
    assert r.metadata["sent"] == 200 and len(world.fluent.received) == 200 and r.resumed_from == "sending"


def test_file_over_reject_threshold_goes_to_error_with_rejects(world):
    rows = [("S1", "L", 1), ("S2", "L", 2)]
    body = inventory_csv(rows) + b"S3,L,notanumber,AVAILABLE\n"
    world.s3.put_object(Bucket=world.bucket, Key="inventory/bad.csv", Body=body)
    f = {x.key: x for x in list_s3(world.s3, world.location)[0]}["inventory/bad.csv"]
    r = world.run(FileRef.of("inventory", world.location, f))
    assert not r.check_passed and r.entry.outcome == "error" and r.metadata["sent"] == 0
    assert world.fluent.received == []
    keys = world.objects()
    assert any("/error/" in k and k.endswith(".csv") and "rejects" not in k for k in keys)
    rejects = next(k for k in keys if k.endswith(".rejects.csv"))
    assert b"notanumber" in world.s3.get_object(Bucket=world.bucket, Key=rejects)["Body"].read()


@pytest.mark.parametrize("server", ["sftp_server", "openssh_server"])
def test_sftp_file_fetched_sent_and_archived_exactly_once(server, request, lake, monkeypatch):
    srv = request.getfixturevalue(server)
    auth = {"password": srv.password} if server == "sftp_server" else {"key_path": str(srv.key_path)}
    sftp = SFTPResource(
        host=srv.host, port=srv.port, username=srv.user, known_hosts=str(srv.known_hosts), **auth
    )
    rel = f"inbox{next(_n)}/inventory"
    (srv.root / rel).mkdir(parents=True)
    (srv.root / rel / "stock.csv").write_bytes(inventory_csv(ROWS))
    location = FileLocation("sftp", "sftp", rel, glob="*.csv", stability="size_stable")
    plan = inventory_plan((location,))
    fluent = FakeBatchApi()
    with sftp.session() as s:
        (f,) = list_sftp(s, location)[0]
    ref = FileRef.of("inventory", location, f)
    env = PipelineEnv(lake, SourceStore(sftp=sftp), fluent.client, log=lambda m: None)
    monkeypatch.setenv(CRASH_ENV, "during_archive")
    with pytest.raises(InjectedCrash):
        process_file(plan, ref, env)
    monkeypatch.delenv(CRASH_ENV)
    r = process_file(plan, ref, env)
    assert len(fluent.received) == 200 and r.metadata["sent"] == 200
    assert not (srv.root / rel / "stock.csv").exists()
    assert (srv.root / r.entry.archive_target).read_bytes() == inventory_csv(ROWS)
    assert r.entry.archive_target.startswith(f"{rel}/processed/")
