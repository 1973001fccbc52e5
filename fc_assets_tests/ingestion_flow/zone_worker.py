"""A process for the time-zone test: runs one partition of the inventory feed job on a shared instance
(SQLite, by ref) in a process whose `TZ` the test chose, and returns the zone DuckDB saw there with the run's
materialization metadata. A plain child process (not a multiprocessing pool, whose terminate() hung once
under pytest-xdist after the run had finished)."""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from fc_assets.ingestion.assets import build_feed_definitions
from fc_assets.ingestion.deliver.plans import plan_for
from fc_assets.ingestion.feeds import Inbox, inventory_feed
from fc_assets.resources.fluent import FluentResource
from fc_assets.resources.s3 import S3Resource
from fc_assets.resources.sftp import SFTPResource
from fc_assets.resources.storage import LakeResource
from fc_assets_tests.ingestion_flow.flow import metadata


def run_partition(args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    zone = duckdb.connect().sql("SELECT current_setting('TimeZone')").fetchone()[0]
    feed = dataclasses.replace(inventory_feed(), inboxes=(Inbox("s3", path=args["inbox"], glob="*.csv"),))
    resources = {
        "lake": LakeResource(
            uri=args["lake_uri"],
            endpoint_url=args["endpoint"],
            access_key_id="testing",
            secret_access_key="testing",
        ),
        "fluent": FluentResource(**args["fluent"], retailer_id="1", max_retries=2),
        "s3": S3Resource(
            endpoint_url=args["endpoint"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ),
        "sftp": SFTPResource(host="127.0.0.1", port=1, username="unused", insecure_skip_host_key=True),
    }
    defs = dg.Definitions.merge(build_feed_definitions(plan_for(feed)), dg.Definitions(resources=resources))
    result = defs.resolve_job_def("inventory_feed_job").execute_in_process(
        instance=dg.DagsterInstance.from_ref(args["instance_ref"]),
        partition_key=args["partition_key"],
        run_config=args["run_config"],
        tags=args["tags"],
        raise_on_error=False,
    )
    return zone, metadata(result)


def run_in_zone(job: dict[str, Any], zone: str, exchange: Path) -> tuple[str, dict[str, Any]]:
    """`run_partition(job)` in a fresh interpreter with `TZ=zone`; arguments and result go through `exchange`."""
    exchange.write_bytes(pickle.dumps(job))
    proc = subprocess.run(
        [sys.executable, "-m", "fc_assets_tests.ingestion_flow.zone_worker", str(exchange)],
        env={**os.environ, "TZ": zone},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return pickle.loads(exchange.read_bytes())


if __name__ == "__main__":
    path = Path(sys.argv[1])
    path.write_bytes(pickle.dumps(run_partition(pickle.loads(path.read_bytes()))))
