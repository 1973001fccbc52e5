"""Drives the ingestion flow the way the Dagster daemon would, for the end-to-end tests: sensor ticks with a
carried cursor, dynamic partitions added, run-key dedupe, and each run request executed as a real run of the
feed's job on a real (SQLite) instance."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import boto3
import dagster as dg

from fc_assets.ingestion.assets import build_feed_definitions, set_feed_pool_limits
from fc_assets.ingestion.deliver.plans import plan_for
from fc_assets.ingestion.feeds import Feed, Inbox
from fc_assets.resources.fluent import FluentResource
from fc_assets.resources.s3 import S3Resource
from fc_assets.resources.sftp import SFTPResource
from fc_assets.resources.storage import Lake, LakeResource

_n = itertools.count()


def feed_definitions(feed: Feed, resources: dict[str, Any]) -> dg.Definitions:
    """The feed's asset, job and sensors bound to these resources (the code location's, for one feed)."""
    return dg.Definitions.merge(build_feed_definitions(plan_for(feed)), dg.Definitions(resources=resources))


class Flow:
    def __init__(
        self,
        feed: Feed,
        *,
        instance: dg.DagsterInstance,
        lake: Lake,
        s3_endpoint: str,
        sftp_server,
        fluent: FluentResource,
        s3: S3Resource | None = None,
        glob: str = "*.csv",
    ) -> None:
        self.n = next(_n)
        self.bucket = f"inbox-e{self.n}"
        self.s3 = boto3.client(
            "s3",
            endpoint_url=s3_endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        self.s3.create_bucket(Bucket=self.bucket)
        self.sftp_dir = f"e{self.n}/{feed.name}"
        self.sftp_root = sftp_server.root
        (self.sftp_root / self.sftp_dir).mkdir(parents=True)
        self.feed = dataclasses.replace(
            feed,
            inboxes=(
                Inbox("s3", path=f"{self.bucket}/{feed.name}/", glob=glob),
                Inbox("sftp", path=self.sftp_dir, glob=glob),
            ),
        )
        self.lake = lake
        self.instance = instance
        self.resources: dict[str, Any] = {
            "lake": LakeResource(
                uri=lake.uri,
                endpoint_url=lake.endpoint_url,
                access_key_id="testing",
                secret_access_key="testing",
            ),
            "fluent": fluent,
            "s3": s3
            or S3Resource(
                endpoint_url=s3_endpoint,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                region_name="us-east-1",
            ),
            "sftp": SFTPResource(
                host=sftp_server.host,
                port=sftp_server.port,
                username=sftp_server.user,
                password=sftp_server.password,
                known_hosts=str(sftp_server.known_hosts),
            ),
        }
        self.defs = feed_definitions(self.feed, self.resources)
        set_feed_pool_limits(instance, [feed.name])
        self.cursors: dict[str, str | None] = {}
        self.run_keys: set[str] = set()

    @property
    def job(self) -> dg.JobDefinition:
        return self.defs.resolve_job_def(f"{self.feed.name}_feed_job")

    def put_s3(self, name: str, body: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=f"{self.feed.name}/{name}", Body=body)

    def put_sftp(self, name: str, body: bytes) -> None:
        (self.sftp_root / self.sftp_dir / name).write_bytes(body)

    def tick(self, kind: str) -> list[dg.RunRequest]:
        sensor = self.defs.resolve_sensor_def(f"{kind}_{self.feed.name}_sensor")
        ctx = dg.build_sensor_context(
            instance=self.instance,
            cursor=self.cursors.get(kind),
            resources={kind: self.resources[kind], "lake": self.resources["lake"]},
        )
        result = sensor(ctx)
        self.skip = result.skip_reason.skip_message if result.skip_reason else ""
        self.cursors[kind] = result.cursor
        for req in result.dynamic_partitions_requests or []:
            if isinstance(req, dg.AddDynamicPartitionsRequest):
                self.instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        new = [r for r in result.run_requests or [] if r.run_key not in self.run_keys]
        self.run_keys.update(r.run_key for r in new)
        return new

    def execute(self, req: dg.RunRequest, **config: Any) -> dg.ExecuteInProcessResult:
        run_config = req.run_config
        if config:
            op = next(iter(run_config["ops"]))
            run_config = {"ops": {op: {"config": {**run_config["ops"][op]["config"], **config}}}}
        return self.job.execute_in_process(
            instance=self.instance,
            partition_key=req.partition_key,
            run_config=run_config,
            tags={**req.tags, "dagster/run_key": req.run_key},
            raise_on_error=False,
        )

    def drain(self, kind: str, ticks: int = 2) -> list[dg.ExecuteInProcessResult]:
        """Tick until the sensor requested something (SFTP needs two sightings) and run it all."""
        results = []
        for _ in range(ticks):
            for req in self.tick(kind):
                results.append(self.execute(req))
        return results


def materialization(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    (mat,) = result.asset_materializations_for_node(result.dagster_run.job_name.removesuffix("_job")) or [
        None
    ]
    return {k: v.value for k, v in mat.metadata.items()} if mat else {}


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    for event in result.all_events:
        if event.is_step_materialization:
            mat = event.step_materialization_data.materialization
            return {k: v.value for k, v in mat.metadata.items()}
    return {}


def failure_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    for event in result.all_events:
        if event.is_step_failure:
            data = event.step_failure_data
            md = data.user_failure_data.metadata if data.user_failure_data else {}
            return {
                "error": data.error.to_string() if data.error else "",
                **{k: v.value for k, v in md.items()},
            }
    return {}


# --------------------------------------------------------------------------------------------- sandbox


def sandbox_fluent(sandbox) -> FluentResource:
    return FluentResource(
        base_url=sandbox.base_url,
        client_id="fc-sandbox",
        client_secret="fc-sandbox-secret",
        retailer_id="1",
        max_retries=2,
    )


def sandbox_flow(
    feed: Feed, instance, lake, s3_server, sftp_server, sandbox, monkeypatch, glob: str = "*.csv", **settings
) -> Flow:
    """A feed's Flow against the sandbox over HTTP, moto's S3 server and the SFTP server (`make_flow` is the
    fixture over it). Settings are FC_* environment variables for this test; in-run retries are one quick
    retry unless said otherwise; no injected crash is left over from another test."""
    from fc_assets.ingestion.deliver.crashpoints import CRASH_ENV
    from fc_assets_tests.fixtures.settings import set_settings_env

    retries = {"FC_FEED_MAX_RETRIES": 1, "FC_FEED_RETRY_DELAY_S": 0.2}
    set_settings_env(monkeypatch, **{CRASH_ENV: None, **retries, **settings})
    flow = Flow(
        feed,
        instance=instance,
        lake=lake,
        s3_endpoint=s3_server.endpoint_url,
        sftp_server=sftp_server,
        fluent=sandbox_fluent(sandbox),
        glob=glob,
    )
    flow.sandbox = sandbox
    flow.received = Received(sandbox.admin)
    return flow


class Received:
    """What the sandbox received since this object was made (the sandbox is shared by the session)."""

    def __init__(self, admin) -> None:
        self.admin = admin
        got = admin.received()
        self.batches0, self.events0, self.mutations0 = (
            len(got["batches"]),
            len(got["events"]),
            len(got["mutations"]),
        )

    def batches(self) -> list[dict[str, Any]]:
        return self.admin.received()["batches"][self.batches0 :]

    def entities(self) -> list[dict[str, Any]]:
        return [e for b in self.batches() for e in b["entities"]]

    def events(self) -> list[dict[str, Any]]:
        return self.admin.received()["events"][self.events0 :]

    def mutations(self) -> list[dict[str, Any]]:
        return self.admin.received()["mutations"][self.mutations0 :]


ON_HAND = """query OnHand($skus: [String!], $first: Int, $after: String) {
  inventoryPositions(productRef: $skus, first: $first, after: $after) {
    edges { cursor node { productRef locationRef onHand } }
    pageInfo { hasNextPage }
  }
}"""


def on_hand(fluent: FluentResource, skus: list[str]) -> dict[tuple[str, str], int]:
    """Fluent's view (GraphQL `inventoryPositions`) of the stock of these SKUs."""
    out: dict[tuple[str, str], int] = {}
    with fluent.get_client() as client:
        for i in range(0, len(skus), 200):
            for node in client.iter_nodes(ON_HAND, {"skus": skus[i : i + 200]}):
                out[(node["productRef"], node["locationRef"])] = node["onHand"]
    return out
