"""Validation of a feed's files: per chunk, text → typed columns → the feed's pandera schema → accepted
rows (typed, `Feed.arrow_schema`) and rejected rows (the rejects file), with totals in a report.

Per chunk, all vectorised:

1. records that could not be parsed at all (`_error`: a malformed JSONL line, a CSV record with the wrong
   field count) are rejected as a whole (`field` = `_record`);
2. each field's text is converted to its type (`conversions.py`); text that is not a value of the type is
   a rejected cell with the reason (`12abc` → "not a whole number"); never coerced;
3. each field's rules (required values, ranges, allowed values, lengths, patterns; rules.py) run as Arrow
   masks over the typed column (a cell already rejected by conversion is not reported twice), then the
   feed's row rules over the rows that passed: as Arrow masks when every row rule has one
   (`RowRule.failing`; all built-in feeds), so neither pandas nor pandera is imported; otherwise the rows
   go, as Arrow-backed pandas columns (`pd.ArrowDtype`, no copy to objects), through the feed's pandera
   `DataFrameSchema` with `lazy=True` for the row rules without a mask, and its `failure_cases` become
   rejected cells. Both ways give the same rejects (test_rules_agree.py);
4. rows without a rejected cell are accepted; `prices` are folded from their flat columns.

A rejected row never stops the others. The file fails (`ValidationReport.failed`) when more than the
feed's threshold of its rows are rejected (default 5 %, settings `FC_REJECT_THRESHOLD`); a file with no
rows does not fail. Whole-file problems raise `FileUnreadable` instead (see unreadable.py).
"""

from __future__ import annotations

import contextlib
import gc
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fc_assets.ingestion.feeds import Feed, RowRule, get_feed
from fc_assets.ingestion.read.arrow_values import bools, filter_batch, numbers, strings, to_bools, to_numbers
from fc_assets.ingestion.read.conversions import convert
from fc_assets.ingestion.read.cores import VALIDATE_WORKERS
from fc_assets.ingestion.read.mapping import mapper_for, text_schema
from fc_assets.ingestion.read.nested import fold_prices
from fc_assets.ingestion.read.readers import open_feed_file
from fc_assets.ingestion.read.rejects import RECORD_FIELD, RejectsWriter, empty_rejects, reject_table
from fc_assets.ingestion.read.rules import MISSING, column_rules
from fc_assets.ingestion.spec import ARROW_TYPES, ERROR, RAW, ROW
from fc_assets.prefetch import prefetch

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pdv

# Rows per chunk through pandera (one chunk at a time): its per-call overhead (~10 ms) wants large chunks.
# Otherwise the reader's default (readers.py: 65,536 rows; narrow CSV rows up to 131,072).
PANDERA_CHUNK_ROWS = 262_144  # pandera's per-call overhead is ~5 % of a chunk this size
SAMPLE_SIZE = 20
WORKERS = VALIDATE_WORKERS  # threads mapping + validating chunks (the parser has its own; 1 on 2 cores)


# ---------------------------------------------------------------------------------- pandera schema


def rule_error(rule_field: str, reason: str) -> str:
    """The pandera error text of a row rule (unique per field, so a failure maps back to its rule)."""
    return f"{rule_field}: {reason}"


_SCHEMAS: dict[tuple[int, tuple[RowRule, ...] | None], tuple[Feed, pdv.DataFrameSchema]] = {}


def schema_for(feed: Feed, rules: tuple[RowRule, ...] | None = None) -> pdv.DataFrameSchema:
    """The feed's pandera schema (with `rules` as its row rules; None: all the feed's), built once per feed
    object and rules."""
    hit = _SCHEMAS.get((id(feed), rules))
    if hit is None or hit[0] is not feed:
        hit = _SCHEMAS[id(feed), rules] = (feed, build_schema(feed, rules))
    return hit[1]


def build_schema(feed: Feed, rules: tuple[RowRule, ...] | None = None) -> pdv.DataFrameSchema:
    """The feed's pandera schema over its typed, flat columns (Arrow-backed dtypes): every field's rules
    (rules.py) as column checks, and the feed's row rules (or `rules`) as DataFrame checks."""
    import pandas as pd
    import pandera.pandas as pdv

    columns: dict[str, pdv.Column] = {}
    for f in feed.fields:
        checks = [r.check for r in column_rules(f) if r.check is not None]
        columns[f.name] = pdv.Column(
            pd.ArrowDtype(ARROW_TYPES[f.kind]), checks=checks, nullable=not f.required
        )
    if feed.attributes:
        columns[feed.attributes.field] = pdv.Column(
            pd.ArrowDtype(text_schema(feed).field(feed.attributes.field).type), nullable=True
        )
    chosen = feed.rules if rules is None else rules
    checks = [pdv.Check(r.check, error=rule_error(r.field, r.reason)) for r in chosen]
    return pdv.DataFrameSchema(columns, checks=checks, name=feed.name, strict=True, coerce=False)


# ------------------------------------------------------------------------------------------ a chunk


@dataclass
class ChunkResult:
    accepted: pa.RecordBatch | None  # None: not asked for (`ChunkValidator.run(keep=False)`)
    rejects: pa.Table
    rows: int
    rejected: int
    reasons: Counter[str]
    rejected_keys: pa.Table | None = None  # the feed's key columns of the rejected rows (null: unknown)


class ChunkValidator:
    """Validates mapped chunks (`read_file` output) of one feed. `pandera=True` runs every row rule through
    pandera, masks or not (what the agreement tests compare with)."""

    def __init__(self, feed: Feed, *, pandera: bool = False) -> None:
        self.feed = feed
        self.row_masks = () if pandera else tuple(r for r in feed.rules if r.failing is not None)
        by_pandera = tuple(r for r in feed.rules if r not in self.row_masks)
        self.schema = schema_for(feed, by_pandera) if by_pandera else None  # None: pandas is not needed
        self.rules = {f.name: column_rules(f) for f in feed.fields}
        self.field_order = strings([RECORD_FIELD, *(f.name for f in feed.fields)])
        self.rule_fields = {rule_error(r.field, r.reason): r.field for r in feed.rules}
        self.rule_reasons = {rule_error(r.field, r.reason): r.reason for r in feed.rules}
        self.key_schema = pa.schema([(k, ARROW_TYPES[feed.field(k).kind]) for k in feed.keys])
        # the fields whose typed values a chunk checked without its accepted rows needs: rules run on them,
        # keys are kept (the others' conversion failures are all that counts)
        self.value_fields = {f.name for f in feed.fields if self.rules[f.name]} | set(feed.keys)
        self.typed_schema = pa.schema(
            [(f.name, ARROW_TYPES[f.kind]) for f in feed.fields]
            + ([text_schema(feed).field(feed.attributes.field)] if feed.attributes else [])
        )

    def run(self, mapped: pa.RecordBatch, *, keep: bool = True) -> ChunkResult:
        """The chunk's accepted rows (`keep=False`: only counted, not copied out), rejects and totals."""
        n = mapped.num_rows
        reasons: Counter[str] = Counter()
        unparsed: pa.Table | None = None
        if mapped.column(ERROR).null_count < n:  # 1. records that could not be parsed
            broken = pc.is_valid(mapped.column(ERROR))
            bad = filter_batch(mapped, broken)
            unparsed = reject_table(bad.column(ROW), RECORD_FIELD, bad.column(RAW), bad.column(ERROR))
            reasons.update(f"{RECORD_FIELD}: {r}" for r in _reason_keys(bad.column(ERROR)))
            mapped = filter_batch(mapped, pc.invert(broken))
        m = mapped.num_rows
        unparsed_rows = n - m
        rows = mapped.column(ROW)
        found: list[tuple[np.ndarray, str, str]] = []  # (positions, field, reason) of the failing cells

        def reject(positions: np.ndarray, field: str, reason: str) -> None:
            found.append((positions, field, reason))
            reasons[f"{field}: {reason}"] += len(positions)

        rejected = np.zeros(m, bool)
        typed: list[pa.Array] = []
        lean = not keep and not self.row_masks and self.schema is None  # (the typed batch is not needed)
        for f in self.feed.fields:  # 2. conversion, then the field's rules as Arrow masks
            wanted = not lean or f.name in self.value_fields
            result = convert(f, mapped.column(f.name), self.feed.timezone, values=wanted)
            typed.append(result.values if result.values is not None else pa.nulls(m, ARROW_TYPES[f.kind]))
            unconverted = np.zeros(m, bool)
            for mask, reason in result.failures:
                if mask.any():
                    reject(np.flatnonzero(mask), f.name, reason)
                    unconverted |= mask
            for rule in self.rules[f.name]:
                failing = rule.failing(result.values)
                if not pc.any(failing).as_py():
                    continue
                mask = _mask(failing) & ~unconverted  # (an unconverted cell is null)
                if mask.any():
                    reject(np.flatnonzero(mask), f.name, rule.reason)
                    rejected |= mask
            rejected |= unconverted
        if self.feed.attributes:
            typed.append(mapped.column(self.feed.attributes.field))
        batch = pa.RecordBatch.from_arrays(typed, schema=self.typed_schema)
        passed = np.flatnonzero(~rejected)
        clean = batch
        if rejected.any() and not lean:
            clean = filter_batch(batch, bools(~rejected))
        failed_rows = False  # 3. the row rules over the rows that passed the field rules
        for rule in self.row_masks:
            failing = rule.failing(clean)
            if pc.any(failing).as_py():
                positions = passed[np.flatnonzero(_mask(failing))]
                reject(positions, rule.field, rule.reason)
                rejected[positions] = failed_rows = True
        cases = self._pandera(clean) if self.schema is not None else None
        if cases is not None:
            for (column, reason), group in cases.groupby(["column", "reason"], sort=False):
                positions = passed[group["index"].to_numpy(np.int64)]
                reject(positions, column, reason)
                rejected[positions] = failed_rows = True
        accepted = None
        if keep:  # 4. Fluent's shape
            if failed_rows:
                clean = filter_batch(batch, bools(~rejected))
            accepted = self._shape(clean, rows.filter(bools(~rejected)) if rejected.any() else rows)
        rejects = self._rejects(mapped, found, unparsed)
        keys = None
        if rejected.any() or unparsed is not None:  # for the delta: not mistaken for disappeared rows
            keys = pa.Table.from_batches([filter_batch(batch.select(self.key_schema.names), bools(rejected))])
            if unparsed is not None:
                keys = pa.concat_tables([keys, _nulls(self.key_schema, unparsed.num_rows)])
        return ChunkResult(accepted, rejects, n, unparsed_rows + int(rejected.sum()), reasons, keys)

    def _rejects(
        self, mapped: pa.RecordBatch, found: list[tuple[np.ndarray, str, str]], unparsed: pa.Table | None
    ) -> pa.Table:
        """The chunk's reject lines, by row, then in the feed's field order, then by reason: the failing cells
        of every (field, reason) taken into one table (one value clean-up and formula check for all of
        them, not one per reason: ~1 ms of fixed cost a chunk) and ordered with numpy."""
        if not found:
            return unparsed if unparsed is not None else empty_rejects()
        rows = mapped.column(ROW)
        taken = [numbers(positions, pa.int64()) for positions, _, _ in found]
        values = [mapped.column(field).take(idx) for idx, (_, field, _) in zip(taken, found, strict=True)]
        piece = np.repeat(np.arange(len(found)), [len(positions) for positions, _, _ in found])
        fields = [field for _, field, _ in found]
        why = [reason for _, _, reason in found]
        table = reject_table(
            rows.take(pa.concat_arrays(taken)),
            strings(fields).take(numbers(piece)),
            pa.concat_arrays([v if v.type == pa.string() else v.cast(pa.string()) for v in values]),
            strings(why).take(numbers(piece)),
        )
        if unparsed is None and len(found) == 1:
            return table
        if unparsed is not None or table.column("row").null_count:
            return self._sorted(pa.concat_tables([t for t in (unparsed, table) if t is not None]))
        rank = {name: i for i, name in enumerate(self.field_order.to_pylist())}
        field_rank = np.array([rank.get(field, len(rank)) for field in fields])
        by_text = sorted(set(why), key=str.encode)  # (Arrow orders text by its UTF-8 bytes)
        reason_rank = np.array([by_text.index(reason) for reason in why])
        order = np.lexsort((reason_rank[piece], field_rank[piece], to_numbers(table.column("row"))))
        return table.take(numbers(order))

    def _sorted(self, rejects: pa.Table) -> pa.Table:
        """Reject lines by row, then in the feed's field order (other fields last), then by reason."""
        order = pc.index_in(rejects.column("field"), value_set=self.field_order)
        return (
            rejects.append_column("_order", order)
            .sort_by([("row", "ascending"), ("_order", "ascending"), ("reason", "ascending")])
            .drop_columns(["_order"])
        )

    def _pandera(self, batch: pa.RecordBatch) -> pd.DataFrame | None:
        """pandera's failure cases (index = position in `batch`, column, reason), or None when it passes."""
        import pandas as pd
        import pandera.pandas as pdv

        frame = batch.to_pandas(types_mapper=pd.ArrowDtype)
        try:
            self.schema.validate(frame, lazy=True, inplace=True)
            return None
        except pdv.errors.SchemaErrors as e:
            cases = e.failure_cases
        if cases["index"].isna().any():  # a schema-level failure (dtype, missing column) is a bug here
            raise RuntimeError(f"feed {self.feed.name}: schema error not tied to rows:\n{cases.head()}")
        check = cases["check"].astype(str)
        rule_field = check.map(self.rule_fields)
        is_rule = rule_field.notna().to_numpy()
        # pandera reports a row rule once per non-null column of a failing row: keep one case per row,
        # on the rule's own field
        out = pd.DataFrame(
            {
                "index": cases["index"].astype(np.int64).to_numpy(),
                "column": np.where(is_rule, rule_field, cases["column"].astype(str)),
                "reason": np.where(
                    is_rule, check.map(self.rule_reasons), check.where(check != "not_nullable", MISSING)
                ),
            }
        )
        return out.drop_duplicates(["index", "column", "reason"])

    def _shape(self, batch: pa.RecordBatch, rows: pa.Array) -> pa.RecordBatch:
        schema = self.feed.arrow_schema
        arrays = {name: batch.column(name) for name in batch.schema.names}
        if self.feed.prices:
            arrays["prices"] = fold_prices(batch, self.feed.prices)
        arrays[ROW] = rows
        return pa.RecordBatch.from_arrays([arrays[name] for name in schema.names], schema=schema)


def _nulls(schema: pa.Schema, n: int) -> pa.Table:
    return pa.Table.from_arrays([pa.nulls(n, f.type) for f in schema], schema=schema)


def _mask(arr: pa.Array) -> np.ndarray:
    return to_bools(arr)


def _reason_keys(errors: pa.Array) -> list[str]:
    """Histogram keys for parse errors: the message up to its first colon (details vary per line)."""
    return [e.split(":", 1)[0] for e in errors.to_pylist()]


# ------------------------------------------------------------------------------------------- a file


@dataclass
class ValidationReport:
    """Totals of one validated file (what the asset check and `check-file` report)."""

    feed: str
    file: str
    format: str | None = None
    threshold: float = 0.05
    rows: int = 0
    accepted: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    sample: list[dict[str, Any]] = field(default_factory=list)  # the first SAMPLE_SIZE reject lines
    rejects_path: str | None = None
    seconds: float = 0.0
    complete: bool = False  # the whole file was read
    # JSON, JSONL, XML: keys of the file's records the feed does not use (ignored), counted distinct, the
    # first few named (`SourceKeys.summary`); None when there were none
    unknown_keys: dict[str, Any] | None = None

    @property
    def reject_rate(self) -> float:
        return self.rejected / self.rows if self.rows else 0.0

    @property
    def failed(self) -> bool:
        """More than `threshold` of the rows were rejected (nothing of the file should be sent)."""
        return self.rows > 0 and self.rejected > self.threshold * self.rows

    def add(self, chunk: ChunkResult) -> None:
        self.rows += chunk.rows
        self.accepted += chunk.rows - chunk.rejected
        self.rejected += chunk.rejected
        self.reasons.update(chunk.reasons)
        if len(self.sample) < SAMPLE_SIZE and chunk.rejects.num_rows:
            self.sample.extend(chunk.rejects.slice(0, SAMPLE_SIZE - len(self.sample)).to_pylist())

    def summary(self) -> dict[str, Any]:
        """The `check-file` JSON line."""
        return {
            "feed": self.feed,
            "path": self.file,
            "format": self.format,
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "rejects_path": self.rejects_path,
            "seconds": round(self.seconds, 3),
            "failed": self.failed,
            "reasons": dict(self.reasons.most_common()),
            **({"unknown_keys": self.unknown_keys} if self.unknown_keys else {}),
        }

    def as_metadata(self) -> dict[str, Any]:
        """Plain JSON-able values for Dagster metadata / an asset check result."""
        return {
            "feed": self.feed,
            "file": self.file,
            "format": self.format,
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "reject_rate": round(self.reject_rate, 6),
            "threshold": self.threshold,
            "failed": self.failed,
            "reasons": dict(self.reasons.most_common(50)),
            "sample": self.sample,
            "rejects_path": self.rejects_path,
            "seconds": round(self.seconds, 3),
            **({"unknown_keys": self.unknown_keys} if self.unknown_keys else {}),
        }


class ValidationRun(Iterator[pa.RecordBatch]):
    """The accepted batches of one file (none with `keep_accepted=False`: they are only counted); `report`
    holds the totals (final once iteration ends; `progress` is called with it after each chunk)."""

    def __init__(
        self,
        feed: Feed,
        source: str | os.PathLike | BinaryIO,
        *,
        name: str | None,
        fmt: str | None,
        rejects_sink: RejectsWriter | None,
        chunk_rows: int | None,
        report: ValidationReport | None,
        rejected_keys_sink: Callable[[pa.Table], None] | None = None,
        keep_accepted: bool = True,
        progress: Callable[[ValidationReport], None] | None = None,
    ) -> None:
        self._started = time.perf_counter()
        self._keep = keep_accepted
        self._progress = progress
        self._validator = ChunkValidator(feed)
        if chunk_rows is None and self._validator.schema is not None:
            chunk_rows = PANDERA_CHUNK_ROWS
        raw = open_feed_file(feed, source, name=name, fmt=fmt, chunk_rows=chunk_rows)
        self._keys = raw.keys
        self.report = report or ValidationReport(feed.name, raw.name, threshold=feed.threshold)
        self.report.format = raw.format
        if rejects_sink is not None:
            self.report.rejects_path = rejects_sink.path
        self._mapper = mapper_for(feed)
        self._verify = raw.verify
        planned = self._mapper.plan_file(raw)
        self._planned = prefetch(planned, depth=1, name="fc-ingestion-prefetch")
        self._rejects = rejects_sink
        self._rejected_keys = rejected_keys_sink
        self._it = self._run()

    def __next__(self) -> pa.RecordBatch:
        return next(self._it)

    def __iter__(self) -> ValidationRun:
        return self

    def _check(self, batch: pa.RecordBatch, plan: Any) -> ChunkResult:
        return self._validator.run(self._mapper.map_batch(batch, plan, self._verify), keep=self._keep)

    def _chunks(self) -> Iterator[ChunkResult]:
        """The chunks' results in file order. The reader parses on its own thread (a large local CSV file
        on two more: csv_blocks.py); mapping and validating a chunk needs nothing of the others, so up to
        WORKERS chunks are mapped and validated at once on worker threads (Arrow's kernels release the GIL)
        while the next is parsed. Through pandera (a feed's row rule without an Arrow mask) chunks go one at a time."""
        workers = 1 if self._validator.schema is not None else WORKERS
        try:
            if workers == 1:
                for batch, plan in self._planned:
                    yield self._check(batch, plan)
                return
            with ThreadPoolExecutor(workers, thread_name_prefix="fc-validate") as pool:
                pending: deque[Future[ChunkResult]] = deque()
                try:
                    while True:
                        try:
                            batch, plan = next(self._planned)
                        except StopIteration:
                            break
                        except Exception:
                            # the parser failed: the chunks before it come first, as with one thread (their
                            # rejects are written; an earlier chunk's own error, e.g. invalid UTF-8, wins)
                            while pending:
                                yield pending.popleft().result()
                            raise
                        pending.append(pool.submit(self._check, batch, plan))
                        del batch
                        if len(pending) > workers:  # bounded: at most workers + 1 chunks in flight here
                            yield pending.popleft().result()
                    while pending:
                        yield pending.popleft().result()
                finally:
                    for f in pending:
                        f.cancel()
        finally:
            # a chunk's failure (invalid UTF-8 found on a worker, Ctrl-C) stops the parsing thread now and closes
            # the file: a `for` loop does not close the generator it leaves, and the exception raised from here
            # keeps this run (and so the parser, its file and its chunks) referenced for as long as it lives
            self._planned.close()

    def _run(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._validated()
        finally:  # (also when the file turns out unreadable: what was seen of it)
            if self._keys is not None:
                self.report.unknown_keys = self._keys.summary()

    def _validated(self) -> Iterator[pa.RecordBatch]:
        for chunk in self._chunks():
            if self._validator.schema is not None:
                # pandas/pandera leave reference cycles holding a chunk's frames; collected young they cost
                # ~0.3 ms, left to the automatic GC they kept ~100 MB more alive on a 10M-row file
                gc.collect(1)
            self.report.add(chunk)
            if self._rejects is not None:
                self._rejects.write(chunk.rejects)
            if self._rejected_keys is not None and chunk.rejected_keys is not None:
                self._rejected_keys(chunk.rejected_keys)
            self.report.seconds = time.perf_counter() - self._started
            if self._progress is not None:
                self._progress(self.report)
            if chunk.accepted is not None and chunk.accepted.num_rows:
                yield chunk.accepted
        self.report.seconds = time.perf_counter() - self._started
        self.report.complete = True


def validate_file(
    feed: Feed,
    source: str | os.PathLike | BinaryIO,
    *,
    name: str | None = None,
    fmt: str | None = None,
    rejects_sink: RejectsWriter | None = None,
    chunk_rows: int | None = None,  # None: the reader's (PANDERA_CHUNK_ROWS through pandera)
    report: ValidationReport | None = None,
    rejected_keys_sink: Callable[[pa.Table], None] | None = None,
    keep_accepted: bool = True,
    progress: Callable[[ValidationReport], None] | None = None,
) -> ValidationRun:
    """Accepted rows of the file, typed (`feed.arrow_schema`), batch by batch; rejected rows go to
    `rejects_sink` (and their keys, typed, null where unknown, to `rejected_keys_sink`); totals accumulate in
    the returned iterator's `.report` (or the `report` given), handed to `progress` after each chunk.
    `keep_accepted=False`: the accepted rows are counted but not built (nothing is yielded).
    Raises `FileUnreadable` (at once or during iteration) when the file as a whole cannot be read."""
    return ValidationRun(
        feed,
        source,
        name=name,
        fmt=fmt,
        rejects_sink=rejects_sink,
        chunk_rows=chunk_rows,
        report=report,
        rejected_keys_sink=rejected_keys_sink,
        keep_accepted=keep_accepted,
        progress=progress,
    )


def check_file(
    feed_name: str,
    path: str | os.PathLike,
    rejects_path: str | os.PathLike | None = None,
    *,
    fmt: str | None = None,
    chunk_rows: int | None = None,  # None: the reader's (PANDERA_CHUNK_ROWS through pandera)
    progress: Callable[[ValidationReport], None] | None = None,
    parquet_path: str | os.PathLike | None = None,
) -> ValidationReport:
    """Parse and validate a file exactly as the pipeline does; the accepted rows are only counted (not built:
    their copy out of each chunk was ~5 % of the check's CPU), or streamed batch by batch to `parquet_path`
    (typed as `feed.arrow_schema`; written beside it and renamed into place once complete, so a failed read
    leaves no partial file)."""
    feed = get_feed(feed_name)
    writer = RejectsWriter(rejects_path) if rejects_path is not None else None
    parquet = _ParquetSink(parquet_path, feed.arrow_schema) if parquet_path is not None else None
    try:
        run = validate_file(
            feed,
            path,
            fmt=fmt,
            rejects_sink=writer,
            chunk_rows=chunk_rows,
            keep_accepted=parquet is not None,
            progress=progress,
        )
        for batch in run:
            if parquet is not None:
                parquet.write(batch)
        if parquet is not None:
            parquet.commit()
        return run.report
    finally:
        if writer is not None:
            writer.close()
        if parquet is not None:
            parquet.abort()


class _ParquetSink:
    """Accepted batches to one Parquet file, via a temporary name in the same directory. Dictionary encoding
    only for the text columns that repeat in the first batch: for a unique one (a SKU) Arrow builds the
    dictionary and then falls back, which cost half of the writing (2M inventory rows: 0.58 s -> 0.34 s of
    CPU) and doubled the file (18 -> 9 MB)."""

    def __init__(self, path: str | os.PathLike, schema: pa.Schema) -> None:
        self.path = os.fspath(path)
        self.schema = schema
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        self.tmp = f"{self.path}.tmp-{os.getpid()}"
        self.writer: Any = None

    def _open(self, first: pa.RecordBatch | None) -> None:
        import pyarrow.parquet as pq

        repeating: bool | list[str] = True
        if first is not None and first.num_rows:
            repeating = [
                f.name
                for f, values in zip(first.schema, first.columns, strict=True)
                if pa.types.is_string(f.type) and pc.count_distinct(values).as_py() <= first.num_rows // 2
            ]
        self.writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd", use_dictionary=repeating)

    def write(self, batch: pa.RecordBatch) -> None:
        if self.writer is None:
            self._open(batch)
        self.writer.write_batch(batch)

    def commit(self) -> None:
        if self.writer is None:
            self._open(None)
        self.writer.close()
        self.writer = None
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Close and remove the temporary file, also when the writer was being opened (a SIGTERM right
        after the file was created, before `self.writer` was set, left it behind)."""
        writer, self.writer = self.writer, None
        try:
            if writer is not None:
                writer.close()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)
