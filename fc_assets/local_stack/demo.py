"""`fc-assets demo`: the whole platform on loopback, with the same code paths as production.

Starts the Fluent sandbox, moto's S3 server, the SFTP server and `dagster dev` (webserver + daemon, with
`DAGSTER_HOME=<repo>/.dagster_home`), creates the lake bucket and inboxes, drops a first set of sample
files, and prints what to try. Only settings differ from production: they are passed to Dagster as the
same environment variables a deployment would set. Ctrl-C (or SIGTERM) stops every process it started.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import click
import httpx

from fc_assets.local_stack.process import ServerProcess, port_open, python_module
from fc_assets.local_stack.s3_server import load_buckets, s3_client, s3_server, save_buckets
from fc_assets.local_stack.sftp_server import sftp_server

DEMO_BUCKET = "fc-lake"
INBOX_BUCKET = "fc-inbox"
S3_SAVE_DIR = "s3-objects"
"""Where the demo keeps the S3 server's objects between runs (under .local/demo/)."""
FEED_STATE_DIR = "state"
"""The feeds' snapshots, ledger and job ids under the lake (fc_assets/ingestion/deliver/ledger.py): not restored."""


@dataclass
class StackInfo:
    """What `fc-assets demo drop` and the tests need to find the running demo."""

    home: str
    sandbox_url: str
    s3_endpoint: str
    sftp_host: str
    sftp_port: int
    sftp_root: str
    known_hosts: str
    dagster_url: str
    lake_uri: str
    inbox_bucket: str

    @classmethod
    def load(cls, state_dir: Path) -> StackInfo:
        return cls(**json.loads((state_dir / "stack.json").read_text()))

    def env(self) -> dict[str, str]:
        """The environment Dagster runs with: exactly the variables production sets (README)."""
        return {
            "FLUENT_BASE_URL": self.sandbox_url,
            "FC_LAKE_URI": self.lake_uri,
            "AWS_ENDPOINT_URL": self.s3_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "FC_SFTP_HOST": self.sftp_host,
            "FC_SFTP_PORT": str(self.sftp_port),
            "FC_SFTP_KNOWN_HOSTS": self.known_hosts,
            "FC_INBOX_S3_URI": f"s3://{self.inbox_bucket}",
        }


def write_dagster_home(home: Path) -> None:
    """A local instance: SQLite storage, queued runs, one run per feed (run tag `fc/feed`, as in
    deploy/dagster.yaml) and pools for the Fluent API."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(
        "# written by `fc-assets demo`; production uses deploy/dagster.yaml\n"
        "telemetry:\n  enabled: false\n"
        "concurrency:\n  runs:\n    max_concurrent_runs: 4\n"
        "    tag_concurrency_limits:\n"
        "      - key: fc/feed\n        value: { applyLimitPerUniqueValue: true }\n        limit: 1\n"
        "  pools:\n    default_limit: 1\n"
        # a killed run worker's pool slot is freed (as in deploy/dagster.yaml)
        "run_monitoring:\n  enabled: true\n  free_slots_after_run_end_seconds: 60\n"
    )
    nux = home / ".nux"
    nux.mkdir(exist_ok=True)
    (nux / "nux.yaml").write_text("seen: 1\n")


def dagster_ready(url: str) -> bool:
    """The UI answers and the code location has loaded."""
    q = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    r = httpx.post(f"{url}/graphql", json={"query": q}, timeout=2.0)
    entries = r.json()["data"]["workspaceOrError"]["locationEntries"]
    return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)


def start_stack(
    root: Path, *, ports: dict[str, int], seed: int, echo=click.echo
) -> tuple[StackInfo, list[ServerProcess]]:
    state = state_dir(root)
    logs = state / "logs"
    home = root / ".dagster_home"
    write_dagster_home(home)
    host = "127.0.0.1"
    info = StackInfo(
        home=str(home),
        sandbox_url=f"http://{host}:{ports['sandbox']}",
        s3_endpoint=f"http://{host}:{ports['s3']}",
        sftp_host=host,
        sftp_port=ports["sftp"],
        sftp_root=str(state / "sftp-root"),
        known_hosts=str(state / "sftp-state" / "known_hosts"),
        dagster_url=f"http://{host}:{ports['dagster']}",
        lake_uri=f"s3://{DEMO_BUCKET}/lake",
        inbox_bucket=INBOX_BUCKET,
    )
    for name, port in ports.items():
        if port_open(host, port):
            raise click.ClickException(
                f"port {port} for {name} is already in use; stop what runs there "
                f"or set FC_{name.upper()}_PORT"
            )
    started: list[ServerProcess] = []
    try:
        t0 = time.monotonic()
        sandbox = ServerProcess(
            "fluent sandbox",
            python_module(
                "fc_assets.sandbox", "--host", host, "--port", str(ports["sandbox"]), "--seed", str(seed)
            ),
            lambda: httpx.get(f"{info.sandbox_url}/health", timeout=1.0).status_code == 200,
            log_path=logs / "sandbox.log",
        )
        for proc in (
            sandbox,
            s3_server(host, ports["s3"], log_path=logs / "s3.log"),
            sftp_server(
                Path(info.sftp_root),
                state / "sftp-state",
                host=host,
                port=ports["sftp"],
                log_path=logs / "sftp.log",
            ),
        ):
            started.append(proc.start())
            echo(f"  {proc.name:<16} up  ({time.monotonic() - t0:4.1f} s)")
        restored, dropped = restore_s3(info, state / S3_SAVE_DIR)
        if restored:
            echo(f"  s3 objects restored from the last run: {restored}")
        if dropped:
            echo(f"  feeds' state reset with the sandbox (it starts from its seed again): {dropped} objects")
        prepare_buckets(info)
        state.mkdir(parents=True, exist_ok=True)
        (state / "stack.json").write_text(json.dumps(asdict(info), indent=2))
        dagster_bin = str(Path(sys.executable).with_name("dagster"))
        dagster = ServerProcess(
            "dagster dev",
            [dagster_bin, "dev", "-w", str(root / "workspace.yaml"), "-h", host, "-p", str(ports["dagster"])],
            lambda: dagster_ready(info.dagster_url),
            log_path=logs / "dagster.log",
            env={**info.env(), "DAGSTER_HOME": str(home)},
            start_timeout=180,
        )
        started.append(dagster.start())
        echo(f"  {'dagster dev':<16} up  ({time.monotonic() - t0:4.1f} s)")
        return info, started
    except BaseException:
        for proc in reversed(started):
            proc.stop()
        raise


REPO = {"repositoryLocationName": "fc_assets", "repositoryName": "__repository__"}


def dagster_graphql(url: str, query: str, variables: dict | None = None) -> dict:
    r = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30.0)
    r.raise_for_status()
    body = r.json()
    if body.get("errors"):
        raise RuntimeError(f"Dagster GraphQL error: {body['errors'][0].get('message')}")
    return body["data"]


def turn_on_automation(url: str) -> list[str]:
    """Start every sensor and schedule (what a user would click in the UI); state persists in DAGSTER_HOME."""
    data = dagster_graphql(
        url,
        """query($r: RepositorySelector!) {
      repositoryOrError(repositorySelector: $r) { ... on Repository {
        sensors { name sensorState { status } } schedules { name scheduleState { status } } } } }""",
        {"r": REPO},
    )
    repo = data["repositoryOrError"]
    started = []
    for sensor in repo.get("sensors", []):
        if sensor["sensorState"]["status"] != "RUNNING":
            dagster_graphql(
                url,
                "mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename } }",
                {"s": {**REPO, "sensorName": sensor["name"]}},
            )
        started.append(sensor["name"])
    for sched in repo.get("schedules", []):
        if sched["scheduleState"]["status"] != "RUNNING":
            dagster_graphql(
                url,
                "mutation($s: ScheduleSelector!) { startSchedule(scheduleSelector: $s) { __typename } }",
                {"s": {**REPO, "scheduleName": sched["name"]}},
            )
        started.append(sched["name"])
    return started


def launch_first_extracts(url: str) -> list[str]:
    """One run per daily extraction job for yesterday (UTC), so Parquet lands in the lake at once."""
    from datetime import UTC, datetime, timedelta

    day = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    data = dagster_graphql(
        url,
        """query($r: RepositorySelector!) {
      repositoryOrError(repositorySelector: $r) { ... on Repository { jobs { name } } } }""",
        {"r": REPO},
    )
    launched = []
    for job in data["repositoryOrError"]["jobs"]:
        if not job["name"].endswith("_daily"):
            continue
        params = {
            "selector": {**REPO, "jobName": job["name"]},
            "runConfigData": {},
            "executionMetadata": {
                "tags": [
                    {"key": "dagster/partition", "value": day},
                    {"key": "fc_assets/started_by", "value": "demo"},
                ]
            },
        }
        res = dagster_graphql(
            url,
            """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
          __typename ... on PythonError { message } } }""",
            {"p": params},
        )
        if res["launchRun"]["__typename"] == "LaunchRunSuccess":
            launched.append(f"{job['name']} [{day}]")
    return launched


def restore_s3(info: StackInfo, saved: Path) -> tuple[int, int]:
    """Upload the objects saved at the last stop, except the feeds' state (`<lake>/state/`).

    The sandbox starts again from its seed on every start, so the last run's snapshots, ledger and daily
    Batch job ids describe data it no longer has: a snapshot would say "already sent" (the feed would send
    only a delta, and nothing for unchanged rows) and a job id would answer 404. Dropping the state makes
    the first file of each feed a full send again. Extracted Parquet, rejects, inboxes and `processed/`
    files are kept. Returns (restored, dropped)."""
    lake = urlparse(info.lake_uri)
    state_prefix = "/".join(p for p in (lake.path.strip("/"), FEED_STATE_DIR) if p) + "/"
    return load_buckets(
        info.s3_endpoint,
        saved,
        skip=lambda bucket, key: bucket == lake.netloc and key.startswith(state_prefix),
    )


def prepare_buckets(info: StackInfo) -> None:
    s3 = s3_client(info.s3_endpoint)
    for bucket in (DEMO_BUCKET, INBOX_BUCKET):
        try:
            s3.head_bucket(Bucket=bucket)
        except Exception:
            s3.create_bucket(Bucket=bucket)


def state_dir(root: Path) -> Path:
    """The demo's files under the repository: logs, stack.json, SFTP root, saved S3 objects (git-ignored)."""
    return root / ".local" / "demo"


def stop_all(
    started: list[ServerProcess], info: StackInfo | None = None, save_to: Path | None = None, echo=click.echo
) -> None:
    """Stop Dagster first (nothing writes any more), save the S3 server's objects, then stop the rest."""
    rest = list(started)
    if rest and rest[-1].name == "dagster dev":
        rest.pop().stop()
    s3 = next((p for p in rest if p.name.startswith("s3") and p.proc and p.proc.poll() is None), None)
    if info is not None and save_to is not None and s3 is not None:
        try:
            saved = save_buckets(
                info.s3_endpoint,
                [DEMO_BUCKET, INBOX_BUCKET],
                save_to,
            )
            echo(f"  s3 objects saved for the next start: {saved}")
        except Exception as e:  # never block the shutdown on it
            echo(f"  s3 objects not saved: {e}", err=True)
    for proc in reversed(rest):
        proc.stop()


def default_ports() -> dict[str, int]:
    from fc_assets.settings import get_settings

    s = get_settings()
    return {"sandbox": s.sandbox_port, "s3": s.s3_port, "sftp": s.sftp_port, "dagster": s.dagster_port}


@click.group(invoke_without_command=True)
@click.option("--seed", default=42, show_default=True, help="Seed of the sandbox's data.")
@click.option("--no-samples", is_flag=True, help="Do not drop the first set of sample files.")
@click.pass_context
def demo(ctx: click.Context, seed: int, no_samples: bool) -> None:
    """Run the whole platform locally: sandbox, S3, SFTP and the Dagster UI (Ctrl-C stops it)."""
    if ctx.invoked_subcommand is not None:
        return
    root = Path.cwd()
    if not (root / "workspace.yaml").exists():
        raise click.ClickException("run `fc-assets demo` from the repository root (where workspace.yaml is)")
    click.echo("Starting the fc_assets demo stack on 127.0.0.1 ...")
    stop = {"flag": False}

    def _on_signal(signum, frame):
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    info, started = start_stack(root, ports=default_ports(), seed=seed)
    try:
        click.echo(f"  sensors and schedules on: {len(turn_on_automation(info.dagster_url))}")
        if not no_samples:
            from fc_assets.local_stack.samples import drop_samples

            for line in drop_samples(info):
                click.echo(f"  dropped {line}")
            for line in launch_first_extracts(info.dagster_url):
                click.echo(f"  launched {line}")
        click.echo(WHAT_TO_TRY.format(**asdict(info)))
        while not stop["flag"] and all(p.proc and p.proc.poll() is None for p in started):
            time.sleep(0.5)
        dead = [p.name for p in started if p.proc and p.proc.poll() is not None]
        if dead:
            click.echo(f"stopping: {', '.join(dead)} exited (logs in .local/demo/logs/)", err=True)
    finally:
        click.echo("Stopping the demo stack ...")
        stop_all(started, info, state_dir(root) / S3_SAVE_DIR)
        click.echo("Stopped.")


@demo.command()
@click.argument("feed")
@click.option("--to", "target", type=click.Choice(["s3", "sftp"]), default="s3", show_default=True)
def drop(feed: str, target: str) -> None:
    """Drop a fresh sample file for FEED (inventory, products, locations) into the running demo's inbox."""
    from fc_assets.local_stack.samples import drop_sample

    state = state_dir(Path.cwd())
    if not (state / "stack.json").exists():
        raise click.ClickException("no running demo found (start it with `make demo`)")
    click.echo(drop_sample(StackInfo.load(state), feed, target))


WHAT_TO_TRY = """
fc_assets demo is up.

  Dagster UI        {dagster_url}
  Fluent sandbox    {sandbox_url}   (client fc-sandbox / fc-sandbox-secret)
  S3 (moto)         {s3_endpoint}   lake {lake_uri}, inbox s3://{inbox_bucket}/
  SFTP              sftp://fc@{sftp_host}:{sftp_port}  (password fc-sftp), files in {sftp_root}

What to try:
  - Assets -> orders -> Materialize a partition (or select a range to launch a backfill).
  - Watch the sensors pick up the sample files: Automation -> sensors, then the feed assets' partitions.
  - Drop another file:  .venv/bin/fc-assets demo drop inventory   (or --to sftp),
    or copy a file into {sftp_root}/inbox/inventory/
  - Ctrl-C here stops everything.
"""
