"""What a restarted demo brings back from `.local/demo/s3-objects/`: the lake and inboxes, but not the feeds'
state, since the sandbox starts again from its seed (the whole-stack restart is in test_demo_stack.py)."""

from __future__ import annotations

import itertools

import pyarrow as pa
import pyarrow.parquet as pq

from fc_assets.ingestion.deliver.ledger import Ledger
from fc_assets.local_stack.demo import StackInfo, restore_s3
from fc_assets.local_stack.s3_server import s3_client, save_buckets
from fc_assets.resources.storage import Lake

_runs = itertools.count(1)


def stack_info(endpoint: str, n: int) -> StackInfo:
    return StackInfo(
        home="",
        sandbox_url="",
        s3_endpoint=endpoint,
        sftp_host="127.0.0.1",
        sftp_port=0,
        sftp_root="",
        known_hosts="",
        dagster_url="",
        lake_uri=f"s3://demo-lake-{n}/lake",
        inbox_bucket=f"demo-inbox-{n}",
    )


def empty_buckets(endpoint: str, buckets: list[str]) -> None:
    """What a fresh moto server has: no such buckets."""
    s3 = s3_client(endpoint)
    for bucket in buckets:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)


def test_a_restart_keeps_the_lake_and_inboxes_but_resets_the_feeds_state(s3_server, tmp_path):
    info = stack_info(s3_server.endpoint_url, next(_runs))
    lake = s3_server.lake(info.lake_uri.split("/")[2])
    s3_client(info.s3_endpoint).create_bucket(Bucket=info.inbox_bucket)
    # what a demo run leaves: extracted Parquet, a feed that sent a file (ledger, snapshot, today's job id),
    # rejects, and the archived source file
    with lake.atomic_write("fluent/orders/dt=2026-11-30/part-0.parquet") as out:
        pq.write_table(pa.table({"id": ["1", "2"]}), out)
    ledger = Ledger(lake, "inventory")
    ledger.update_state(
        watermark="2026-12-01T00:00:00Z", job={"day": "2026-12-01", "job_id": "17"}, committed=1
    )
    lake.write_bytes(b"{}", ledger.rel("ledger", "f1.json"))
    with lake.atomic_write(ledger.rel("snapshot.parquet")) as out:
        pq.write_table(pa.table({"key": ["S1:L1"], "hash": [1]}), out)
    lake.write_bytes(b"row,reason\n", "rejects/inventory/f1.csv")
    s3_client(info.s3_endpoint).put_object(
        Bucket=info.inbox_bucket, Key="processed/inventory/a.csv", Body=b"x"
    )
    buckets = [lake.bucket, info.inbox_bucket]
    saved = tmp_path / "s3-objects"
    saved_count = save_buckets(info.s3_endpoint, buckets, saved)  # (+ pyarrow's `_tmp/` directory marker)

    empty_buckets(info.s3_endpoint, buckets)
    restored, dropped = restore_s3(info, saved)

    assert dropped == 3 and restored == saved_count - 3  # state.json, the ledger entry, the snapshot
    fresh = Lake(lake.uri, lake.endpoint_url, lake.access_key_id, lake.secret_access_key)
    assert fresh.list_files() == ["fluent/orders/dt=2026-11-30/part-0.parquet", "rejects/inventory/f1.csv"]
    assert fresh.read_parquet("fluent/orders/dt=2026-11-30/part-0.parquet").num_rows == 2
    # the feed starts over: nothing "already sent", no job id the new sandbox would not know
    state = Ledger(fresh, "inventory").state()
    assert state.job is None and state.watermark is None and state.committed == 0
    assert Ledger(fresh, "inventory").entries() == []
    inbox = s3_client(info.s3_endpoint).list_objects_v2(Bucket=info.inbox_bucket)["Contents"]
    assert [o["Key"] for o in inbox] == ["processed/inventory/a.csv"]
