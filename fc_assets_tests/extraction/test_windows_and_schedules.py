"""Window arithmetic (half-open, inclusive DateRange, splits) and the schedules built per entity group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from fc_assets.extraction.entities import ENTITIES
from fc_assets.extraction.schedules import build_schedules, late_updates_range
from fc_assets.extraction.windows import DAILY, DAY, HOUR, HOURLY, Window

D1 = datetime(2025, 3, 1, tzinfo=UTC)


def test_date_range_is_inclusive_on_the_window_bounds():
    assert Window(D1, D1 + DAY).date_range == {
        "from": "2025-03-01T00:00:00.000Z",
        "to": "2025-03-02T00:00:00.000Z",
    }


@pytest.mark.parametrize("parts", [1, 3, 4, 7])
def test_split_is_contiguous_and_covers_the_window(parts):
    subs = Window(D1, D1 + DAY).split(parts)
    assert len(subs) == parts
    assert subs[0].start == D1 and subs[-1].end == D1 + DAY
    assert all(a.end == b.start for a, b in zip(subs, subs[1:], strict=False))


def test_periods_and_hourly_layout():
    days = list(Window(D1, D1 + 3 * DAY).periods(DAY))
    assert [d.start.day for d in days] == [1, 2, 3]
    hour = next(iter(Window(D1, D1 + DAY).periods(HOUR)))
    assert HOURLY.partition_dir(hour) == "dt=2025-03-01/hour=00"
    with pytest.raises(ValueError):
        Window(D1, D1)


def test_late_updates_range_is_the_last_n_complete_days():
    at = datetime(2025, 3, 10, 4, tzinfo=UTC)
    assert late_updates_range(at, 3, DAILY.partitions_def("2025-01-01")) == ("2025-03-07", "2025-03-09")
    assert late_updates_range(at, 1, HOURLY.partitions_def("2025-01-01")) == (
        "2025-03-09-00:00",
        "2025-03-09-23:00",
    )


def test_a_daily_and_a_late_updates_schedule_per_group():
    jobs, schedules = build_schedules(ENTITIES, late_update_days=3, start_date="2025-01-01")
    groups = {e.group for e in ENTITIES}
    assert {j.name for j in jobs} == {f"{g}_daily" for g in groups}
    assert {s.name for s in schedules} == {f"{g}_daily_schedule" for g in groups} | {
        f"{g}_late_updates" for g in groups
    }

    late = next(s for s in schedules if s.name == "fluent_orders_late_updates")
    with dg.instance_for_test() as instance:
        ctx = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2025, 3, 10, 4, tzinfo=UTC)
        )
        [request] = late.evaluate_tick(ctx).run_requests
    assert request.tags["dagster/asset_partition_range_start"] == "2025-03-07"
    assert request.tags["dagster/asset_partition_range_end"] == "2025-03-09"
    assert request.run_key == "fluent_orders_late_updates-2025-03-09"


def test_hourly_is_a_setting():
    from fc_assets.extraction.definitions import entities_from_env

    entities = {e.name: e for e in entities_from_env({"FC_EXTRACT_HOURLY": "orders"})}
    assert entities["orders"].grain == HOURLY and entities["fulfilments"].grain == DAILY
    jobs, schedules = build_schedules(list(entities.values()), 2, "2025-01-01")
    assert {"fluent_orders_daily", "fluent_orders_hourly"} <= {j.name for j in jobs}
    assert "fluent_orders_hourly_late_updates" in {s.name for s in schedules}


def test_definitions_schedule_yesterday():
    from fc_assets.definitions import defs

    schedule = defs.get_schedule_def("fluent_orders_daily_schedule")
    with dg.instance_for_test() as instance:
        ctx = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2025, 3, 10, 0, 30, tzinfo=UTC)
        )
        [request] = schedule.evaluate_tick(ctx).run_requests
    assert request.partition_key == (datetime(2025, 3, 10) - timedelta(days=1)).strftime("%Y-%m-%d")


def test_late_updates_never_ask_for_days_before_the_first_partition(dagster_instance):
    jobs, schedules = build_schedules(ENTITIES, late_update_days=3, start_date="2026-01-10")
    late = next(s for s in schedules if s.name == "fluent_orders_late_updates")

    def tick(day: int) -> dg.ScheduleExecutionData:
        ctx = dg.build_schedule_context(
            instance=dagster_instance, scheduled_execution_time=datetime(2026, 1, day, 4, tzinfo=UTC)
        )
        return late.evaluate_tick(ctx)

    first_day = tick(10)  # the start date itself: no complete day yet
    assert not first_day.run_requests and first_day.skip_message
    [request] = tick(11).run_requests
    assert request.tags["dagster/asset_partition_range_start"] == "2026-01-10"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-01-10"
    [request] = tick(12).run_requests
    assert request.tags["dagster/asset_partition_range_start"] == "2026-01-10"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-01-11"
    [request] = tick(20).run_requests  # well past the start: the full 3 days
    assert request.tags["dagster/asset_partition_range_start"] == "2026-01-17"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-01-19"
