"""The instance configurations we ship load in Dagster 1.13: the demo's (written by `fc-assets demo`) and
production's `deploy/dagster.yaml` (run limits and pools belong under `concurrency:`, not `run_queue:`)."""

from __future__ import annotations

import shutil
from pathlib import Path

from dagster._core.instance.config import dagster_instance_config

from fc_assets.local_stack.demo import write_dagster_home

ROOT = Path(__file__).resolve().parents[2]


def test_demo_instance_config_is_valid(tmp_path):
    write_dagster_home(tmp_path)
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["concurrency"]["runs"]["max_concurrent_runs"] == 4


def test_deploy_instance_config_is_valid(tmp_path):
    shutil.copy(ROOT / "deploy" / "dagster.yaml", tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["concurrency"]["pools"]["default_limit"] == 1
