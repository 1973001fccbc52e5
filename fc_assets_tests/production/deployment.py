"""deploy/ as it runs in production, on loopback: a Dagster instance on PostgreSQL configured by
deploy/dagster.yaml, a code server (`dagster code-server start`, the Dockerfile's command), the webserver and
the daemon (`dagster-daemon run`) as separate processes, the sensors turned on with `dagster sensor start
--start-all`, a backfill launched through the webserver's GraphQL API as the UI does.

Only the run launcher differs: no Kubernetes here, so the default launcher starts each run as a child of the
code server. Used by test_postgres_instance.py (30 files) and bench/production_bench.py (200 files).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from fc_assets.local_stack.process import ServerProcess, free_port, port_open

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_YAML = ROOT / "deploy" / "dagster.yaml"
LOCATION = "fc_assets"


def instance_config() -> dict:
    """deploy/dagster.yaml with the default run launcher instead of the `K8sRunLauncher`."""
    cfg = yaml.safe_load(DEPLOY_YAML.read_text())
    cfg.pop("run_launcher")
    return cfg


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


@dataclass
class Deployment:
    """DAGSTER_HOME, workspace.yaml, the code server and the daemon; `env` is what every process gets."""

    home: Path
    env: dict[str, str]
    logs: Path
    grpc_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    _stack: ExitStack = field(default_factory=ExitStack)
    daemon: ServerProcess | None = None

    @property
    def workspace(self) -> Path:
        return self.home / "workspace.yaml"

    def write(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "dagster.yaml").write_text(yaml.safe_dump(instance_config(), sort_keys=False))
        self.workspace.write_text(
            yaml.safe_dump(
                {
                    "load_from": [
                        {
                            "grpc_server": {
                                "host": "127.0.0.1",
                                "port": self.grpc_port,
                                "location_name": LOCATION,
                            }
                        }
                    ]
                }
            )
        )

    def process_env(self) -> dict[str, str]:
        base = {
            k: v for k, v in os.environ.items() if not k.startswith(("FLUENT_", "FC_", "AWS_", "DAGSTER_"))
        }
        return {**base, **self.env, "DAGSTER_HOME": str(self.home)}

    def start(self) -> Deployment:
        self.write()
        env = self.process_env()
        code_server = ServerProcess(
            "code server",
            [_bin("dagster"), "code-server", "start", "-h", "127.0.0.1", "-p", str(self.grpc_port)]
            + ["-m", "fc_assets.definitions"],
            lambda: port_open("127.0.0.1", self.grpc_port),
            log_path=self.logs / "code-server.log",
            env=env,
            start_timeout=180,
        )
        webserver = ServerProcess(
            "dagster-webserver",
            [
                _bin("dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.web_port),
                "-w",
                str(self.workspace),
            ],
            lambda: port_open("127.0.0.1", self.web_port),
            log_path=self.logs / "webserver.log",
            env=env,
            start_timeout=180,
        )
        self._stack.enter_context(code_server)
        self._stack.enter_context(webserver)
        self.start_daemon()
        return self

    def start_daemon(self) -> None:
        self.daemon = ServerProcess(
            "dagster-daemon",
            [_bin("dagster-daemon"), "run", "-w", str(self.workspace)],
            lambda: True,
            log_path=self.logs / "daemon.log",
            env=self.process_env(),
        )
        self._stack.enter_context(self.daemon)

    def kill_daemon(self) -> None:
        """SIGKILL, as a node failure would: no shutdown, ticks cut wherever they were (its runs are the code
        server's children with the default launcher, so they go on)."""
        proc = self.daemon.proc
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        """The webserver's GraphQL API, as the UI calls it."""
        import httpx

        r = httpx.post(
            f"http://127.0.0.1:{self.web_port}/graphql",
            json={"query": query, "variables": variables or {}},
            timeout=120.0,
        )
        r.raise_for_status()
        body = r.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def launch_backfill(self, asset: str, partitions: list[str]) -> str:
        """What the UI's "Materialize" over a range of partitions does: an asset backfill run by the daemon."""
        data = self.graphql(
            """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
                 __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
            {"p": {"partitionNames": partitions, "assetSelection": [{"path": [asset]}]}},
        )["launchPartitionBackfill"]
        assert data["__typename"] == "LaunchBackfillSuccess", data
        return data["backfillId"]

    def start_sensors(self, timeout: float = 180.0) -> str:
        """`dagster sensor start --start-all` (retried while the code server still loads the definitions)."""
        deadline = time.monotonic() + timeout
        while True:
            proc = subprocess.run(
                [_bin("dagster"), "sensor", "start", "--start-all", "-w", str(self.workspace)],
                env=self.process_env(),
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if proc.returncode == 0:
                return proc.stdout
            if time.monotonic() > deadline:
                raise RuntimeError(f"dagster sensor start failed: {proc.stderr[-2000:]}")
            time.sleep(3)

    def stop(self) -> None:
        self._stack.close()

    def __enter__(self) -> Deployment:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class RunSpan:
    """One run of a feed from the instance's run records: launched (RUN_STARTING), started, ended."""

    run_id: str
    feed: str
    key: str
    status: str
    parent: str | None  # the run this one retries (run_retries in dagster.yaml)
    launched: float | None
    started: float | None
    ended: float | None


def feed_runs(instance) -> list[RunSpan]:
    import dagster as dg

    spans = []
    for rec in instance.get_run_records(dg.RunsFilter(tags={"fc/feed": list(FEED_NAMES)})):
        run = rec.dagster_run
        starting = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_STARTING)
        spans.append(
            RunSpan(
                run.run_id,
                run.tags["fc/feed"],
                f"{run.tags['fc/location']}:{run.tags['fc/key']}",
                run.status.value,
                run.parent_run_id,
                starting[0].timestamp if starting else None,
                rec.start_time,
                rec.end_time,
            )
        )
    return spans


FEED_NAMES = ("inventory", "products", "locations")
ACTIVE = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")


def overlaps(spans: list[RunSpan]) -> list[tuple[str, str, str, float]]:
    """Pairs of runs of one feed whose [launched, ended] intervals overlap, with the overlap in seconds."""
    out = []
    for feed in FEED_NAMES:
        mine = sorted((s for s in spans if s.feed == feed), key=lambda s: s.launched or s.started or 0)
        for i, a in enumerate(mine):
            for b in mine[i + 1 :]:
                a0, a1 = a.launched or a.started, a.ended
                b0, b1 = b.launched or b.started, b.ended
                if None in (a0, a1, b0, b1):
                    continue
                overlap = min(a1, b1) - max(a0, b0)
                if overlap > 0:
                    out.append((feed, a.run_id, b.run_id, round(overlap, 1)))
    return out


def wait_for_runs(instance, expected: int, timeout: float, *, settled: bool = True) -> list[RunSpan]:
    """Until `expected` feed runs succeeded and (`settled`) none is queued or in progress (or the timeout)."""
    deadline = time.monotonic() + timeout
    spans: list[RunSpan] = []
    while time.monotonic() < deadline:
        spans = feed_runs(instance)
        done = [s for s in spans if s.status == "SUCCESS"]
        if len(done) >= expected and not (settled and any(s.status in ACTIVE for s in spans)):
            return spans
        time.sleep(1 if not settled else 3)
    raise AssertionError(
        f"after {timeout:.0f} s: {len(spans)} of {expected} runs, "
        f"statuses {dict(Counter(s.status for s in spans))}"
    )


def wait_for_backfill(instance, backfill_id: str, timeout: float):
    """The backfill once it has ended (completed, failed or canceled)."""
    deadline = time.monotonic() + timeout
    while True:
        backfill = instance.get_backfill(backfill_id)
        if backfill.status.value not in ("REQUESTED", "CANCELING", "FAILING"):
            return backfill
        if time.monotonic() > deadline:
            raise AssertionError(
                f"backfill {backfill_id} still {backfill.status.value} after {timeout:.0f} s"
            )
        time.sleep(2)
