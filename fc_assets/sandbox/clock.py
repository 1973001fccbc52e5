"""The sandbox clock: real time plus an offset, or a pinned instant, settable through the admin API.

Jobs close at the UTC midnight of this clock and writes get their `updatedOn` from it, so tests can cross
a midnight without waiting for one.
"""

from __future__ import annotations

import threading
import time

from fc_assets.sandbox.datetimes import DAY_MS


class SandboxClock:
    """Milliseconds since the epoch. `set(ms)` moves the clock there; it then keeps running."""

    def __init__(self) -> None:
        self._offset_ms = 0
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self._offset_ms

    def set(self, ms: int) -> None:
        with self._lock:
            self._offset_ms = ms - int(time.time() * 1000)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset_ms += int(seconds * 1000)

    def reset(self) -> None:
        with self._lock:
            self._offset_ms = 0

    def next_midnight_ms(self, ms: int) -> int:
        """The first UTC midnight strictly after `ms`."""
        return (ms // DAY_MS + 1) * DAY_MS
