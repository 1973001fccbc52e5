"""`prefetch`: a cursor chain's next request runs while the current page is converted; order, errors, stop."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from fc_assets.extraction.entities import ORDERS
from fc_assets.extraction.extract import extract_periods
from fc_assets.extraction.windows import DAY, Window
from fc_assets.prefetch import prefetch
from fc_assets.resources.fluent_errors import FluentHTTPError
from fc_assets.resources.storage import Lake
from fc_assets_tests.extraction.fake_fluent import FakeFluent, make_orders

D1 = datetime(2025, 3, 1, tzinfo=UTC)


def test_items_keep_their_order_and_the_next_one_is_produced_meanwhile():
    produced: list[int] = []
    second_started = threading.Event()

    def pages():
        for i in range(50):
            produced.append(i)
            if i == 1:
                second_started.set()
            yield i

    got = []
    for i in prefetch(pages(), 1):
        if i == 0:
            # the consumer still holds page 0: page 1 is fetched in the background anyway
            assert second_started.wait(5)
        got.append(i)
    assert got == list(range(50))
    assert produced == list(range(50))


def test_the_producers_error_comes_after_the_items_before_it():
    def pages():
        yield 1
        yield 2
        raise FluentHTTPError("POST", "/graphql", 503, "injected", attempts=6)

    got = []
    with pytest.raises(FluentHTTPError):
        for i in prefetch(pages(), 1):
            got.append(i)
    assert got == [1, 2]


def test_a_consumer_that_stops_stops_and_closes_the_producer():
    produced: list[int] = []
    closed = threading.Event()
    threads_before = threading.active_count()

    def pages():
        try:
            for i in range(1000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    stream = prefetch(pages(), 1)
    with pytest.raises(RuntimeError):
        for i in stream:
            if i == 3:
                raise RuntimeError("conversion failed")
    stream.close()
    assert closed.is_set()  # the source generator was closed (an HTTP chain would stop here)
    assert len(produced) <= 3 + 1 + 2  # at most the queue (1) plus one in production ran ahead
    assert threading.active_count() == threads_before  # the fetch thread was joined


def test_a_failure_mid_chain_writes_nothing_and_leaves_no_thread(tmp_path):
    lake = Lake(f"file://{tmp_path}/lake")
    threads_before = threading.active_count()
    fake = FakeFluent({"orders": make_orders(D1, 400)}, fail_after_pages={"orders": 5})
    with pytest.raises(FluentHTTPError):
        list(
            extract_periods(
                ORDERS, [Window(D1, D1 + DAY)], client=fake, lake=lake, concurrency=2, page_size=20
            )
        )
    assert not lake.list_files()
    assert threading.active_count() == threads_before
