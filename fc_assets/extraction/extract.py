"""Extract an entity for a run of consecutive periods (days): parallel sub-window streams, one object each.

Each period `[start, end)` becomes tasks = sources x scope values x sub-windows (enough sub-windows for
about 2 x `concurrency` tasks in the run: 8 for one day, 1 per day for a long backfill, whose last
`concurrency` days get `concurrency` each so the run ends on short chains: `tail_parts`). A thread pool
of `CHAINS_PER_SLOT x concurrency` threads pages every task — each task is its own cursor chain — into a
local spool file, the chains sharing `concurrency` request slots (`request_slots`); the main thread takes
the periods in order and, once all tasks of a period are done, streams their spools *in task order*
(source, scope, time) into `<lake>/fluent/<entity>/dt=<day>/part-0.parquet` through `Lake.atomic_write`.
So:

- speed: `concurrency` requests in flight while there is work: a chain between two requests (parsing a
  page, or converting its last one) leaves its slot to another chain, also across the day boundary of a
  multi-day run (tasks of later periods are queued while earlier ones finish, whenever any task ends), and
  each chain is pipelined (`fetch.prefetch`: page k+1 is requested while page k is converted), so the wall
  time approaches `pages x latency / concurrency`;
- deterministic output: row order depends on the task order and the API's order, not on thread timing;
- bounded memory: a chain holds at most 3 pages (converting, queued, being fetched); the writer holds one
  row group (freed as soon as it is written, see `validation._drop_accessor_cycle`); spools are on disk;
- complete or fail: the first chain to fail stops every other one before its next request (at most the
  request in flight completes) and its error propagates at once, whichever period or task it belongs to,
  before the period's object is committed: the object either covers the whole period or is not written
  (no `_tmp` leftover);
- window edges: each task queries its sub-window inclusively and keeps `start <= updatedOn < end`; the row
  at `end` is kept by the next sub-window / period instead.
"""

from __future__ import annotations

import gc
import logging
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from fc_assets.extraction.entities import PART_FILE, EntitySpec, Source
from fc_assets.extraction.fetch import (
    Cancelled,
    GraphQLPager,
    check_cancelled,
    fetch_pages,
    list_scope_values,
)
from fc_assets.extraction.node_batches import BatchBuilder
from fc_assets.extraction.parquet_writer import RowGroupWriter, Spool
from fc_assets.extraction.request_slots import RequestSlots
from fc_assets.extraction.validation import ValidationReport
from fc_assets.extraction.windows import Window
from fc_assets.prefetch import prefetch
from fc_assets.resources.fluent_errors import FluentDataError
from fc_assets.resources.storage import Lake

logger = logging.getLogger("fc_assets.extraction")

PREVIEW_ROWS = 5
PREFETCH_PAGES = 1
"""Pages a chain's fetch thread may have waiting for conversion (plus one being fetched): 1 is enough to
keep the request in flight, since converting a page takes a few ms against tens of ms per request."""


@dataclass(frozen=True)
class Task:
    """One cursor chain: a source over a sub-window (for one scope value)."""

    index: int
    source: Source
    window: Window
    scope_value: dict[str, Any] | None = None


class Abort:
    """The first error of any stream of a run. Recording it sets `event`, which every stream checks before
    each request, so the siblings stop within the round trip they are in."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: BaseException | None = None
        self._lock = threading.Lock()

    def fail(self, error: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = error
        self.event.set()

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error


@dataclass
class StreamResult:
    spool: Spool
    pages: int = 0
    requests: int = 0
    boundary_rows: int = 0  # rows at exactly the sub-window's end, left to the next window
    out_of_window: int = 0  # rows the API returned outside the queried range (dropped, reported)
    out_of_window_sample: str | None = None


@dataclass
class PartitionResult:
    """What one period produced; `metadata()` is what the asset records for its partition."""

    entity: str
    window: Window
    key: str  # lake key relative to the root
    uri: str
    rows: int
    pages: int
    requests: int
    bytes: int
    row_groups: int
    tasks: int
    boundary_rows: int
    duration_s: float
    validation: ValidationReport
    preview: pa.Table | None = field(default=None, repr=False)

    def metadata(self) -> dict[str, Any]:
        return {
            "dagster/row_count": self.rows,
            "rows": self.rows,
            "pages": self.pages,
            "requests": self.requests,
            "bytes": self.bytes,
            "row_groups": self.row_groups,
            "streams": self.tasks,
            "boundary_rows_left_to_next_window": self.boundary_rows,
            "duration_s": round(self.duration_s, 3),
            "validation_failures": self.validation.failure_count,
            "window_start": self.window.start.isoformat(),
            "window_end": self.window.end.isoformat(),
            "uri": self.uri,
        }


def in_window(table: pa.Table | pa.RecordBatch, column: str, window: Window) -> pa.Array:
    ts = table.column(column)
    return pc.and_(
        pc.greater_equal(ts, pa.scalar(window.start, ts.type)), pc.less(ts, pa.scalar(window.end, ts.type))
    )


def stream_task(
    client: GraphQLPager,
    spec: EntitySpec,
    task: Task,
    builder: BatchBuilder,
    spool_dir: Path,
    *,
    page_size: int | None,
    abort: Abort,
) -> StreamResult:
    """Page one task into its spool, keeping only rows inside the task's half-open window.

    Its own error is recorded in `abort` (stopping the other streams) before it propagates; it stops with
    `Cancelled` when another stream failed first.
    """
    try:
        check_cancelled(abort.event)  # queued behind a stream that has failed since
        return _stream(client, spec, task, builder, spool_dir, page_size, abort)
    except Cancelled:
        raise
    except BaseException as exc:
        abort.fail(exc)
        raise


def _stream(
    client: GraphQLPager,
    spec: EntitySpec,
    task: Task,
    builder: BatchBuilder,
    spool_dir: Path,
    page_size: int | None,
    abort: Abort,
) -> StreamResult:
    result = StreamResult(Spool(spool_dir / f"task-{task.index:05d}.arrows", builder.schema))
    col = spec.updated_column
    try:
        pages = fetch_pages(
            client,
            spec,
            task.source,
            task.window,
            scope_value=task.scope_value,
            page_size=page_size,
            cancel=abort.event,
        )
        # the next page's request is in flight while this thread converts and spools the current one
        with closing(prefetch(pages, PREFETCH_PAGES)) as pipelined, _failing_first(abort):
            for nodes, requests in pipelined:
                result.pages += 1
                result.requests += requests
                if not nodes:
                    continue
                try:
                    batch = builder.build(nodes)
                except (pa.ArrowException, TypeError, ValueError, AttributeError) as exc:
                    raise FluentDataError(
                        f"{spec.name}: page {result.pages} of {task.source.query} over {task.window} "
                        f"cannot be converted to the columns {[c.name for c in builder.columns]}: {exc}"
                    ) from exc
                keep = in_window(batch, col, task.window)
                if not pc.all(keep).as_py():
                    ts = batch.column(col)
                    at_end = pc.sum(pc.equal(ts, pa.scalar(task.window.end, ts.type))).as_py() or 0
                    result.boundary_rows += at_end
                    outside = batch.num_rows - pc.sum(keep).as_py() - at_end
                    if outside:
                        result.out_of_window += outside
                        result.out_of_window_sample = result.out_of_window_sample or str(
                            batch.filter(pc.invert(pc.fill_null(keep, False))).column(spec.key)[0]
                        )
                    batch = batch.filter(pc.fill_null(keep, False))
                result.spool.write(batch)
    finally:
        result.spool.close()
    return result


@contextmanager
def _failing_first(abort: Abort) -> Iterator[None]:
    """Record an error in `abort` before the enclosing blocks unwind: closing the prefetch waits for the
    chain's request in flight, and the siblings should not wait for that to be told to stop."""
    try:
        yield
    except Cancelled:
        raise
    except BaseException as exc:
        abort.fail(exc)
        raise


CHAINS_PER_SLOT = 2
"""Cursor chains running per request slot (`request_slots`): a chain between two requests (parsing, or
converting its last page before the next chain starts) leaves its slot to another instead of idling it."""
QUEUED_TASKS = 1
"""Tasks per stream waiting in the pool's queue beyond the running chains, counted over the whole run."""
UNWRITTEN_TASKS = 16
"""Tasks per stream whose spools may wait on disk for an earlier period to finish: bounds the spool
directory when one period's chain is far longer than the rest (e.g. one busy day in a long backfill)."""

OVERSPLIT = 2
"""Tasks per stream a run aims for: more, smaller cursor chains even out uneven sub-windows (the run ends
when its longest chain ends); fewer save the partial last page of each chain."""


def sub_windows_per_period(concurrency: int, chains_per_period: int, periods: int) -> int:
    """How many sub-windows each period is split into so the run has ~`OVERSPLIT x concurrency` chains.

    A single day with 4 streams becomes 8 sub-windows; a 90-day backfill is one chain per day (days run in
    parallel), so empty or small days do not cost several requests each.
    """
    chains = max(1, chains_per_period * periods)  # no chains at all: no virtual catalogues to fan out over
    return max(1, -(-OVERSPLIT * concurrency // chains))


def tail_parts(concurrency: int, parts: int, index: int, periods: int) -> int:
    """Sub-windows of the period at `index`: the last `concurrency` periods of a multi-period run are split
    into at least `concurrency` parts, so the run ends on short chains instead of whole days.

    Chains cannot be balanced up front (their lengths are unknown), so with one chain per day some streams
    run out of work while others still page a whole day: in a 30-day run on 4 streams that idled two
    streams for ~6 of ~55 pages each. Short chains at the end shrink that tail to a page or two, for about
    one extra (partial) page per split day.
    """
    if periods > 1 and index >= periods - concurrency:
        return max(parts, concurrency)
    return parts


def plan_tasks(
    spec: EntitySpec,
    period: Window,
    scope_values: Sequence[dict[str, Any] | None],
    parts: int,
    start_index: int = 0,
) -> list[Task]:
    """Tasks of one period in output order: (source, scope value, sub-window)."""
    tasks: list[Task] = []
    for source in spec.sources:
        for scope_value in scope_values:
            for sub in period.split(parts):
                tasks.append(Task(start_index + len(tasks), source, sub, scope_value))
    return tasks


def write_partition(
    lake: Lake, spec: EntitySpec, period: Window, streams: Sequence[StreamResult], report: ValidationReport
) -> tuple[str, int, int, pa.Table | None]:
    """Stream the spools, in order, into the period's object; validate each row group on the way."""
    key = f"{spec.lake_dir}/{spec.grain.partition_dir(period)}/{PART_FILE}"
    preview: list[pa.Table] = []

    def on_row_group(table: pa.Table) -> None:
        report.validate_rows(spec, table)
        if not preview:
            preview.append(table.take(list(range(min(PREVIEW_ROWS, table.num_rows)))))  # a copy, not a view

    with lake.atomic_write(key) as out:
        writer = RowGroupWriter(out, spec.arrow_schema, spec.row_group_rows, on_row_group)
        for stream in streams:
            for batch in stream.spool.batches():
                writer.write(batch)
        writer.close()
        report.finish_partition(spec.key)
        size = out.tell()
    return key, size, writer.row_groups, preview[0] if preview else None


def await_period(
    futures: Sequence[Future[StreamResult]],
    others: Callable[[], Iterable[Future[StreamResult]]],
    abort: Abort,
    refill: Callable[[], None] = lambda: None,
) -> list[StreamResult]:
    """The results of one period's streams, in task order; raises the run's first error as soon as any
    stream fails (this period's or a later one's), not when the tasks before it are done.

    `refill` runs whenever any task of the run completes (not only this period's), so later periods' tasks
    are queued while this one waits on a long chain; `others` gives the run's other tasks at that moment.
    """
    while True:
        abort.raise_if_failed()
        refill()
        if all(f.done() for f in futures):
            break
        wait({f for f in (*futures, *others()) if not f.done()}, return_when=FIRST_COMPLETED)
    abort.raise_if_failed()
    return [f.result() for f in futures]


_frozen_lock = threading.Lock()
_frozen_runs = 0
_frozen_before = False


@contextmanager
def gc_frozen() -> Iterator[None]:
    """Keep the objects that exist before the extraction out of the cyclic GC's full collections while it runs.

    Every page is ~180 KiB of JSON parsed into thousands of dicts and lists; enough of them live through a
    few collections (pages wait in the chain's queue) that CPython keeps triggering full collections, each
    walking every object of the process (the imported dagster, pandas, ... hundreds of thousands). That was
    ~4 of ~12 ms client CPU per page of 100 orders. `gc.freeze()` moves the existing objects to the permanent
    generation, so collections only walk what the extraction created. Nothing is freed differently:
    refcounting is unaffected.

    When the last concurrent extraction of the process ends, `gc.unfreeze()` puts the objects back (cycles
    among them are collected again) -- unless the process had frozen objects before the first one began:
    `fc_assets.definitions` freezes the code location at load, for the life of the process (a run worker,
    `dagster asset materialize`), and unfreezing it then made the exit's collections walk it all (~0.8 s).
    """
    global _frozen_runs, _frozen_before
    with _frozen_lock:
        if _frozen_runs == 0:
            _frozen_before = gc.get_freeze_count() > 0
            gc.freeze()
        _frozen_runs += 1
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen_runs -= 1
            if _frozen_runs == 0 and not _frozen_before:
                gc.unfreeze()


SWITCH_INTERVAL_S = 0.0005
_switch_lock = threading.Lock()
_switch_runs = 0
_switch_before = 0.0


@contextmanager
def short_switch_interval() -> Iterator[None]:
    """Let a thread whose answer has arrived take the GIL sooner while the extraction runs.

    The streams' threads alternate between waiting on a socket and holding the GIL to parse and convert
    pages. A thread returning from `recv` (a 224 KiB page is read in 64 KiB pieces) waits for the holder to
    release the GIL, which CPython asks for after the switch interval (5 ms by default), so each piece of a
    page could wait up to 5 ms behind another stream's conversion before the next request is sent. With
    0.5 ms: 30 days, 128 pages, 4 streams, 50 ms latency, 7 interleaved pairs at load 6.4-7.4, each faster
    (5 ms: 3.57 3.33 3.33 5.47 4.12 3.55 4.38 s; 0.5 ms: 3.16 3.10 2.94 4.10 3.32 3.35 4.01 s); one day of
    204 pages at 20 ms showed no difference beyond the noise. Restored when the last concurrent extraction of
    the process ends.
    """
    global _switch_runs, _switch_before
    with _switch_lock:
        if _switch_runs == 0:
            _switch_before = sys.getswitchinterval()
            sys.setswitchinterval(min(_switch_before, SWITCH_INTERVAL_S))
        _switch_runs += 1
    try:
        yield
    finally:
        with _switch_lock:
            _switch_runs -= 1
            if _switch_runs == 0:
                sys.setswitchinterval(_switch_before)


def extract_periods(
    spec: EntitySpec,
    periods: Sequence[Window],
    *,
    client: GraphQLPager,
    lake: Lake,
    concurrency: int = 4,
    page_size: int | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> Iterator[PartitionResult]:
    """Extract `periods` (consecutive, in order), yielding each period's result once its object is written.

    Raises on the first error of any stream; periods already yielded stay written (they are complete),
    the failing one and later ones are not written.
    """
    concurrency = max(1, concurrency)
    builder = BatchBuilder(spec.columns)
    scope_values: list[dict[str, Any] | None] = (
        list_scope_values(client, spec.scope, page_size or 100) if spec.scope else [None]
    )
    abort = Abort()
    chains = CHAINS_PER_SLOT * concurrency
    plans: deque[tuple[Window, list[Task]]] = deque()
    next_index = 0
    parts = sub_windows_per_period(concurrency, len(spec.sources) * len(scope_values), len(periods))
    for i, period in enumerate(periods):
        tasks = plan_tasks(
            spec, period, scope_values, tail_parts(concurrency, parts, i, len(periods)), next_index
        )
        next_index += len(tasks)
        plans.append((period, tasks))

    with (
        gc_frozen(),
        short_switch_interval(),
        tempfile.TemporaryDirectory(prefix=f"fc-extract-{spec.name}-") as tmp,
        ThreadPoolExecutor(max_workers=chains, thread_name_prefix=f"fluent-{spec.name}") as pool,
    ):
        spool_dir = Path(tmp)
        slotted = RequestSlots(client, concurrency, on_failure=abort.fail)
        queued: deque[tuple[Window, list[Future[StreamResult]], float]] = deque()

        def submit_next() -> None:
            period, tasks = plans.popleft()
            futures = [
                pool.submit(
                    stream_task,
                    slotted.for_task(t.index),
                    spec,
                    t,
                    builder,
                    spool_dir,
                    page_size=page_size,
                    abort=abort,
                )
                for t in tasks
            ]
            queued.append((period, futures, time.monotonic()))

        def refill() -> None:
            # keep every chain busy and `QUEUED_TASKS x concurrency` tasks waiting, counted over the whole
            # run, so a chain that ends never finds the queue empty while the oldest period still waits on a
            # long chain
            while plans:
                unwritten = [f for _, fs, _ in queued for f in fs]
                if len(unwritten) >= UNWRITTEN_TASKS * concurrency:
                    break
                if sum(not f.done() for f in unwritten) >= chains + QUEUED_TASKS * concurrency:
                    break
                submit_next()

        def queued_tasks() -> list[Future[StreamResult]]:
            return [f for _, fs, _ in queued for f in fs]

        try:
            while plans or queued:
                refill()
                period, futures, started = queued[0]
                streams = await_period(futures, queued_tasks, abort, refill)
                queued.popleft()
                report = ValidationReport()
                for s in streams:
                    report.add_failure(
                        "updated_on: inside the queried window", s.out_of_window, key=s.out_of_window_sample
                    )
                key, size, row_groups, preview = write_partition(lake, spec, period, streams, report)
                for s in streams:
                    s.spool.delete()
                result = PartitionResult(
                    entity=spec.name,
                    window=period,
                    key=key,
                    uri=lake.uri_for(key),
                    rows=sum(s.spool.rows for s in streams),
                    pages=sum(s.pages for s in streams),
                    requests=sum(s.requests for s in streams),
                    bytes=size,
                    row_groups=row_groups,
                    tasks=len(streams),
                    boundary_rows=sum(s.boundary_rows for s in streams),
                    duration_s=time.monotonic() - started,
                    validation=report,
                    preview=preview,
                )
                if on_progress:
                    on_progress(
                        f"{spec.name} {period}: {result.rows} rows, {result.pages} pages -> {result.uri}"
                    )
                yield result
        except BaseException as exc:
            abort.fail(exc)
            for _, futures, _ in queued:
                for f in futures:
                    f.cancel()
            raise
