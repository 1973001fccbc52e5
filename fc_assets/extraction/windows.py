"""Update-time windows: half-open `[start, end)` in UTC, and how they map to Fluent's inclusive DateRange.

Fluent's `DateRange {from, to}` includes both ends. A window is queried as `{from: start, to: end}` and rows
with `updatedOn == end` are dropped client-side (they belong to the next window, which queries
`from: end`). This loses nothing at any timestamp precision, unlike `to: end - 1ms`, which would miss an
entity updated at `end - 0.5ms` if the API ever kept sub-millisecond times.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # dagster (~0.8 s) only where partitions are defined, not for a direct extraction
    import dagster as dg

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def iso(ts: datetime) -> str:
    """UTC ISO-8601 with milliseconds and `Z`, the form Fluent documents for `DateTime`."""
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, order=True)
class Window:
    """`[start, end)` in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.end <= self.start:
            raise ValueError(f"empty window: {self.start} .. {self.end}")

    @classmethod
    def of(cls, start: datetime, end: datetime) -> Window:
        return cls(start.astimezone(UTC), end.astimezone(UTC))

    @property
    def date_range(self) -> dict[str, str]:
        """Fluent `DateRange` variables covering the window (inclusive `to`; drop rows at `end`)."""
        return {"from": iso(self.start), "to": iso(self.end)}

    def split(self, parts: int) -> list[Window]:
        """`parts` contiguous sub-windows of equal length (whole milliseconds), in time order."""
        parts = max(1, parts)
        total_ms = int((self.end - self.start) / timedelta(milliseconds=1))
        parts = min(parts, max(1, total_ms))
        cuts = [self.start + timedelta(milliseconds=total_ms * i // parts) for i in range(parts)] + [self.end]
        return [Window(a, b) for a, b in zip(cuts, cuts[1:], strict=False)]

    def periods(self, step: timedelta) -> Iterator[Window]:
        """Consecutive `step`-long windows (days, hours) covering this one; the last may be shorter."""
        start = self.start
        while start < self.end:
            end = min(start + step, self.end)
            yield Window(start, end)
            start = end

    def __str__(self) -> str:
        return f"[{iso(self.start)}, {iso(self.end)})"


@dataclass(frozen=True)
class Grain:
    """How an entity is partitioned: daily (`dt=YYYY-MM-DD`) or hourly (`dt=YYYY-MM-DD/hour=HH`)."""

    name: str
    step: timedelta
    layout: str  # the hive directories, for documentation and metadata

    def partitions_def(self, start_date: str) -> dg.TimeWindowPartitionsDefinition:
        import dagster as dg

        if self.step == DAY:
            return dg.DailyPartitionsDefinition(start_date=start_date, timezone="UTC")
        return dg.HourlyPartitionsDefinition(start_date=f"{start_date}-00:00", timezone="UTC")

    def partition_dir(self, window: Window) -> str:
        """The hive directory of one period (relative to the entity's directory)."""
        day = f"dt={window.start:%Y-%m-%d}"
        return day if self.step == DAY else f"{day}/hour={window.start:%H}"


DAILY = Grain("daily", DAY, "dt=YYYY-MM-DD")
HOURLY = Grain("hourly", HOUR, "dt=YYYY-MM-DD/hour=HH")
