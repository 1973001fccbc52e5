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

Ticks look back `FC_SENSOR_LOOKBACK_S` behind the mark. Every `FC_SENSOR_FULL_SCAN_MINUTES` a tick also
compares the whole listing with the feed's ledger in the lake (a LIST of `state/<feed>/ledger/`, made while
the S3 inbox is listed, its key ranges at once: `Lake.list_files_parallel`): a
settled file (mtime ≥ 1 min old) with no ledger entry is requested whatever its mtime (a late copy that
kept an old mtime), and a file whose version was already processed and archived — so it left the inbox —
yet is present again is a re-upload: on SFTP, whose `mtime:size` cannot tell a same-size rewrite in the same
second, its content is hashed and, if it differs, requested as version `mtime:size:<sha256[:12]>`; if it is
identical (or on S3, same ETag) it is reported in the tick message, not silently skipped.
"""

from __future__ import annotations

import hashlib
import posixpath
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import dagster as dg

from fc_assets.ingestion.deliver.cursor import Cursor, ListedFile, TickPlan, plan_tick
from fc_assets.ingestion.deliver.files import FileLocation, FileRef
from fc_assets.ingestion.deliver.ledger import Ledger
from fc_assets.resources.s3 import S3Resource
from fc_assets.resources.sftp import SFTPResource, SFTPSession
from fc_assets.resources.storage import LakeResource
from fc_assets.settings import get_settings

DEFAULT_RETENTION_DAYS = 30
SETTLED_S = 60.0  # the full scan rescues only files whose mtime is at least this old (not being written)


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
    lookback_s: float | None,
    retention_days: int,
    ledger: Ledger | None = None,
    fingerprint: Callable[[str], str] | None = None,
    ledger_ids: set[str] | None = None,
) -> dg.SensorResult:
    """The pure-ish heart of both sensors (no listing I/O): plan, run requests, partitions, cursor.
    `ledger_ids`: the ledger's file ids when the caller listed them already (else listed here if needed)."""
    settings = get_settings()
    cursor = Cursor.parse(context.cursor)
    lookback = settings.sensor_lookback_s if lookback_s is None else lookback_s
    rescued: list[ListedFile] = []
    notes: list[str] = []
    generations: dict[str, int] = {}
    resumes: dict[str, int] = {}
    now = time.time()
    if ledger is not None and full_scan_due(cursor, now):
        ended = ended_runs(context.instance) if context.instance is not None else None
        rescued, notes, resumes = full_scan(
            feed, location, listing, ledger, fingerprint, now, ended, settings.feed_max_retries, ledger_ids
        )
        generations = ledger.state().reprocess
        cursor.full_scan_at = now
        seen = cursor.seen()
        if fresh := [f for f in rescued if f.digest not in seen]:
            context.log.info(f"full scan: {len(fresh)} unprocessed file(s) the lookback window missed")
    plan: TickPlan = plan_tick(
        cursor,
        listing,
        lookback_s=lookback,
        max_files=settings.max_files_per_tick,
        max_bytes=settings.max_file_bytes,
        stability=location.stability,
        markers=markers,
        rescued=rescued,
    )
    refs = [FileRef.of(feed, location, f) for f in plan.ready]
    requests = [
        dg.RunRequest(
            run_key=_run_key(r, generations, resumes),
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
    summary = "; ".join(x for x in (plan.skip_summary(), *notes) if x) or None
    if summary and requests:
        context.log.info(f"{location.name}: {len(requests)} new file(s); waiting: {summary}")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=partition_requests,
        cursor=new_cursor.dump(),
        skip_reason=None if requests else (summary or f"no new files in {location.kind}:{location.path}"),
    )


def full_scan_due(cursor: Cursor, now: float) -> bool:
    minutes = get_settings().sensor_full_scan_minutes
    return cursor.full_scan_at is None or now - cursor.full_scan_at >= minutes * 60


def list_s3_and_ledger(
    context: dg.SensorEvaluationContext, client, location: FileLocation, ledger: Ledger
) -> tuple[list[ListedFile], set[str], set[str] | None]:
    """The inbox listing and markers, and on a full-scan tick the ledger's file ids, listed at the same
    time (each LIST page is a round trip: one after the other, 100 + 100 pages were 200 of them). A failing
    listing fails the tick with its own error, the inbox's first, as when they were listed in turn: an inbox
    error is raised at once, not after the ledger listing (a slow lake would hold it back past the daemon's
    sensor timeout); that thread ends on its own, its result unused."""
    if not full_scan_due(Cursor.parse(context.cursor), time.time()):
        return *list_s3(client, location), None
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(1, thread_name_prefix="ledger-list")
    try:
        ids = pool.submit(ledger.file_ids)
        listing, markers = list_s3(client, location)
    finally:
        pool.shutdown(wait=False)
    return listing, markers, ids.result()


def _run_key(ref: FileRef, generations: dict[str, int], resumes: dict[str, int]) -> str:
    if ref.file_id in generations:  # forgotten by `fc-assets state reprocess`: runs again, new run key
        return f"{ref.run_key}#{generations[ref.file_id]}"
    if ref.file_id in resumes:  # left unfinished by runs that all ended: the n-th resume
        return f"{ref.run_key}#resume-{resumes[ref.file_id]}"
    return ref.run_key


def ended_runs(instance: dg.DagsterInstance) -> Callable[[str], int | None]:
    """For a file id: None while a run of it is queued or running, else how many of its runs have ended."""
    from fc_assets.ingestion.deliver.state_ops import ALIVE_STATUSES

    def count(file_id: str) -> int | None:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"fc/file_id": file_id}))
        return None if any(r.status.value in ALIVE_STATUSES for r in runs) else len(runs)

    return count


def full_scan(
    feed: str,
    location: FileLocation,
    listing: Sequence[ListedFile],
    ledger: Ledger,
    fingerprint: Callable[[str], str] | None,
    now: float,
    ended: Callable[[str], int | None] | None = None,
    max_resumes: int = 3,
    known: set[str] | None = None,
) -> tuple[list[ListedFile], list[str], dict[str, int]]:
    """Compare the listing with the ledger: files to request whatever their mtime, what to report, and the
    unfinished files to request again ({file_id: resume number}).

    A file whose entry is unfinished while none of its runs is alive was left by a run that died (killed
    worker, retries used up): its run key is taken and the cursor has seen it, so nothing else would ever
    run it again. It is requested again (`#resume-<n>`), at most `max_resumes` times, then reported."""
    known = ledger.file_ids() if known is None else known
    rescued, notes, resumes = [], [], {}
    for f in listing:
        if f.mtime > now - SETTLED_S:
            continue  # the normal tick path sees recent files
        file_id = FileRef.of(feed, location, f).file_id
        if file_id not in known:
            rescued.append(f)  # never processed (a queued run's request repeats its run key: deduped)
            continue
        entry = ledger.get(file_id)
        if entry is not None and not entry.done and ended is not None:
            n = ended(file_id)
            if n is not None and n <= max_resumes:
                rescued.append(f)
                resumes[file_id] = n
            elif n is not None:
                notes.append(
                    f"{f.key}: unfinished at stage '{entry.stage}' after {n} ended run(s); not requested "
                    "again — see `fc-assets state files`, then re-execute its run or `fc-assets state release`"
                )
            continue
        if entry is None or not entry.done or entry.counts.get("archive") not in ("moved", "already moved"):
            continue  # in progress, or its archive step left it in place on purpose
        # this version was processed and moved away, yet the key is here again: a re-upload
        if fingerprint is not None:
            sha = fingerprint(f.key)
            fp = ListedFile(f.key, f.mtime, f.size, None, sha[:12])
            fp_id = FileRef.of(feed, location, fp).file_id
            if sha != entry.content_sha256 and fp_id not in known:
                rescued.append(fp)
                continue
            entry = ledger.get(fp_id) or entry
            if not entry.done:
                continue
        notes.append(
            f"{f.key}: identical to a version already processed ({entry.outcome}, partition "
            f"{entry.partition_key}); not processed again — delete it, or `fc-assets state reprocess`"
        )
    return rescued, notes, resumes


def sftp_sha256(session: SFTPSession) -> Callable[[str], str]:
    def digest(path: str) -> str:
        h = hashlib.sha256()
        with session.open(path) as f:
            while block := f.read(1 << 20):
                h.update(block)
        return h.hexdigest()

    return digest


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
    lookback_s: float | None = None,
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
        def _s3_sensor(
            context: dg.SensorEvaluationContext, s3: S3Resource, lake: LakeResource
        ) -> dg.SensorResult:
            ledger = Ledger(lake.get_lake(), feed)
            listing, markers, ids = list_s3_and_ledger(context, s3.get_client(), location, ledger)
            return tick_result(
                context, listing=listing, markers=markers, ledger=ledger, ledger_ids=ids, **common
            )

        return _s3_sensor

    @decorator
    def _sftp_sensor(
        context: dg.SensorEvaluationContext, sftp: SFTPResource, lake: LakeResource
    ) -> dg.SensorResult:
        with sftp.session() as session:
            listing, markers = list_sftp(session, location)
            ledger = Ledger(lake.get_lake(), feed)
            return tick_result(
                context,
                listing=listing,
                markers=markers,
                ledger=ledger,
                fingerprint=sftp_sha256(session),
                **common,
            )

    return _sftp_sensor
