"""The asset factory: one partitioned asset (with its blocking `schema` check) per `EntitySpec`.

The asset body is thin: turn the run's partition range into periods, call `extract_periods`, and record
per-partition metadata (stable names: they become the UI's plots) plus one check result for the run.
A single-run backfill (`BackfillPolicy.single_run()`) still writes one object per day.

A run that fails part-way (day 7 of a 30-day backfill) still reports the days already written as
materialized (`written_materializations`), so the lake and the UI agree; the rest stays unmaterialized.

Retries: transient Fluent errors (429, 5xx, dropped connections, retryable GraphQL codes) that outlast the
client's own retries fail the step and the asset's `RetryPolicy` re-runs it later; anything else (bad query,
paging that cannot continue safely, auth) fails at once with `Failure(allow_retries=False)`.
"""

import warnings
from collections.abc import Iterator, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster import AssetExecutionContext

from fc_assets.analytics.current_state import remember_before_replacing
from fc_assets.extraction.entities import ENTITIES, PART_FILE, EntitySpec
from fc_assets.extraction.windows import Grain, Window
from fc_assets.resources.fluent import FluentResource
from fc_assets.resources.fluent_errors import (
    FluentError,
    FluentGraphQLError,
    FluentHTTPError,
    FluentTransportError,
)
from fc_assets.resources.storage import LakeResource

if TYPE_CHECKING:  # the extraction itself (pyarrow, numpy: ~0.2 s) is imported when a partition runs
    import pyarrow as pa

    from fc_assets.extraction.extract import PartitionResult
    from fc_assets.extraction.validation import ValidationReport

FLUENT_POOL = "fluent_api"
SCHEMA_CHECK = "schema"
RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
PREVIEW_COLUMNS = 8

# Single-run backfills (`BackfillPolicy.single_run()`, here and in exports.py) are what the design needs: a
# 30-day backfill is one run, not 30. Dagster marks the `backfill_policy` parameter of `@asset` beta and
# warns once per asset on every load (code server, run worker, step, CLI): seven lines of noise each time.
# Only that exact warning is silenced.
warnings.filterwarnings(
    "ignore",
    message=r"Parameter `backfill_policy` of function `asset` is currently in beta",
    category=dg.BetaWarning,
)


@cache
def partitions_def(grain: Grain, start_date: str) -> dg.TimeWindowPartitionsDefinition:
    """One shared partitions definition per grain (all daily entities share the same object)."""
    return grain.partitions_def(start_date)


def is_transient(exc: BaseException) -> bool:
    """Worth another attempt later: rate limits, server errors, dropped connections, retryable GraphQL codes."""
    if isinstance(exc, FluentTransportError):
        return True
    if isinstance(exc, FluentHTTPError):
        return exc.status == 429 or exc.status >= 500
    if isinstance(exc, FluentGraphQLError):
        return exc.retryable
    return False


def preview_markdown(table: "pa.Table | None") -> str:
    import pyarrow as pa

    if table is None or table.num_rows == 0:
        return "_no rows_"
    scalar = [f.name for f in table.schema if not pa.types.is_list(f.type)][:PREVIEW_COLUMNS]
    return table.select(scalar).to_pandas().to_markdown(index=False)


def column_schema(spec: EntitySpec) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                c.name,
                c.type_name,
                constraints=dg.TableColumnConstraints(nullable=c.nullable, unique=c.name == spec.key),
            )
            for c in spec.columns
        ]
    )


def partition_metadata(result: "PartitionResult") -> dict[str, Any]:
    return {
        **result.metadata(),
        "uri": dg.MetadataValue.path(result.uri),
        "preview": dg.MetadataValue.md(preview_markdown(result.preview)),
    }


def check_result(spec: EntitySpec, report: "ValidationReport", partitions: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=spec.name,
        check_name=SCHEMA_CHECK,
        passed=report.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rows_validated": report.rows,
            "partitions": partitions,
            "failure_count": report.failure_count,
            "failures_by_check": dg.MetadataValue.json(dict(report.failures)),
            "failure_sample": dg.MetadataValue.json(report.sample),
        },
    )


def written_materializations(
    spec: EntitySpec, written: Sequence[tuple[str, "PartitionResult"]], keys: Sequence[str]
) -> Iterator[dg.AssetMaterialization]:
    """Before a multi-day run fails: a materialization for every day whose object is already in the lake
    (each is complete), so the UI and the lake agree; the failed and later days stay unmaterialized.
    (Yielded, not `context.log_event`ed: logged events are only flushed with the next output, which a
    failing step never produces.)"""
    for key, result in written:
        yield dg.AssetMaterialization(
            asset_key=spec.name,
            partition=key,
            metadata={
                **partition_metadata(result),
                "partial_run": dg.MetadataValue.text(
                    f"{len(written)} of {len(keys)} partitions written before the run failed"
                ),
            },
        )


def build_extraction_asset(
    spec: EntitySpec, start_date: str, *, retry_policy: dg.RetryPolicy | None = RETRY_POLICY
) -> dg.AssetsDefinition:
    """The partitioned asset for one entity, with an in-asset blocking pandera check."""
    parts = partitions_def(spec.grain, start_date)

    @dg.asset(
        name=spec.name,
        group_name=spec.group,
        description=spec.description,
        partitions_def=parts,
        backfill_policy=dg.BackfillPolicy.single_run(),
        retry_policy=retry_policy,
        pool=FLUENT_POOL,
        kinds={"fluent", "parquet"},
        check_specs=[
            dg.AssetCheckSpec(
                SCHEMA_CHECK,
                asset=spec.name,
                blocking=True,
                description="pandera schema of every row group, key unique per "
                "partition, every row inside the queried window",
            )
        ],
        metadata={
            "dagster/column_schema": column_schema(spec),
            "lake_path": f"<FC_LAKE_URI>/{spec.lake_dir}/{spec.grain.layout}/{PART_FILE}",
            "graphql": ", ".join(s.query for s in spec.sources),
        },
    )
    def _extract(
        context: AssetExecutionContext, fluent: FluentResource, lake: LakeResource
    ) -> Iterator[dg.AssetCheckResult | dg.MaterializeResult | dg.AssetMaterialization]:
        tw = context.partition_time_window
        periods = list(Window.of(tw.start, tw.end).periods(spec.grain.step))
        keys = list(context.partition_keys)
        if len(keys) != len(periods):
            raise dg.Failure(
                f"{len(keys)} partition keys but {len(periods)} {spec.grain.name} periods in {tw}",
                allow_retries=False,
            )
        with fluent.get_client() as client:
            before = client.stats_snapshot()
            # the token's round trip overlaps the imports and the lake's housekeeping below
            client.authenticate_early()
            from fc_assets.extraction.extract import PartitionResult, extract_periods
            from fc_assets.extraction.validation import ValidationReport

            report = ValidationReport()
            store = lake.get_lake()
            for stale in store.remove_stale_temporaries():  # left in <lake>/_tmp/ by killed runs
                context.log.info(f"removed a temporary older than a day: {stale}")
            replaced = [f"{spec.lake_dir}/{spec.grain.partition_dir(p)}/{PART_FILE}" for p in periods]
            remembered = remember_before_replacing(store, spec, replaced)
            if remembered is not None:
                context.log.info(f"current state refreshed before replacing partitions: {remembered}")
            written: list[tuple[str, PartitionResult]] = []
            try:
                for key, result in zip(
                    keys,
                    extract_periods(
                        spec,
                        periods,
                        client=client,
                        lake=store,
                        concurrency=fluent.concurrency,
                        on_progress=context.log.info,
                    ),
                    strict=False,
                ):
                    context.add_asset_metadata(partition_metadata(result), partition_key=key)
                    report.merge(result.validation)
                    written.append((key, result))
            except BaseException as exc:
                yield from written_materializations(spec, written, keys)
                if isinstance(exc, FluentError) and not is_transient(exc):
                    raise dg.Failure(f"{spec.name}: {exc}", allow_retries=False) from exc
                raise
            stats = client.stats_snapshot().minus(before)
        yield check_result(spec, report, len(keys))
        yield dg.MaterializeResult(metadata={f"run_{k}": v for k, v in stats.as_metadata().items()})

    return _extract


def build_extraction_assets(
    entities: Sequence[EntitySpec] = ENTITIES,
    *,
    start_date: str,
    retry_policy: dg.RetryPolicy | None = RETRY_POLICY,
) -> list[dg.AssetsDefinition]:
    return [build_extraction_asset(e, start_date, retry_policy=retry_policy) for e in entities]
