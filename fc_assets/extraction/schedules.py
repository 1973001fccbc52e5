"""Jobs and schedules per entity group: the run of the latest complete partition, and a late-updates re-run.

- `<group>_daily` job + `<group>_daily_schedule` (00:30 UTC): yesterday's partition of every entity of the
  group, then each entity's current-state object (`<entity>_current`). Entities switched to hourly partitions (`FC_EXTRACT_HOURLY`) get `<group>_hourly` (HH:30).
- `<group>_late_updates` (04:00 UTC): one single-run backfill over the partitions of the last
  `FC_LATE_UPDATE_DAYS` complete days, for updates that became visible to Fluent's search after the
  regular run read their window. Re-materializing replaces those partitions, so nothing is duplicated.

Schedules start STOPPED (turn them on per deployment in the UI or with `dagster schedule start`).
"""

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from fc_assets.analytics.current_state import CURRENT_GROUP
from fc_assets.extraction.assets import SCHEMA_CHECK, partitions_def
from fc_assets.extraction.entities import EntitySpec

RUN_MINUTE = 30
LATE_UPDATES_HOUR = 4


def group_job(group: str, grain: str, entities: Sequence[EntitySpec]) -> UnresolvedAssetJobDefinition:
    names = [e.name for e in entities if e.group == group and e.grain.name == grain]
    extracted = dg.AssetSelection.assets(*names)
    # the blocking schema checks run with their assets; the freshness checks are evaluated by their sensor
    # after the deadline, not inside the run. Selected by what is kept, not by what is removed: subtracting
    # the freshness checks' keys fails to resolve where they are not defined (e.g. in tests)
    schema = dg.AssetSelection.checks(*(dg.AssetCheckKey(dg.AssetKey(n), SCHEMA_CHECK) for n in names))
    # the entities' current-state objects are refreshed in the same run, before any later run can
    # re-extract a partition away (analytics/current_state.py)
    current = extracted.downstream(depth=1, include_self=False) & dg.AssetSelection.groups(CURRENT_GROUP)
    return dg.define_asset_job(
        f"{group}_{grain}",
        selection=extracted.without_checks() | schema | current,
        description=f"Extract {', '.join(names)} for one {grain} partition (or a range: one run).",
    )


def latest_partition_schedule(job: UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    return dg.build_schedule_from_partitioned_job(job, minute_of_hour=RUN_MINUTE, name=f"{job.name}_schedule")


def late_updates_range(
    scheduled: datetime, days: int, parts: dg.TimeWindowPartitionsDefinition
) -> tuple[str, str] | None:
    """First and last partition keys of the last `days` complete UTC days before `scheduled`, clamped to
    the first partition (`FC_EXTRACT_START_DATE`); None when no complete day is left after the clamp."""
    end = scheduled.replace(hour=0, minute=0, second=0, microsecond=0)
    start = max(end - timedelta(days=max(1, days)), parts.start)
    if start >= end:
        return None
    keys = parts.get_partition_keys_in_time_window(dg.TimeWindow(start, end))
    return (keys[0], keys[-1]) if keys else None


def late_updates_schedule(
    job: UnresolvedAssetJobDefinition, days: int, parts: dg.TimeWindowPartitionsDefinition
) -> dg.ScheduleDefinition:
    group = job.name.rsplit("_", 1)[0]
    name = f"{group}_late_updates" if job.name.endswith("_daily") else f"{job.name}_late_updates"

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=f"0 {LATE_UPDATES_HOUR} * * *",
        execution_timezone="UTC",
        description=f"Re-extract the last {days} days of {job.name} in one run (late updates).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest | dg.SkipReason]:
        span = late_updates_range(context.scheduled_execution_time, days, parts)
        if span is None:
            yield dg.SkipReason(f"no complete day since the first partition ({parts.start:%Y-%m-%d})")
            return
        first, last = span
        yield dg.RunRequest(
            run_key=f"{name}-{last}",
            tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        )

    return _schedule


def build_schedules(
    entities: Sequence[EntitySpec], late_update_days: int, start_date: str
) -> tuple[list[UnresolvedAssetJobDefinition], list[dg.ScheduleDefinition]]:
    """Per (group, grain), in declaration order: a job, its latest-partition schedule, a late-updates one."""
    jobs, schedules = [], []
    for group, grain in dict.fromkeys((e.group, e.grain) for e in entities):
        job = group_job(group, grain.name, entities)
        jobs.append(job)
        parts = partitions_def(grain, start_date)
        schedules += [latest_partition_schedule(job), late_updates_schedule(job, late_update_days, parts)]
    return jobs, schedules
