"""What the crash tests' forkserver loads before forking children (crash_harness.py): the ingestion code,
the scenarios, and one validation of each scenario's file, so pandera's lazily imported backends and the
feeds' compiled schemas are in place before the first fork instead of being rebuilt in every child."""

from __future__ import annotations

import tempfile
from pathlib import Path

from fc_assets.ingestion.deliver.plans import plan_for
from fc_assets.resources.storage import Lake
from fc_assets_tests.ingestion_flow.crash_scenarios import SENDERS


def warm_validation() -> None:
    with tempfile.TemporaryDirectory(prefix="fc-crash-warm-") as tmp:
        lake = Lake(f"file://{tmp}/lake")
        for name, sender in SENDERS.items():
            path = Path(tmp) / f"{name}.csv"
            path.write_bytes(sender.body(0))
            plan_for(sender.feed()).validate(path, path.name, lake, f"{name}.parquet", f"{name}.csv")


warm_validation()
