"""PrioritySlots: a released request slot goes to the waiting chain of the earliest task."""

from __future__ import annotations

import threading
import time

from fc_assets.extraction.request_slots import PrioritySlots


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
