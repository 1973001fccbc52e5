"""Run an iterator in a background thread, a step or two ahead of its consumer.

Used where the producer waits on I/O or native code that releases the GIL: the extraction's cursor chains
(the next page's request goes out while the current page is converted) and the ingestion readers (the next
chunk is parsed while this one is validated). At most `depth` items wait, so memory stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_END = object()


def prefetch(items: Iterator[T], depth: int = 1, *, name: str | None = None) -> Iterator[T]:
    """The items of `items`, in order, produced one step ahead by a background thread.

    The thread runs `items` (e.g. `fetch_pages`, so the next HTTP request is sent while the caller works on
    the current page) and hands items over through a queue of `depth`: at most `depth` items wait, one more
    is being produced. An exception of `items` is raised here, after the items before it. When the caller
    stops early (its own exception, `close()`), the thread stops at its next hand-over — at most one
    request later — closes `items` and is joined before this generator returns, so nothing of the chain
    outlives it.
    """
    handover: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(entry: tuple[Any, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                handover.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_END, None))
        except BaseException as exc:  # handed to the consumer, raised there
            put((_END, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(
        target=produce, name=name or f"{threading.current_thread().name}-prefetch", daemon=True
    )
    thread.start()
    try:
        while True:
            item, exc = handover.get()
            if item is _END:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        thread.join()
