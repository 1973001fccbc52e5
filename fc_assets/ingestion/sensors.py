"""S3 and SFTP sensors: one per feed × location, each new file version → one partition → one run.

A tick lists the location (S3: every page of `list_objects_v2`, one "directory" level via `Delimiter="/"`;
SFTP: one directory, `fnmatchcase` on the basename), lets `cursor.plan_tick` decide what is new, complete
and within the per-tick limits, and returns in one `SensorResult`: the dynamic partitions to add, one
`RunRequest` per file (`run_key` = `feed:location:key@version`, partition key and file identity in tags and
run config), and the next cursor. Dagster commits the cursor only after the runs are submitted
(dagster-io/dagster#6941) and dedupes run keys, so a crashed tick repeats harmlessly.

What waits is said, never dropped: files still being written, waiting for a marker, too large, or over
`FC_MAX_FILES_PER_TICK` are listed in the tick's skip reason or log line and picked up by a later tick.
Partitions older than `retention_days` (by the date in their key) are deleted once a day.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg
from dagster_aws.s3 import S3Resource

from fc_assets.ingestion.cursor import Cursor, ListedFile, TickPlan, plan_tick
from fc_assets.ingestion.files import FileLocation, FileRef
from fc_assets.resources.sftp import SFTPResource, SFTPSession
from fc_assets.settings import get_settings

DEFAULT_LOOKBACK_S = 3600.0
DEFAULT_RETENTION_DAYS = 30


def list_s3(client, location: FileLocation) -> tuple[list[ListedFile], set[str]]:
    """All objects directly under the prefix matching the glob, and the keys whose marker object exists."""
    return _split_markers(_iter_s3(client, location), location)


def _iter_s3(client, location: FileLocation) -> list[ListedFile]:
    out = []
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=location.bucket, Prefix=location.prefix, Delimiter="/"):
        for o in page.get("Contents", []):
            if o["Key"].endswith("/"):
                continue
            out.append(
                ListedFile(o["Key"], o["LastModified"].timestamp(), int(o["Size"]), o["ETag"].strip('"'))
            )
    return out


def list_sftp(session: SFTPSession, location: FileLocation) -> tuple[list[ListedFile], set[str]]:
    files = [ListedFile(f.path, f.mtime, f.size) for f in session.list_dir(location.path, "*")]
    return _split_markers(files, location)


def _split_markers(files: list[ListedFile], location: FileLocation) -> tuple[list[ListedFile], set[str]]:
    import fnmatch

    keys = {f.key for f in files}
    data = [f for f in files if fnmatch.fnmatchcase(posixpath.basename(f.key), location.glob)]
    markers = set()
    if location.stability == "marker":
        data = [f for f in data if not f.key.endswith(location.marker_suffix)]
        markers = {f.key for f in data if f.key + location.marker_suffix in keys}
    return data, markers


def tick_result(
    context: dg.SensorEvaluationContext,
    *,
    feed: str,
    asset_name: str,
    location: FileLocation,
    partitions_def: dg.DynamicPartitionsDefinition,
    listing: Sequence[ListedFile],
    markers: set[str],
    lookback_s: float,
    retention_days: int,
) -> dg.SensorResult:
    """The pure-ish heart of both sensors (no listing I/O): plan, run requests, partitions, cursor."""
    settings = get_settings()
    cursor = Cursor.parse(context.cursor)
    plan: TickPlan = plan_tick(
        cursor,
        listing,
        lookback_s=lookback_s,
        max_files=settings.max_files_per_tick,
        max_bytes=settings.max_file_bytes,
        stability=location.stability,
        markers=markers,
    )
    refs = [FileRef.of(feed, location, f) for f in plan.ready]
    requests = [
        dg.RunRequest(
            run_key=r.run_key,
            partition_key=r.partition_key,
            tags=r.tags(),
            run_config={"ops": {asset_name: {"config": r.config()}}},
        )
        for r in refs
    ]
    partition_requests: list = []
    if refs:
        partition_requests.append(partitions_def.build_add_request([r.partition_key for r in refs]))
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    new_cursor = plan.cursor
    if cursor.pruned_on != today and context.instance is not None:
        old = expired_partitions(context.instance.get_dynamic_partitions(partitions_def.name), retention_days)
        old = [k for k in old if k not in {r.partition_key for r in refs}]
        if old:
            partition_requests.append(partitions_def.build_delete_request(old))
            context.log.info(f"pruning {len(old)} partition(s) older than {retention_days} days")
        new_cursor.pruned_on = today
    summary = plan.skip_summary()
    if summary and requests:
        context.log.info(f"{location.name}: {len(requests)} new file(s); waiting: {summary}")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=partition_requests,
        cursor=new_cursor.dump(),
        skip_reason=None if requests else (summary or f"no new files in {location.kind}:{location.path}"),
    )


def expired_partitions(keys: Sequence[str], retention_days: int) -> list[str]:
    cutoff = (datetime.now(UTC) - timedelta(days=retention_days)).strftime("%Y-%m-%d")
    return [k for k in keys if len(k) > 10 and k[4] == "-" and k[:10] < cutoff]


def build_file_sensor(
    *,
    feed: str,
    asset_name: str,
    location: FileLocation,
    job: dg.UnresolvedAssetJobDefinition | dg.JobDefinition,
    partitions_def: dg.DynamicPartitionsDefinition,
    minimum_interval_seconds: int = 30,
    lookback_s: float = DEFAULT_LOOKBACK_S,
    retention_days: int = DEFAULT_RETENTION_DAYS,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
    name: str | None = None,
) -> dg.SensorDefinition:
    """`s3_<feed>_sensor` / `sftp_<feed>_sensor` (suffixed with the location name when a feed has several)."""
    sensor_name = name or f"{location.kind}_{feed}_sensor"
    description = f"New files for feed `{feed}` in {location.kind}:{location.path} (glob `{location.glob}`)."
    common = dict(
        feed=feed,
        asset_name=asset_name,
        location=location,
        partitions_def=partitions_def,
        lookback_s=lookback_s,
        retention_days=retention_days,
    )
    decorator = dg.sensor(
        name=sensor_name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=description,
    )

    if location.kind == "s3":

        @decorator
        def _s3_sensor(context: dg.SensorEvaluationContext, s3: S3Resource) -> dg.SensorResult:
            listing, markers = list_s3(s3.get_client(), location)
            return tick_result(context, listing=listing, markers=markers, **common)

        return _s3_sensor

    @decorator
    def _sftp_sensor(context: dg.SensorEvaluationContext, sftp: SFTPResource) -> dg.SensorResult:
        with sftp.session() as session:
            listing, markers = list_sftp(session, location)
        return tick_result(context, listing=listing, markers=markers, **common)

    return _sftp_sensor
