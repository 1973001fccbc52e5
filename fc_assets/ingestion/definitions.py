"""Everything ingestion contributes to the code location, merged into `fc_assets/definitions.py`: per feed
of `FEEDS` the `<feed>_feed` asset (dynamic partition per file), its job and one sensor per inbox
(`s3_inventory_sensor`, `sftp_inventory_sensor`, …). Resources used: `lake`, `fluent`, `s3`, `sftp`.
Reads settings when called (at code-location load), not at import.

Each feed asset runs in the pool `feed_<feed>`; give those pools a limit of 1 on the instance
(`dagster instance concurrency set feed_inventory 1`, …, or `concurrency.pools` in dagster.yaml) so a feed
never runs two files at once (see ingestion/assets.py).
"""

from __future__ import annotations

import dagster as dg

from fc_assets.ingestion.assets import build_feed_definitions, pool_name
from fc_assets.ingestion.deliver.plans import plan_for
from fc_assets.ingestion.feeds import FEEDS, Feed
from fc_assets.resources.s3 import S3Resource
from fc_assets.settings import get_settings


def feed_pools(feeds: list[Feed] | None = None) -> list[str]:
    return [pool_name(f.name) for f in (feeds or list(FEEDS.values()))]


def s3_resource() -> S3Resource:
    """The inbox S3 client (same endpoint/credentials settings as the lake). Empty keys mean AWS's default
    credential chain (an IAM role), as for the lake, not signing with empty keys."""
    import os

    s = get_settings()
    secret = (
        dg.EnvVar("AWS_SECRET_ACCESS_KEY")
        if os.environ.get("AWS_SECRET_ACCESS_KEY")
        else s.aws_secret_access_key.get_secret_value() or None
    )
    return S3Resource(
        endpoint_url=s.aws_endpoint_url,
        region_name=s.aws_region,
        aws_access_key_id=s.aws_access_key_id or None,
        aws_secret_access_key=secret,
    )


def ingestion_definitions(feeds: list[Feed] | None = None) -> dg.Definitions:
    from fc_assets.ingestion.state_jobs import build_state_retention_definitions

    feeds = feeds or list(FEEDS.values())
    unknown = get_settings().send_disappeared_feeds - {f.name for f in feeds}
    if unknown:
        raise ValueError(f"FC_SEND_DISAPPEARED: unknown feeds {sorted(unknown)}")
    return dg.Definitions.merge(
        *(build_feed_definitions(plan_for(f)) for f in feeds),
        build_state_retention_definitions([f.name for f in feeds]),
    )
