"""Entry point of a worker process for the concurrency test: runs one partition of the inventory feed job on
a shared instance (SQLite, by ref), the way a run worker launched by the daemon would."""

from __future__ import annotations

import dataclasses
from typing import Any

import dagster as dg

from fc_assets.ingestion.assets import build_feed_definitions
from fc_assets.ingestion.deliver.plans import plan_for
from fc_assets.ingestion.feeds import Inbox, inventory_feed
from fc_assets.resources.fluent import FluentResource
from fc_assets.resources.s3 import S3Resource
from fc_assets.resources.sftp import SFTPResource
from fc_assets.resources.storage import LakeResource


def run_partition(args: dict[str, Any]) -> bool:
    feed = dataclasses.replace(inventory_feed(), inboxes=(Inbox("s3", path=args["inbox"], glob="*.csv"),))
    if "fake_fluent" in args:  # an in-memory Batch API of this process (see fake_batch_api.py)
        from fc_assets_tests.ingestion_flow.fake_batch_api import FakeFluentResource

        fluent: FluentResource = FakeFluentResource(
            base_url="http://fake", client_id=args["fake_fluent"], client_secret="x"
        )
    else:
        fluent = FluentResource(**args["fluent"])
    resources = {
        "lake": LakeResource(
            uri=args["lake_uri"],
            endpoint_url=args["endpoint"],
            access_key_id="testing",
            secret_access_key="testing",
        ),
        "fluent": fluent,
        "s3": S3Resource(
            endpoint_url=args["endpoint"],
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ),
        "sftp": SFTPResource(host="127.0.0.1", port=1, username="unused", insecure_skip_host_key=True),
    }
    defs = dg.Definitions.merge(build_feed_definitions(plan_for(feed)), dg.Definitions(resources=resources))
    instance = dg.DagsterInstance.from_ref(args["instance_ref"])
    result = defs.resolve_job_def("inventory_feed_job").execute_in_process(
        instance=instance,
        partition_key=args["partition_key"],
        run_config=args["run_config"],
        tags=args["tags"],
        raise_on_error=False,
    )
    return result.success
