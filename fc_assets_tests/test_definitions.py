"""The code location loads: a broken import or definition fails CI here, not in the UI."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]


def test_definitions_load_in_process():
    from fc_assets.definitions import defs

    dg.Definitions.validate_loadable(defs)


def test_dagster_cli_validates_workspace(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fc_assets" in proc.stdout + proc.stderr


def test_jobs_run_their_steps_in_the_run_worker_and_keep_their_pools():
    """`dagster asset materialize`, the UI's materializations (the implicit asset job) and the extraction
    jobs execute in the run worker: a step process would load the code location a second time (issue 16:
    3-5 s a step, against ~5 s for a day's 20,000 orders). The Fluent pool is still on the extraction
    steps (the in-process executor claims pool slots as the multiprocess one does)."""
    from fc_assets.definitions import defs

    jobs = [defs.resolve_implicit_global_asset_job_def(), defs.resolve_job_def("fluent_orders_daily")]
    jobs.append(defs.resolve_job_def("inventory_feed_job"))
    assert [j.executor_def.name for j in jobs] == ["in_process"] * 3
    orders = defs.resolve_assets_def("orders")
    assert orders.op.pool == "fluent_api"
