"""Freshness checks: the UI marks an entity overdue when its latest complete partition is not materialized by
a deadline, and a sensor evaluates them (turn `extraction_freshness_sensor` on, then alert on failed checks).

One `freshness_check` per extraction asset, built with `dg.build_time_partition_freshness_checks`: it
looks at the most recent *partition* (yesterday, or the last hour), so a backfill of an old day does not
make a stale entity look fresh. Deadlines leave the schedules room (daily runs at 00:30 UTC, hourly at
HH:30, both retried by the asset's `RetryPolicy`) and come before the 04:00 late-updates re-run:

- daily: `0 3 * * *` (UTC) -> after 03:00 the check fails until yesterday's partition is materialized;
- hourly: `50 * * * *` -> after HH:50 the check fails until the previous hour's partition is.

Dagster 1.13 marks these builders as superseded by asset `FreshnessPolicy`s, whose evaluation is per
asset, not per partition (any materialization counts), so they are kept, with that FutureWarning silenced.
"""

import warnings
from collections.abc import Sequence

import dagster as dg
from dagster._utils.warnings import SupersessionWarning

from fc_assets.extraction.windows import DAY, Grain

DAILY_DEADLINE = "0 3 * * *"
HOURLY_DEADLINE = "50 * * * *"
SENSOR_NAME = "extraction_freshness_sensor"


def deadline_cron(grain: Grain) -> str:
    return DAILY_DEADLINE if grain.step == DAY else HOURLY_DEADLINE


def build_freshness_checks(
    assets_by_grain: Sequence[tuple[Grain, dg.AssetsDefinition]],
) -> list[dg.AssetChecksDefinition]:
    """One WARN-severity check per asset (non-blocking: it never stops a run), grouped by deadline."""
    by_deadline: dict[str, list[dg.AssetsDefinition]] = {}
    for grain, asset in assets_by_grain:
        by_deadline.setdefault(deadline_cron(grain), []).append(asset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SupersessionWarning)
        return [
            check
            for deadline, assets in by_deadline.items()
            for check in dg.build_time_partition_freshness_checks(
                assets=assets, deadline_cron=deadline, timezone="UTC"
            )
        ]


def build_freshness_sensor(checks: Sequence[dg.AssetChecksDefinition]) -> dg.SensorDefinition:
    """Evaluates each check after its deadline passes (stopped by default, like the schedules)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SupersessionWarning)
        return dg.build_sensor_for_freshness_checks(freshness_checks=checks, name=SENSOR_NAME)
