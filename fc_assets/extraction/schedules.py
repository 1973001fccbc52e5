"""Jobs and schedules per entity group: the daily run of yesterday's partition, and a late-updates re-run.

- `<group>_daily` (00:30 UTC): the latest complete partition of every entity in the group.
- `<group>_late_updates` (04:00 UTC): one single-run backfill over the last `FC_LATE_UPDATE_DAYS` complete
  days, for updates that became visible to Fluent's search after the daily run read their window.
  Re-materializing replaces those partitions, so nothing is duplicated.

Schedules start STOPPED (turn them on per deployment in the UI or with `dagster schedule start`).
"""

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from fc_assets.extraction.entities import EntitySpec

DAILY_MINUTE = 30
LATE_UPDATES_HOUR = 4


def group_selection(
    group: str, entities: Sequence[EntitySpec], extra: Sequence[str] = ()
) -> dg.AssetSelection:
    names = [e.name for e in entities if e.group == group]
    return dg.AssetSelection.assets(*names, *extra)


def daily_job(
    group: str, entities: Sequence[EntitySpec], extra: Sequence[str] = ()
) -> UnresolvedAssetJobDefinition:
    return dg.define_asset_job(
        f"{group}_daily",
        selection=group_selection(group, entities, extra),
        description=f"Extract the {group} entities for one day (or a range: one run).",
    )


def daily_schedule(job: UnresolvedAssetJobDefinition) -> dg.ScheduleDefinition:
    return dg.build_schedule_from_partitioned_job(
        job, minute_of_hour=DAILY_MINUTE, name=f"{job.name}_schedule"
    )


def late_updates_range(scheduled: datetime, days: int) -> tuple[str, str]:
    """The last `days` complete UTC days before `scheduled`: (first, last) partition keys."""
    last = (scheduled - timedelta(days=1)).date()
    first = last - timedelta(days=max(1, days) - 1)
    return first.isoformat(), last.isoformat()


def late_updates_schedule(group: str, job: UnresolvedAssetJobDefinition, days: int) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{group}_late_updates",
        job=job,
        cron_schedule=f"0 {LATE_UPDATES_HOUR} * * *",
        execution_timezone="UTC",
        description=f"Re-extract the last {days} days of {group} in one run (late updates).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
        first, last = late_updates_range(context.scheduled_execution_time, days)
        yield dg.RunRequest(
            run_key=f"{group}-late-{last}",
            tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        )

    return _schedule


def build_schedules(
    entities: Sequence[EntitySpec],
    late_update_days: int,
    extra_by_group: dict[str, Sequence[str]] | None = None,
) -> tuple[list[UnresolvedAssetJobDefinition], list[dg.ScheduleDefinition]]:
    """A daily job + schedule and a late-updates schedule per group (in declaration order)."""
    jobs, schedules = [], []
    for group in dict.fromkeys(e.group for e in entities):
        job = daily_job(group, entities, (extra_by_group or {}).get(group, ()))
        jobs.append(job)
        schedules += [daily_schedule(job), late_updates_schedule(group, job, late_update_days)]
    return jobs, schedules
