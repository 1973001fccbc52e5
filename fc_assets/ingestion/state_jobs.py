"""The retention of the feeds' state as a Dagster job and daily schedule (`prune_feed_state`), so it runs and
shows in the UI without anyone calling `fc-assets state prune` (same work: state_ops.prune, audited)."""

import dagster as dg

from fc_assets.resources.storage import LakeResource


def build_state_retention_definitions(feeds: list[str]) -> dg.Definitions:
    @dg.op(
        description="Apply FC_STATE_RETENTION_DAYS to every feed's ledger and work files (state_ops.prune)."
    )
    def prune_state_of_feeds(context: dg.OpExecutionContext, lake: LakeResource) -> None:
        from fc_assets.ingestion.deliver import state_ops
        from fc_assets.settings import get_settings

        days = get_settings().state_retention_days
        store = lake.get_lake()
        for feed in feeds:
            counts = state_ops.prune(store, feed, days)
            state_ops.audit(store, feed, "prune", f"dagster run {context.run_id}", days=days, **counts)
            context.log.info(f"{feed}: {counts}")

    @dg.job(name="prune_feed_state", description="Retention of the feeds' ledger and work files in the lake.")
    def prune_job() -> None:
        prune_state_of_feeds()

    schedule = dg.ScheduleDefinition(
        job=prune_job, cron_schedule="17 3 * * *", execution_timezone="UTC", name="prune_feed_state_daily"
    )
    return dg.Definitions(jobs=[prune_job], schedules=[schedule])
