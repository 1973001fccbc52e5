"""At most N requests in flight, shared by more cursor chains than that: no stream idles between pages.

With one chain per stream, a stream sends nothing while its chain is between two requests: the answer is
parsed, and at a chain's end the last page is converted and the spool closed before the stream's next
chain can send its first request (under GIL contention 20-60 ms, against ~5 ms between the pages of a
chain). Measured on 30 days at 200 ms with 4 streams: ~0.3 s of each stream's ~7.3 s was such gaps.

`RequestSlots` wraps the client for a run: every page request (nested follow-ups and the token request it
may trigger included) waits for one of `slots` permits and returns it as soon as the page's body has
arrived with a success status and without GraphQL `errors` (the client hands it to the page decoder, which
needs no slot: the next request goes out while it parses), else once the page is parsed or its error has
been recorded, so a chain waiting for the slot sees the run failed before it sends. Holding the slot
through the parse cost ~11-15 ms per page (30 days, 229 pages, 4 streams, 50 ms: elapsed / (pages x mean
round trip / 4) 1.13 -> 1.06, 8 of 8 interleaved pairs, load 2.3-3.0; elapsed / floor median 1.24 ->
1.13). The run then keeps more chains going than slots (`extract.CHAINS_PER_SLOT`), so when one chain is
busy between requests another takes its slot at once: `slots` requests stay in flight while there is
work, which is what `pages x latency / slots` assumes. The number in flight (what the API and its rate
limit see) never exceeds `slots`: after a body without errors the client sends nothing more for that page
(it retries only on error statuses and GraphQL errors).

A freed slot goes to the waiting chain of the earliest task (`for_task(index)`), not to whichever waited
longest: the oldest periods progress as with one chain per slot and their objects are written while the
run goes on, and the extra chains only take slots nobody older wants. First come, first served left more
chains of the last periods half done near the end, so more objects were written after the last page
(paired runs at 50 ms: 0.19-0.73 s after the last response, against 0.03-0.15 s with one chain per slot;
0.03-0.29 s with this order).
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

from fc_assets.extraction.fetch import Cancelled, GraphQLPager, PageLike


class PrioritySlots:
    """`slots` permits; a released one is handed to the waiter with the lowest priority value."""

    def __init__(self, slots: int) -> None:
        self._free = max(1, slots)
        self._lock = threading.Lock()
        self._waiters: list[tuple[int, int, threading.Event]] = []
        self._order = itertools.count()  # equal priorities: first come, first served

    def acquire(self, priority: int) -> None:
        with self._lock:
            if self._free and not self._waiters:
                self._free -= 1
                return
            handed = threading.Event()
            heapq.heappush(self._waiters, (priority, next(self._order), handed))
        handed.wait()  # set by `release`, which hands its permit over: `_free` is not incremented

    def release(self) -> None:
        with self._lock:
            if self._waiters:
                heapq.heappop(self._waiters)[2].set()
            else:
                self._free += 1


class RequestSlots:
    """At most `slots` page requests in flight across the chains of a run (`for_task` gives a chain its
    `GraphQLPager`)."""

    def __init__(
        self, client: GraphQLPager, slots: int, on_failure: Callable[[BaseException], None] | None = None
    ) -> None:
        """`on_failure` gets a request's error before its slot is released (the run's `Abort.fail`), so a
        chain waiting for that slot sees the run cancelled instead of sending one more request."""
        self._client = client
        self._slots = PrioritySlots(slots)
        self._on_failure = on_failure

    def for_task(self, index: int) -> TaskPager:
        return TaskPager(self, index)

    def paginate(
        self,
        priority: int,
        query: str,
        variables: dict[str, Any] | None,
        *,
        connection_path: str | None,
        page_size: int | None,
        cancel: threading.Event | None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> Iterator[PageLike]:
        held = False

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self._slots.release()

        def release_then_decode(body: bytes) -> Any:
            # the client decodes only a body it got with a success status; without GraphQL errors in it
            # nothing of this request can be retried or fail at the API any more (a malformed page still
            # fails, after the release): the next request may go while this page is parsed. A value or field
            # spelled "errors" only keeps the slot until the page is parsed, as before.
            if b'"errors"' not in body:
                release()
            return decode(body)  # type: ignore[misc]  (only passed on when there is a decoder)

        # (clients without a page decoder: the slot is released once the page is parsed)
        extra = {"decode": release_then_decode} if decode is not None else {}
        pages = iter(
            self._client.paginate(
                query, variables, connection_path=connection_path, page_size=page_size, cancel=cancel, **extra
            )
        )
        try:
            while True:
                self._slots.acquire(priority)
                held = True
                try:  # the page's request is sent, answered and (unless released on arrival) parsed in next()
                    if cancel is not None and cancel.is_set():  # failed while this chain waited for a slot
                        raise Cancelled
                    page = next(pages, None)
                except Cancelled:
                    raise
                except BaseException as exc:
                    if self._on_failure is not None:
                        self._on_failure(exc)
                    raise
                finally:
                    release()
                if page is None:
                    return
                yield page
                if getattr(page, "has_next_page", True) is False:
                    return  # the last page: no slot taken just to learn that the chain has ended
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()


class TaskPager:
    """The `GraphQLPager` of one task's chain: its requests wait for a slot with the task's priority."""

    def __init__(self, slots: RequestSlots, index: int) -> None:
        self._slots = slots
        self._index = index
        self.retailer_id = slots._client.retailer_id

    def paginate(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        connection_path: str | None = None,
        page_size: int | None = None,
        cancel: threading.Event | None = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> Iterator[PageLike]:
        return self._slots.paginate(
            self._index,
            query,
            variables,
            connection_path=connection_path,
            page_size=page_size,
            cancel=cancel,
            decode=decode,
        )
