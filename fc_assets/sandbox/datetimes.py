"""Fluent's DateTime wire format: ISO-8601 in, `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC) out; epoch ms inside.

The store keeps every timestamp as integer milliseconds (fast to sort and compare in numpy); formatting
caches the date part per day because a page of orders formats over a thousand timestamps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache

DAY_MS = 86_400_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MS = timedelta(milliseconds=1)


@lru_cache(maxsize=4096)
def _day_prefix(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%dT")


_formatted: dict[int, str] = {}


def iso_ms(ms: int | None) -> str | None:
    """Epoch milliseconds → `2024-05-01T13:45:07.123Z` (None stays None); recent results are memoised
    (an order's items repeat its timestamps)."""
    if ms is None:
        return None
    hit = _formatted.get(ms)
    if hit is not None:
        return hit
    if len(_formatted) > 200_000:
        _formatted.clear()
    text = _formatted[ms] = _format(ms)
    return text


def _format(ms: int) -> str:
    day, rest = divmod(int(ms), DAY_MS)
    secs, milli = divmod(rest, 1000)
    hours, secs = divmod(secs, 3600)
    minutes, secs = divmod(secs, 60)
    return f"{_day_prefix(day)}{hours:02d}:{minutes:02d}:{secs:02d}.{milli:03d}Z"


def parse_iso_ms(text: str) -> int:
    """ISO-8601 → epoch ms; a value without a zone is UTC (as Fluent documents). ValueError if unreadable."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"not an ISO-8601 date-time: {text!r}")
    value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return ms_of(value)


def ms_of(value: datetime) -> int:
    """Exact epoch milliseconds (integer arithmetic: no float rounding of `.123`)."""
    return (value - EPOCH) // ONE_MS
