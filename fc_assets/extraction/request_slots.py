"""At most N requests in flight, shared by more cursor chains than that: no stream idles between pages.

With one chain per stream, a stream sends nothing while its chain is between two requests: the answer is
parsed, and at a chain's end the last page is converted and the spool closed before the stream's next
chain can send its first request (under GIL contention 20-60 ms, against ~5 ms between the pages of a
chain). Measured on 30 days at 200 ms with 4 streams: ~0.3 s of each stream's ~7.3 s was such gaps.

`RequestSlots` wraps the client for a run: every page request (nested follow-ups and the token request it
may trigger included) waits for one of `slots` permits and returns it when the page has arrived and been
parsed. The run then keeps more chains going than slots (`extract.CHAINS_PER_SLOT`), so when one chain
is busy between requests another takes its slot at once: `slots` requests stay in flight while there is
work, which is what `pages x latency / slots` assumes. The number in flight (what the API and its rate
limit see) never exceeds `slots`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

from fc_assets.extraction.fetch import Cancelled, GraphQLPager, PageLike


class RequestSlots:
    """A `GraphQLPager` over `client` with at most `slots` page requests in flight across its threads."""

    def __init__(
        self, client: GraphQLPager, slots: int, on_failure: Callable[[BaseException], None] | None = None
    ) -> None:
        """`on_failure` gets a request's error before its slot is released (the run's `Abort.fail`), so a
        chain waiting for that slot sees the run cancelled instead of sending one more request."""
        self._client = client
        self._slots = threading.BoundedSemaphore(max(1, slots))
        self._on_failure = on_failure
        self.retailer_id = client.retailer_id

    def paginate(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        connection_path: str | None = None,
        page_size: int | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[PageLike]:
        pages = iter(
            self._client.paginate(
                query, variables, connection_path=connection_path, page_size=page_size, cancel=cancel
            )
        )
        try:
            while True:
                with self._slots:  # the page's request is sent, answered and parsed inside next()
                    if cancel is not None and cancel.is_set():  # failed while this chain waited for a slot
                        raise Cancelled
                    try:
                        page = next(pages, None)
                    except Cancelled:
                        raise
                    except BaseException as exc:
                        if self._on_failure is not None:
                            self._on_failure(exc)
                        raise
                if page is None:
                    return
                yield page
                if getattr(page, "has_next_page", True) is False:
                    return  # the last page: no slot taken just to learn that the chain has ended
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()
