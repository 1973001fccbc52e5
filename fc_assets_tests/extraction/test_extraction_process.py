"""What an extraction leaves in the process that runs it (a run worker, `dagster asset materialize`).

- The collector's freeze outlives it. `fc_assets.definitions` ends with `gc.freeze()`; an extraction
  freezes what exists when it starts and used to `gc.unfreeze()` everything when it ended, the code
  location's objects included, so the exit (Python's last collections walk every tracked object) took
  ~0.8 s more after `dagster asset materialize`.
- Validating the rows does not import pandera (with the pandas frames it needs, ~0.6 s of CPU): the
  entity's checks run as Arrow. (pandas itself still comes in: `pyarrow.array` of a Python list imports
  it to ask whether the list is a pandas object.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

CHILD = r"""
import gc, json, sys, tempfile
from datetime import datetime
import fc_assets.definitions
from fc_assets.extraction.entities import ORDERS
from fc_assets.extraction.extract import extract_periods
from fc_assets.extraction.windows import Window
from fc_assets.resources.fluent import FluentClient
from fc_assets.resources.storage import Lake
base_url, start, end = sys.argv[1:4]
before = gc.get_freeze_count()
window = Window(datetime.fromisoformat(start), datetime.fromisoformat(end))
with tempfile.TemporaryDirectory() as tmp, FluentClient(base_url, "fc-sandbox", "fc-sandbox-secret") as c:
    rows = sum(r.rows for r in extract_periods(ORDERS, [window], client=c, lake=Lake(f"file://{tmp}/lake")))
heavy = sorted(m for m in ("pandas", "pandera") if m in sys.modules)
print(json.dumps({"before": before, "after": gc.get_freeze_count(), "rows": rows, "heavy": heavy}))
"""


@pytest.fixture(scope="module")
def child(sandbox) -> dict:
    """One day range of orders extracted in a child that loaded the code location first."""
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=30)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, sandbox.base_url, start.isoformat(), end.isoformat()],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["rows"] > 0
    return out


def test_an_extraction_keeps_the_code_locations_objects_frozen(child):
    assert child["before"] > 100_000
    assert child["after"] >= child["before"], child


def test_validating_the_rows_does_not_import_pandera(child):
    assert "pandera" not in child["heavy"]
