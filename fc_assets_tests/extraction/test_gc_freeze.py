"""The collector's freeze outlives an extraction in a process that froze its code location at load.

`fc_assets.definitions` ends with `gc.freeze()`; an extraction freezes what exists when it starts and used
to `gc.unfreeze()` everything when it ended, the code location's objects included, so the process's exit
(Python's last collections walk every tracked object) took ~0.8 s more after `dagster asset materialize`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

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
print(json.dumps({"before": before, "after": gc.get_freeze_count(), "rows": rows}))
"""


def test_an_extraction_keeps_the_code_locations_objects_frozen(sandbox):
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
    assert out["before"] > 100_000
    assert out["after"] >= out["before"], out
