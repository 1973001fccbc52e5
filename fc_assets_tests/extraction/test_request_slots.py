"""PrioritySlots: a released request slot goes to the waiting chain of the earliest task."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from fc_assets.extraction.fetch import Cancelled
from fc_assets.extraction.request_slots import PrioritySlots, RequestSlots
from fc_assets.resources.fluent import FluentClient, FluentGraphQLError


def test_a_released_slot_goes_to_the_earliest_task_and_never_more_than_the_slots_are_held():
    slots = PrioritySlots(1)
    slots.acquire(0)  # the slot is taken: everyone below waits
    order: list[int] = []
    held = {"now": 0, "max": 0}
    lock = threading.Lock()

    def chain(priority: int) -> None:
        slots.acquire(priority)
        with lock:
            held["now"] += 1
            held["max"] = max(held["max"], held["now"])
            order.append(priority)
            held["now"] -= 1
        slots.release()

    threads = []
    for priority in (7, 2, 9, 4):  # they queue in this order
        threads.append(threading.Thread(target=chain, args=(priority,)))
        threads[-1].start()
        deadline = time.monotonic() + 5
        while len(slots._waiters) < len(threads) and time.monotonic() < deadline:
            time.sleep(0.001)
    assert len(slots._waiters) == 4
    slots.release()
    for t in threads:
        t.join(5)
    assert order == [2, 4, 7, 9]  # not the order they came in (7, 2, 9, 4)
    assert held["max"] == 1
    slots.acquire(3)  # all released: the slot is free again, taken without waiting
    slots.release()


WAIT_S = 10.0


def first_page_query() -> tuple[str, dict]:
    from fc_assets.extraction.entities import ORDERS
    from fc_assets.extraction.fetch import query_text, window_variables
    from fc_assets.extraction.windows import Window

    end = datetime.now(UTC)
    return query_text(ORDERS.sources[0].query), window_variables(
        ORDERS, Window(end - timedelta(days=60), end), "1"
    )


def test_the_slot_is_handed_on_while_a_page_is_decoded(sandbox):
    """One slot, two chains against the sandbox: the first chain's page, once its body is in, is held in
    its decoder until the second chain's page has been answered. Had the first chain kept the slot while
    decoding, the second could not send, and the decoder would wait in vain."""
    query, variables = first_page_query()
    second_answered = threading.Event()
    waited: list[bool] = []

    def decode_first(body: bytes) -> None:
        waited.append(second_answered.wait(WAIT_S))
        return None  # the client reads the page the usual way

    def decode_second(body: bytes) -> None:
        second_answered.set()
        return None

    with FluentClient(sandbox.base_url, "fc-sandbox", "fc-sandbox-secret", page_size=5) as client:
        slots = RequestSlots(client, 1)
        first_started = threading.Event()

        def chain(index: int, decode) -> list:
            pages = slots.for_task(index).paginate(
                query, variables, connection_path="orders", page_size=5, decode=decode
            )
            first_started.set()
            page = next(iter(pages))
            pages.close()
            return page.nodes

        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(chain, 0, decode_first)
            first_started.wait(WAIT_S)
            second = pool.submit(chain, 1, decode_second)
            assert len(first.result(2 * WAIT_S)) == 5 and len(second.result(2 * WAIT_S)) == 5
    assert waited == [True]


def test_a_page_with_graphql_errors_keeps_its_slot_until_the_failure_is_recorded(sandbox_clean):
    """A success status with GraphQL errors in the body is not released on arrival: the failure is recorded
    (`on_failure`) before the waiting chain gets the slot, so that chain sends nothing."""
    query, variables = first_page_query()
    sandbox_clean.admin.set_faults(
        latency_ms=100,
        graphql_errors={"match": '"updated"', "message": "C0020E: missing permissions", "code": "C0020E"},
    )
    failed = threading.Event()
    sent: list[str] = []

    class Counting(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/graphql":
                sent.append(threading.current_thread().name)
            return super().handle_request(request)

    with FluentClient(
        sandbox_clean.base_url, "fc-sandbox", "fc-sandbox-secret", transport=Counting()
    ) as client:
        client.graphql("query { me { ref } }")  # the token first
        sent.clear()
        slots = RequestSlots(client, 1, on_failure=lambda exc: failed.set())

        def decode(body: bytes) -> None:
            # give the other chain time to send, should it have the slot now
            deadline = time.monotonic() + 0.5
            while len(sent) < 2 and time.monotonic() < deadline:
                time.sleep(0.005)
            return None

        def chain(index: int) -> None:
            pages = slots.for_task(index).paginate(
                query, variables, connection_path="orders", cancel=failed, decode=decode
            )
            list(pages)

        with ThreadPoolExecutor(2, thread_name_prefix="chain") as pool:
            futures = [pool.submit(chain, 0)]
            deadline = time.monotonic() + WAIT_S
            while not sent and time.monotonic() < deadline:  # the first chain's request is out
                time.sleep(0.005)
            futures.append(pool.submit(chain, 1))
            with pytest.raises(FluentGraphQLError, match="C0020E"):
                futures[0].result(WAIT_S)
            with pytest.raises(Cancelled):
                futures[1].result(WAIT_S)
    assert len(sent) == 1
