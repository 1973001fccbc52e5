"""`bench/sdk_bench.py --dagster-only` at smoke size (300 orders): the `dagster asset materialize` row comes from
paired runs (direct, then materialize) in a DAGSTER_HOME set up as `make demo`'s, after one first run whose
time is printed and named in the row's note, and one pair on a day without orders. (`run_all.py --smoke` runs the SDK benchmark with --no-dagster.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dagster_row_from_paired_runs_after_a_first_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    rows_json = tmp_path / "rows.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "sdk_bench.py"), "--dagster-only", "--orders", "300"]
        + ["--repeat", "2", "--no-warmup", "--rows-json", str(rows_json)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    [row] = json.loads(rows_json.read_text())
    assert row["work"].startswith("`dagster asset materialize` orders partition vs our direct extraction")
    assert row["target"] == "ratio <= 1.3" and row["met"] in (True, False), row
    assert row["ours"] > 0 and row["baseline"] > 0, row
    # the first run is printed and named in the note, the median is over the paired runs after it
    first = [ln for ln in proc.stdout.splitlines() if ln.startswith("first run in a fresh DAGSTER_HOME: ")]
    assert len(first) == 1, proc.stdout
    first_wall = float(first[0].split(": ")[1].split(" s wall")[0])
    assert f"after its first run ({first_wall:.2f} s)" in row["note"], row
    assert "median of 2 paired runs in a DAGSTER_HOME set up as `make demo`'s" in row["note"], row
    # four runs of the asset (the first, two timed, the day without orders), each with its phases
    phases = [ln for ln in proc.stdout.splitlines() if ln.startswith("  phases: ")]
    assert len(phases) == 4 and all("orders success" in ln for ln in phases), proc.stdout
    assert "3 Parquet objects written" in proc.stdout, proc.stdout
    # the day before has no orders (asserted in the benchmark): each path's cost with nothing to move
    [empty] = [ln for ln in proc.stdout.splitlines() if ln.startswith("a day without orders: ")]
    empty_wall = float(empty.split("materialize ")[1].split(" s wall")[0])
    assert f"a day without orders {empty_wall:.2f} s vs " in row["note"], row
    # Dagster's own floor in the same instance: a no-op asset in a one-asset code location
    [floor] = [ln for ln in proc.stdout.splitlines() if ln.startswith("Dagster's floor ")]
    floor_wall = float(floor.split("same instance): ")[1].split(" s wall")[0])
    assert floor_wall > 0 and f"Dagster's floor (a no-op asset alone) {floor_wall:.2f} s" in row["note"], row
