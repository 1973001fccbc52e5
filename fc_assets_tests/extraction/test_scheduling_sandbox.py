"""The run's scheduling against the Fluent sandbox: chains share the request slots, later periods keep being
queued while the oldest waits, and every day's object still holds exactly that day's orders, once each."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from fc_assets.extraction.entities import ORDERS
from fc_assets.extraction.extract import extract_periods
from fc_assets.extraction.windows import DAY, Window, iso
from fc_assets.resources.fluent import FluentClient
from fc_assets.resources.storage import Lake

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
GATE_TIMEOUT_S = 20.0


class InFlight(httpx.HTTPTransport):
    """Counts GraphQL requests in flight at once, and which pool threads sent them."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.now = self.max = 0
        self.senders: set[str] = set()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/graphql":
            return super().handle_request(request)
        with self.lock:
            self.now += 1
            self.max = max(self.max, self.now)
            self.senders.add(threading.current_thread().name.removesuffix("-prefetch"))
        try:
            response = super().handle_request(request)
            response.read()
            return response
        finally:
            with self.lock:
                self.now -= 1


class HoldFirstDay:
    """Holds the first day's chain before its first page until every other day has sent a request: the
    oldest period then waits on a chain that only moves once the run has queued all later periods."""

    def __init__(self, client: FluentClient, days: list[Window]) -> None:
        self.client = client
        self.retailer_id = client.retailer_id
        self.first = days[0].start
        self.waiting_for = {d.start.date() for d in days[1:]}
        self.lock = threading.Lock()
        self.others_started = threading.Event()
        self.held_s: float | None = None

    def paginate(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Iterator[Any]:
        updated = (variables or {}).get("updated")
        if updated is not None:
            start = datetime.fromisoformat(updated["from"])
            if start == self.first:
                began = time.monotonic()
                self.others_started.wait(GATE_TIMEOUT_S)
                self.held_s = time.monotonic() - began
            else:
                with self.lock:
                    self.waiting_for.discard(start.date())
                    if not self.waiting_for:
                        self.others_started.set()
        yield from self.client.paginate(query, variables, **kw)


@pytest.fixture
def slow_sandbox(sandbox_clean):
    sandbox_clean.admin.set_faults(latency_ms=20)  # requests overlap, so the slots are really shared
    return sandbox_clean


def test_chains_share_the_slots_and_later_days_are_queued_while_the_first_waits(slow_sandbox, tmp_path):
    days = [Window(TODAY - (7 - i) * DAY, TODAY - (6 - i) * DAY) for i in range(6)]
    lake = Lake(f"file://{tmp_path}/lake")
    transport = InFlight()
    with FluentClient(
        slow_sandbox.base_url, "fc-sandbox", "fc-sandbox-secret", page_size=10, transport=transport
    ) as client:
        held = HoldFirstDay(client, days)
        results = list(extract_periods(ORDERS, days, client=held, lake=lake, concurrency=2))

    # the first day was released by the later days' requests (on the old schedule, which queued tasks
    # only between periods, the last days were never sent while it waited: held 20.0 s, the timeout)
    assert held.others_started.is_set()
    assert held.held_s is not None and held.held_s < GATE_TIMEOUT_S
    # never more than `concurrency` requests in flight, from more chains than that
    assert transport.max == 2
    assert len(transport.senders) > 2
    assert [r.window for r in results] == days
    total = 0
    for day, result in zip(days, results, strict=True):
        ids = lake.read_parquet(result.key, columns=["id"]).column("id").to_pylist()
        assert len(ids) == len(set(ids)), day  # nothing twice, also across sub-window edges
        expected = slow_sandbox.admin.counts("orders", iso(day.start), iso(day.end))["ids"]
        assert sorted(ids) == sorted(expected), day  # nothing lost
        assert result.rows == len(ids)
        total += len(ids)
    assert total > 6 * 10  # the days take several pages each
