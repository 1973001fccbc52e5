"""`--graphql-workers N`: GraphQL queries executed in N forked processes, so concurrent requests do not queue.

The sandbox is one asyncio process: injected latency is a non-blocking `asyncio.sleep`, but executing a
query (~10 ms of CPU for a page of 100 orders with items) runs on the event loop, so four concurrent
requests wait for each other's execution, which a real API (many servers) does not make them do. With
workers, the event loop still does HTTP, auth, faults, latency and the `received` counts; the query itself
(parse, validate, execute, JSON encoding: the same code and the same work as in-process) runs in a worker
process forked from the sandbox, which reads the store as it was at the fork.

Consistency: the workers hold a snapshot, so anything that may change what a query sees makes the event
loop drop them: an admin POST (faults, clock, touch, reset ...) or a GraphQL mutation (executed in-process)
re-forks them at the next query; any other write (Job/Batch and Event API POSTs, whose effects land later
from asyncio tasks) switches the workers off for the rest of the sandbox's life. Mutations are recognised by
the worker (it parses the document anyway) and handed back to the event loop. Default: 0 workers, everything
in-process as before.

Robustness: a worker that dies (OOM killer, crash) breaks its pool; the query is retried once on a fresh
pool, so the sandbox does not answer 500 to every later query. A worker resets the signal handlers it
inherited from uvicorn (which would turn SIGTERM into a no-op flag in the copy) and dies with the sandbox
(Linux `PR_SET_PDEATHSIG`, elsewhere a thread watching the parent), so killing the sandbox leaves no orphan
holding a copy of the store.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any

import orjson

from fc_assets.sandbox.executor import operation_of
from fc_assets.sandbox.resolvers import RequestContext

if TYPE_CHECKING:
    from fc_assets.sandbox.state import SandboxState

_STATE: SandboxState | None = None  # the forked snapshot, set in the parent just before forking
MUTATION = None
"""What a worker answers for a mutation: the event loop runs it in-process."""


def _refuse_mutation(*_: Any) -> None:
    raise RuntimeError("a query worker cannot record mutations")


def _worker_init(parent: int) -> None:
    """In a new worker: default SIGTERM, no SIGINT (Ctrl-C reaches the whole group; the sandbox's own
    shutdown ends the workers), no asyncio wakeup fd of the parent's loop, and death with the parent."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    else:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the sandbox died before the above took effect
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


def run_query(body: bytes, stuck_cursor: bool, user: dict[str, Any]) -> tuple[int, bytes] | None:
    """In a worker: (status, JSON bytes) for a `/graphql` body, or None when it is a mutation."""
    state = _STATE
    assert state is not None, "run_query runs in a forked worker"
    parsed = orjson.loads(body)
    query = parsed.get("query") if isinstance(parsed, dict) else None
    if isinstance(query, str):
        doc, _ = state.graphql._document(query)
        op = operation_of(doc, parsed.get("operationName")) if doc is not None else None
        if op is not None and op.operation.value != "query":
            return MUTATION
    ctx = RequestContext(
        store=state.store,
        config=state.config,
        stuck_cursor=stuck_cursor,
        user=user,
        record_mutation=_refuse_mutation,
        mutation_error=_refuse_mutation,
    )
    status, out = state.graphql.run(parsed, ctx)
    return status, orjson.dumps(out)


class QueryWorkers:
    """A pool of `n` forked query workers over `state`, dropped and re-forked when the state changes."""

    def __init__(self, state: SandboxState, n: int) -> None:
        self.state, self.n = state, n
        self.enabled = n > 0
        self._pool: ProcessPoolExecutor | None = None

    def _fresh_pool(self) -> ProcessPoolExecutor:
        global _STATE
        if self._pool is None:
            _STATE = self.state  # inherited by the fork (the workers are forked at the first submit)
            self._pool = ProcessPoolExecutor(
                self.n,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_worker_init,
                initargs=(os.getpid(),),
            )
        return self._pool

    async def run(self, body: bytes, stuck_cursor: bool, user: dict[str, Any]) -> tuple[int, bytes] | None:
        """The query's answer from a worker; once more on new workers if a worker died (queries are reads)."""
        for attempt in (1, 2):
            pool = self._fresh_pool()
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    pool, run_query, body, stuck_cursor, user
                )
            except BrokenProcessPool:
                if self._pool is pool:
                    self.invalidate()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def invalidate(self) -> None:
        """The store may have changed: the next query forks new workers."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=False)
            self._pool = None

    def disable(self) -> None:
        """A write whose effects come later (batches, events): queries run in-process from now on."""
        self.enabled = False
        self.invalidate()

    def seen(self, method: str, path: str) -> None:
        """Called for every request before it is served and for an admin request also after (a query may
        have forked new workers while the admin write's body was still arriving); see the module docstring."""
        if not self.enabled or method in ("GET", "HEAD"):
            return
        if path.startswith("/_sandbox"):
            self.invalidate()
        elif path.startswith("/api/"):
            self.disable()
