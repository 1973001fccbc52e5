"""The feed asset factory: one asset per feed (`inventory_feed`, …), one dynamic partition per file version.

Per feed `build_feed_definitions` returns the asset (with its blocking `rejects_under_threshold` check), a job
selecting it and one sensor per source location. The asset is thin: it finds the file version of its
partition (run config set by the sensor, else the tags of the partition's earlier runs), calls
`pipeline.process_file`, and turns the outcome into materialization metadata and the check result.

**One run per feed at a time** — what the TypeScript SDK does with a KV "distributed lock" (15-minute lease,
check-then-set, no ownership check: connector-pitfalls §2 item 10) is Dagster's own machinery here: every
feed asset runs in the pool `feed_<feed>` and the pool's limit is 1
(`dagster instance concurrency set feed_inventory 1`, or `concurrency.pools` in dagster.yaml; tests call
`set_feed_pool_limits`). Slots are claimed in the instance's event-log storage in one transaction, held for
the whole step (the whole file: send → confirm → commit → archive is a single step), released when the step
ends however it ends, and freed by run monitoring if a worker dies — so there is no lease to expire under a
live holder and no way to release someone else's slot. Two sensors (S3 and SFTP) or a manual
materialization racing on the same feed queue on the slot instead of interleaving sends. The ledger adds a
second, data-level guard: a file half-sent blocks others of the feed until it is finished (`FeedBusyError`).

**Retries.** A failed attempt is counted in the file's ledger entry (across runs). Up to `FC_FEED_MAX_RETRIES`
failures are retried in the same run after `FC_FEED_RETRY_DELAY_S` × 2^(n-1) (±25 % jitter; Dagster
`RetryRequested`; nothing already sent is sent again, the ledger resumes). The next failure is permanent:
the file is released to `error/` with its reason (state_ops.release_to_error), the run fails with that
reason in its metadata and `fc-assets state files FEED --outcome error` lists it. A replaced source
(`SourceChanged`) is not retried: the new version is a new file. Later files of the feed follow the rule in
state_ops.py (wait while a live holder keeps its lease, else finish or release the in-flight file first).
"""

import random

import dagster as dg

from fc_assets.ingestion.deliver.files import FileRef, FileRefConfig, KeyOutsideLocation
from fc_assets.ingestion.deliver.ledger import FeedBusyError, Ledger
from fc_assets.ingestion.deliver.pipeline import FeedPlan, PipelineEnv, process_file
from fc_assets.ingestion.deliver.senders import InjectedCrash
from fc_assets.ingestion.deliver.sources import SourceChanged, SourceStore
from fc_assets.ingestion.deliver.state_ops import release_to_error, run_alive, settle_inflight
from fc_assets.ingestion.sensors import build_file_sensor
from fc_assets.resources.fluent import FluentResource
from fc_assets.resources.s3 import S3Resource
from fc_assets.resources.sftp import SFTPResource
from fc_assets.resources.storage import LakeResource
from fc_assets.settings import get_settings

CHECK_NAME = "rejects_under_threshold"
DEFAULT_BATCH_TIMEOUT_S = 600.0


def pool_name(feed: str) -> str:
    return f"feed_{feed}"


def set_feed_pool_limits(instance: dg.DagsterInstance, feeds: list[str], limit: int = 1) -> None:
    """Give each feed pool its limit (what `dagster instance concurrency set feed_<feed> 1` does)."""
    for feed in feeds:
        instance.event_log_storage.set_concurrency_slots(pool_name(feed), limit)


class FeedRunConfig(FileRefConfig):
    """The file version to process (set by the sensor), how long to wait for Fluent's batches and their size."""

    batch_timeout_s: float = DEFAULT_BATCH_TIMEOUT_S
    batch_size: int = 5000  # entities per Batch API request (Fluent's maximum is 5,000)


def resolve_file(context: dg.AssetExecutionContext, feed: str, config: FileRefConfig) -> FileRef:
    if config.key:
        return FileRef.from_config(feed, config)
    # a manual materialization of an existing partition: take the file from that partition's sensor run
    pk = context.partition_key
    runs = context.instance.get_runs(
        filters=dg.RunsFilter(tags={"dagster/partition": pk, "fc/feed": feed}), limit=1
    )
    ref = FileRef.from_tags(feed, dict(runs[0].tags)) if runs else None
    if ref is None:
        raise dg.Failure(
            f"partition {pk} of feed {feed} has no file recorded; materialize it from its sensor run"
        )
    return ref


def build_feed_definitions(plan: FeedPlan) -> dg.Definitions:
    feed = plan.name
    settings = get_settings()
    max_retries, retry_delay_s = settings.feed_max_retries, settings.feed_retry_delay_s
    busy_wait_s = max(0.2, min(60.0, settings.feed_lease_s / 10))
    asset_name = f"{feed}_feed"
    partitions = dg.DynamicPartitionsDefinition(name=f"{feed}_files")
    check = dg.AssetCheckSpec(
        CHECK_NAME,
        asset=asset_name,
        blocking=True,
        description=f"Rejected rows stay at or below {plan.reject_threshold:.0%} of the file (else nothing is sent)",
    )

    @dg.asset(
        name=asset_name,
        partitions_def=partitions,
        pool=pool_name(feed),
        check_specs=[check],
        # errors outside the file's handling below (e.g. the lake unreachable before the file is claimed)
        retry_policy=dg.RetryPolicy(
            max_retries=max_retries,
            delay=retry_delay_s,
            backoff=dg.Backoff.EXPONENTIAL,
            jitter=dg.Jitter.PLUS_MINUS,
        ),
        group_name="ingestion",
        kinds={"fluent", *(loc.kind for loc in plan.locations)},
        description=f"Files of the `{feed}` feed sent to Fluent ({plan.sender}); one partition per file version.",
    )
    def _feed_asset(
        context: dg.AssetExecutionContext,
        config: FeedRunConfig,
        lake: LakeResource,
        fluent: FluentResource,
        s3: S3Resource,
        sftp: SFTPResource,
    ) -> dg.MaterializeResult:
        ref = resolve_file(context, feed, config)
        env = PipelineEnv(
            lake=lake.get_lake(),
            sources=SourceStore(s3_client=s3.get_client(), sftp=sftp),
            fluent=fluent.get_client,
            run_id=context.run_id,
            log=context.log.info,
            batch_timeout_s=config.batch_timeout_s,
            batch_size=config.batch_size,
        )
        ledger = Ledger(env.lake, feed)
        try:
            settled = settle_inflight(
                plan, ref, env, alive=run_alive(context.instance), max_retries=max_retries
            )
            if settled:
                context.log.warning(settled)
            result = process_file(plan, ref, env)
        except (SourceChanged, KeyOutsideLocation) as e:  # retrying cannot help
            raise dg.Failure(str(e), allow_retries=False) from e
        except InjectedCrash as e:  # a test's stand-in for a killed worker: nothing in this process goes on
            raise dg.Failure(str(e), allow_retries=False) from e
        except FeedBusyError as e:
            context.log.info(f"{e}; next look in {busy_wait_s:.0f} s")
            raise dg.RetryRequested(max_retries=context.retry_number + 1, seconds_to_wait=busy_wait_s) from e
        except Exception as e:
            entry = ledger.get(ref.file_id)
            if entry is None or entry.done:
                raise  # not claimed yet: the retry policy applies
            entry.attempts += 1
            ledger.save(entry)
            md = dict(getattr(e, "metadata", None) or {})
            if entry.attempts <= max_retries:
                wait = retry_delay_s * 2 ** (entry.attempts - 1) * random.uniform(0.75, 1.25)
                context.log.warning(
                    f"{ref.key}: attempt {entry.attempts} failed ({e}); retrying in {wait:.1f} s"
                )
                raise dg.RetryRequested(max_retries=context.retry_number + 1, seconds_to_wait=wait) from e
            raise _permanent_failure(plan, entry, env, e, md) from e
        md = result.metadata
        return dg.MaterializeResult(
            metadata=md,
            check_results=[
                dg.AssetCheckResult(
                    check_name=CHECK_NAME,
                    passed=result.check_passed,
                    metadata={
                        "rows": md["rows"],
                        "rejected": md["rejected"],
                        "threshold": plan.reject_threshold,
                        "rejects_uri": md.get("rejects_uri", ""),
                    },
                )
            ],
        )

    def _permanent_failure(plan, entry, env, error, md) -> dg.Failure:
        reason = f"failed {entry.attempts} times; last error: {error}"
        try:
            entry = release_to_error(plan, entry, env.lake, env.sources, reason, env.run_id)
        except Exception as release_error:  # e.g. committed (only its archive failed) or source unreachable
            return dg.Failure(
                f"{entry.key}: {reason}; not released to error/: {release_error}",
                metadata={**md, "outcome": "failed", "attempts": entry.attempts},
                allow_retries=False,
            )
        return dg.Failure(
            f"{entry.key}: {entry.error} — moved to {entry.archive_target}",
            metadata={
                **md,
                "outcome": "error",
                "error": entry.error or "",
                "attempts": entry.attempts,
                "archived_to": entry.archive_target or "",
                "ledger": env.lake.uri_for(
                    Ledger(env.lake, plan.name).rel("ledger", f"{entry.file_id}.json")
                ),
            },
            allow_retries=False,
        )

    job = dg.define_asset_job(
        f"{asset_name}_job",
        selection=[_feed_asset],
        description=f"One file of the `{feed}` feed (launched by its sensors).",
        # one step: run it in the run worker rather than in a second process that imports the code again
        executor_def=dg.in_process_executor,
    )
    several = len([loc for loc in plan.locations]) > len({loc.kind for loc in plan.locations})
    sensors = [
        build_file_sensor(
            feed=feed,
            asset_name=asset_name,
            location=loc,
            job=job,
            partitions_def=partitions,
            name=f"{loc.kind}_{feed}_{loc.name}_sensor" if several else None,
        )
        for loc in plan.locations
    ]
    return dg.Definitions(assets=[_feed_asset], jobs=[job], sensors=sensors)
