"""One partition of the inventory feed job run in a fresh interpreter, the way a run worker launched by the
daemon runs it: on a shared instance (SQLite, by ref), with the environment the test chose (e.g. `TZ`).
Used by the time-zone test (one process per zone) and the pool test (two processes at once).

Plain child processes, not a multiprocessing pool: under pytest-xdist a pool's terminate() hung after its runs
had finished (the child never exited), and the test waited for its 300 s timeout."""

from __future__ import annotations

import dataclasses
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_partition(args: dict[str, Any]) -> dict[str, Any]:
    """The run; returns its success, its materialization metadata and the time zone DuckDB saw here."""
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
    return {"success": result.success, "metadata": metadata(result), "zone": zone}


def start(job: dict[str, Any], exchange: Path, **env: str) -> subprocess.Popen:
    """`run_partition(job)` in a new interpreter with `env` added; the job and its result go through
    `exchange` (pickle)."""
    exchange.write_bytes(pickle.dumps(job))
    return subprocess.Popen(
        [sys.executable, "-m", "fc_assets_tests.ingestion_flow.child_run", str(exchange)],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def result(proc: subprocess.Popen, exchange: Path, timeout: float = 600) -> dict[str, Any]:
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-4000:]
    return pickle.loads(exchange.read_bytes())


if __name__ == "__main__":
    path = Path(sys.argv[1])
    path.write_bytes(pickle.dumps(run_partition(pickle.loads(path.read_bytes()))))
