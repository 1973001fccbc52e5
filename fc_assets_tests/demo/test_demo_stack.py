"""`make demo` end to end: the stack starts from a clean directory, sensors pick up the sample files, runs
succeed (checked through Dagster's GraphQL API), Parquet lands in the lake, a headless Chromium finds the
asset graph and a feed's partitions, and stopping leaves no process behind.

Screenshots go to `tmp_path`; with `FC_UPDATE_SCREENSHOTS=1` they are also copied to `docs/` (the README's
Tour shows those).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fc_assets.extraction.freshness import SENSOR_NAME as FRESHNESS_SENSOR
from fc_assets.local_stack.demo import StackInfo, dagster_graphql
from fc_assets.local_stack.process import free_port, port_open
from fc_assets.local_stack.s3_server import s3_client

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

RUNS = """query { runsOrError(limit: 100) { ... on Runs { results { runId jobName status tags { key value } } } } }"""


def _our_processes(marker: str) -> list[str]:
    """Processes whose command line or environment mentions the demo's private directory."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            env = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmd or marker in env:
            found.append(f"{pid}: {cmd[:120]}")
    return found


def _wait(predicate, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last: {last!r}")


class Demo:
    """`fc-assets demo` as a user runs it, in its own session, output to a file."""

    def __init__(self, home: Path, env: dict[str, str], out: Path) -> None:
        self.home, self.out = home, out
        self.log = out.open("wb")
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("fc-assets")), "demo"],
            cwd=home,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def text(self) -> str:
        return self.out.read_text()

    def wait_up(self) -> float:
        """Waits for the stack; returns the seconds until the Dagster UI answered (from the demo's output)."""
        _wait(lambda: "demo is up" in self.text() or self.proc.poll() is not None, 150, "the demo to come up")
        assert "demo is up" in self.text(), self.text()[-3000:]
        match = re.search(r"dagster dev\s+up\s+\(\s*([\d.]+) s\)", self.text())
        return float(match.group(1))

    def stop(self) -> None:
        """Ctrl-C, then: exit 0, "Stopped.", no process of ours left, every port closed."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise
        finally:
            self.log.close()
        assert self.proc.returncode == 0, self.text()[-3000:]
        assert "Stopped." in self.text()
        time.sleep(1)
        assert _our_processes(str(self.home)) == []


def _lake_keys(info: StackInfo) -> list[str]:
    s3 = s3_client(info.s3_endpoint)
    return [
        o["Key"]
        for p in s3.get_paginator("list_objects_v2").paginate(Bucket="fc-lake")
        for o in p.get("Contents", [])
    ]


@pytest.mark.timeout(1200)  # two demo starts, each up to 150 s, and up to 480 s of sensor runs
def test_demo_stack_runs_sensors_and_ui_and_starts_again(tmp_path):
    home = tmp_path / "demo"
    home.mkdir()
    shutil.copy(ROOT / "workspace.yaml", home / "workspace.yaml")
    ports = {
        "FC_SANDBOX_PORT": free_port(),
        "FC_S3_PORT": free_port(),
        "FC_SFTP_PORT": free_port(),
        "FC_DAGSTER_PORT": free_port(),
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLUENT_", "FC_", "AWS_"))}
    env.update({k: str(v) for k, v in ports.items()})
    env["FC_DEMO_MARKER"] = str(home)  # lets the test find every process the demo started

    demo = Demo(home, env, tmp_path / "demo.out")
    try:
        ui_s = demo.wait_up()
        info = StackInfo.load(home / ".local" / "demo")
        url = info.dagster_url

        def finished_sensor_runs():
            runs = dagster_graphql(url, RUNS)["runsOrError"]["results"]
            # the feeds' file sensors (the freshness sensor's check runs come and go on their own schedule)
            sensor_runs = [
                r
                for r in runs
                if any(
                    t["key"] == "dagster/sensor_name" and t["value"] != FRESHNESS_SENSOR for t in r["tags"]
                )
            ]
            done = [r for r in sensor_runs if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
            return done if len(done) >= 4 and len(done) == len(sensor_runs) else None

        done = _wait(finished_sensor_runs, 480, "the first four sensor-driven runs", interval=2)
        statuses = {r["runId"]: r["status"] for r in done}
        assert all(s == "SUCCESS" for s in statuses.values()), statuses
        keys = _lake_keys(info)
        assert any(k.endswith(".parquet") for k in keys), keys[:20]

        _screenshots(url, tmp_path)
        assert ui_s < 60, f"the Dagster UI took {ui_s} s to come up"
    finally:
        demo.stop()
    for port in ports.values():
        assert not port_open("127.0.0.1", port), f"port {port} still open after the demo stopped"

    # the second start reuses the venv and the state: the Dagster instance's runs and the lake's objects
    again = Demo(home, env, tmp_path / "demo-again.out")
    try:
        assert again.wait_up() < 60
        assert "s3 objects restored from the last run" in again.text()
        # the lake comes back, but not the feeds' state: the sandbox starts from its seed again
        assert "feeds' state reset with the sandbox" in again.text()
        assert {k for k in keys if not k.startswith("lake/state/")} <= set(_lake_keys(info))
        runs = {r["runId"] for r in dagster_graphql(url, RUNS)["runsOrError"]["results"]}
        assert set(statuses) <= runs
        # the feeds' state was reset with the sandbox (test_demo_restore.py); waiting here for the second
        # start's sensor runs is left out of make test until it is measured on a quiet machine
    finally:
        again.stop()


def _screenshots(url: str, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("Debian's chromium is not installed (make test installs it when it runs as root)")
    from playwright.sync_api import sync_playwright

    args = [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=args)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            # lineage: extraction assets (with their checks) upstream of a DuckDB analytics asset
            page.goto(
                f"{url}/assets/stock_by_location?view=lineage&lineageScope=upstream", wait_until="networkidle"
            )
            for name in ("inventory_positions", "locations", "stock_by_location"):
                page.wait_for_selector(f"text={name}", timeout=30_000)
            page.wait_for_timeout(1500)
            page.screenshot(path=str(tmp_path / "asset-graph.png"))
            # a feed's partitions (one per file), the inventory CSV selected: rows, rejects, sent, ledger
            page.set_viewport_size({"width": 1600, "height": 1150})
            page.goto(f"{url}/assets/inventory_feed?view=partitions", wait_until="networkidle")
            page.locator("text=/csv_/ >> visible=true").first.click(timeout=30_000)
            page.wait_for_selector("text=rejects_uri", timeout=30_000)
            page.mouse.move(1500, 200)  # away from the partition list's tooltip
            page.wait_for_timeout(1000)
            page.screenshot(path=str(tmp_path / "feed-partitions.png"))
        finally:
            browser.close()
    for name in ("asset-graph.png", "feed-partitions.png"):
        assert (tmp_path / name).stat().st_size > 10_000
        if os.environ.get("FC_UPDATE_SCREENSHOTS"):
            shutil.copy(tmp_path / name, ROOT / "docs" / name)
