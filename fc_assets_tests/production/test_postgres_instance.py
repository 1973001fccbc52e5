"""The production instance, proven: deploy/dagster.yaml on a real PostgreSQL, with the code server and the
daemon as separate processes (deployment.py). 30 files land at once across the three feeds on S3 and SFTP
on a fresh instance; the sensors are turned on as a user would, a 30-day extraction backfill is launched
beside them through the webserver, and the daemon is SIGKILLed and restarted once a third of the files are
done. Then, from what a user can see:

- every file was sent exactly once (the sandbox's received entities, events and mutations), and moved out
  of its inbox;
- every file has exactly one run, all succeeded, none is left queued or in progress;
- no two runs of one feed overlapped, from launch (RUN_STARTING) to end (the run records);
- the backfill ran as one run and materialized every day, in the instance and in the lake;
- the instance opened its storage with the drivers the `deploy` extra installs.

Skips (saying why) without PostgreSQL server binaries; `make test` installs them when root with apt.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from fc_assets.local_stack.s3_server import s3_client
from fc_assets_tests.production.deployment import (
    ACTIVE,
    Deployment,
    feed_runs,
    overlaps,
    wait_for_backfill,
    wait_for_runs,
)
from fc_assets_tests.production.files import make_drop, put_all

FILES = int(os.environ.get("FC_TEST_PRODUCTION_FILES", "30"))  # bench/production_bench.py: 200
BACKFILL_DAYS = 30
pytestmark = [pytest.mark.slow, pytest.mark.timeout(max(900, 25 * FILES))]


def test_files_at_once_on_postgres_each_once_one_run_per_feed_at_a_time(
    postgres, s3_server, sftp_server, sandbox_clean, tmp_path, monkeypatch
):
    import dagster as dg

    run_id = uuid.uuid4().hex[:8]
    s3 = s3_client(s3_server.endpoint_url)
    inbox, lake, logs = f"prod-inbox-{run_id}", f"prod-lake-{run_id}", f"prod-logs-{run_id}"
    for bucket in (inbox, lake, logs):
        s3.create_bucket(Bucket=bucket)
    sftp_dir = f"prod-{run_id}"
    (sftp_server.root / sftp_dir).mkdir()
    env = {
        **postgres.env(),
        "DAGSTER_LOGS_BUCKET": logs,
        "FLUENT_BASE_URL": sandbox_clean.base_url,
        "FC_LAKE_URI": f"s3://{lake}/lake",
        "FC_INBOX_S3_URI": f"s3://{inbox}",
        "AWS_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "FC_SFTP_HOST": sftp_server.host,
        "FC_SFTP_PORT": str(sftp_server.port),
        "FC_SFTP_KNOWN_HOSTS": str(sftp_server.known_hosts),
        "FC_SFTP_INBOX_DIR": sftp_dir,
        # a loaded 2-core CI machine: give the code server time to launch runs and evaluate ticks
        "DAGSTER_GRPC_TIMEOUT_SECONDS": "300",
        "DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS": "300",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    before = sandbox_clean.admin.received()
    drop = make_drop(FILES)

    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    days = [(yesterday - timedelta(days=n)).isoformat() for n in range(BACKFILL_DAYS - 1, -1, -1)]
    with Deployment(tmp_path / "dagster_home", env, tmp_path / "logs") as deployment:
        instance = dg.DagsterInstance.from_config(str(deployment.home))
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        put_all(drop, s3, inbox, sftp_server.root / sftp_dir)  # all files at once, before the first tick
        deployment.start_sensors()
        backfill_id = deployment.launch_backfill("orders", days)  # beside the files, as a user would
        # the daemon dies mid-way (SIGKILL) and comes back: sensors resume from their cursors
        wait_for_runs(instance, max(1, drop.count // 3), timeout=max(600, 20 * drop.count), settled=False)
        deployment.kill_daemon()
        deployment.start_daemon()
        spans = wait_for_runs(instance, drop.count, timeout=max(600, 20 * drop.count))
        backfill = wait_for_backfill(instance, backfill_id, timeout=600)
        all_runs = instance.get_run_records()
        materialized = instance.get_materialized_partitions(dg.AssetKey("orders"))

    # the 30-day backfill: one run (the extraction's single-run backfill policy, one slot of the
    # `fluent_api` pool), succeeded, every day materialized and in the lake
    assert backfill.status.value == "COMPLETED_SUCCESS", backfill.status
    backfill_runs = [r for r in all_runs if r.dagster_run.tags.get("dagster/backfill") == backfill_id]
    assert [r.dagster_run.status.value for r in backfill_runs] == ["SUCCESS"]
    assert set(days) <= materialized
    lake_days = {
        o["Key"].split("dt=")[1].split("/")[0]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=lake, Prefix="lake/fluent/orders/")
        for o in page.get("Contents", [])
        if "/dt=" in o["Key"]
    }
    assert set(days) <= lake_days

    # one successful run per file; a run that failed (a launch that timed out on a loaded machine) was
    # retried by run_retries; none left queued or in progress
    expected_keys = [f"s3:{k}" for k, _ in drop.s3] + [f"sftp:{sftp_dir}/{p}" for p, _ in drop.sftp]
    assert Counter(s.key for s in spans if s.status == "SUCCESS") == Counter(expected_keys)
    failed = [s for s in spans if s.status != "SUCCESS"]
    retried = {s.parent for s in spans if s.parent}
    assert [(s.key, s.status) for s in failed if s.run_id not in retried] == []
    assert not [r.dagster_run.run_id for r in all_runs if r.dagster_run.status.value in ACTIVE]
    # one run per feed at a time: no two runs of one feed overlap, launch to end
    assert overlaps(spans) == []
    assert {s.feed for s in spans} == {"inventory", "products", "locations"}

    # each file sent exactly once
    got = sandbox_clean.admin.received()
    entities = [e for b in got["batches"][len(before["batches"]) :] for e in b["entities"]]
    assert Counter((e["skuRef"], e["locationRef"]) for e in entities) == Counter(drop.inventory)
    events = got["events"][len(before["events"]) :]
    assert Counter(e["entityRef"] for e in events) == Counter(drop.products)
    assert all(e["eventStatus"] == "COMPLETE" for e in events)
    muts = got["mutations"][len(before["mutations"]) :]
    assert Counter(m["input"]["ref"] for m in muts if m["ok"]) == Counter(drop.locations)

    # and moved out of the inboxes
    for feed in ("inventory", "products", "locations"):
        assert s3.list_objects_v2(Bucket=inbox, Delimiter="/", Prefix=f"{feed}/").get("Contents", []) == []
        assert [p.name for p in (sftp_server.root / sftp_dir / feed).glob("*") if p.is_file()] == []
    assert feed_runs(instance)  # the instance still answers after the processes stopped
