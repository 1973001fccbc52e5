"""Dates never depend on the machine's time zone (connector-pitfalls §2 item 29: the SDK read
"01/15/2025" as 2025-01-14 under TZ=Asia/Tokyo). The same file is validated in subprocesses with
TZ=UTC and TZ=Asia/Tokyo; both give the same UTC instants, computed from the feed's declared zone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

SCRIPT = r"""
import io, json
from fc_assets.ingestion.feeds import inventory_feed
from fc_assets.ingestion.read.validate import validate_file
feed = inventory_feed(timezone="Europe/Berlin", date_formats=("%m/%d/%Y", "%d.%m.%Y %H:%M"))
data = "\n".join(["sku,location,qty,expected_on", "A,L,1,2025-01-15", "B,L,1,2025-01-15T23:30:00",
                  "C,L,1,2025-01-15T10:00:00+09:00", "D,L,1,01/15/2025", "E,L,1,15.01.2025 23:30",
                  "F,L,1,2025-07-01 12:00", "G,L,1,2025-01-15T08:00:00Z", "H,L,1,13/15/2025"]).encode()
run = validate_file(feed, io.BytesIO(data), name="d.csv")
out = [v.isoformat() for b in run for v in b.column("expected_on").to_pylist()]
print(json.dumps({"dates": out, "rejected": run.report.rejected}))
"""

EXPECTED = [
    "2025-01-14T23:00:00+00:00",  # a date is midnight in the feed's zone (CET)
    "2025-01-15T22:30:00+00:00",
    "2025-01-15T01:00:00+00:00",  # an explicit offset wins
    "2025-01-14T23:00:00+00:00",  # declared format, feed zone
    "2025-01-15T22:30:00+00:00",
    "2025-07-01T10:00:00+00:00",  # summer time (CEST)
    "2025-01-15T08:00:00+00:00",
]


def test_dates_are_the_same_under_any_machine_time_zone():
    procs = {
        tz: subprocess.Popen(
            [sys.executable, "-c", SCRIPT],
            env={**os.environ, "TZ": tz},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tz in ("UTC", "Asia/Tokyo")
    }
    results = {}
    for tz, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
        results[tz] = json.loads(stdout)
    assert results["UTC"] == results["Asia/Tokyo"] == {"dates": EXPECTED, "rejected": 1}
