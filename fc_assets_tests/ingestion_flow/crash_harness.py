"""Kill a real run of one file with SIGKILL, re-execute it, and check what is left: the harness of
test_crash_kill.py and bench/crash_soak.py.

A run is a child process started by a `multiprocessing` forkserver that imported the ingestion code once
(crash_preload.py), so a kill costs a fork, not an interpreter start-up (~5-15 s of imports
here). The child gets plain values (resource fields, the file's `FileRef`), builds the feed's resources as
the code location does and runs either `pipeline.process_file` (the step's work, no Dagster) or the feed's
job in-process on a shared Dagster instance (SQLite, by ref), against the real servers: the sandbox over
HTTP, moto's S3 (inbox and lake), the SFTP server. It dies by `FC_KILL_AT=<point>[:n]` (crashpoints.py:
SIGKILL of itself at a stage boundary) or by the parent's SIGKILL after a delay (a random point).

The checks say what a user would see: objects in the lake that do not parse (a partial object), ledger
entries, the feed's state and send logs that disagree, and — in the tests — what the sandbox received.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import multiprocessing
import os
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

from fc_assets.ingestion.deliver.crashpoints import CRASH_ENV, KILL_ENV
from fc_assets.ingestion.deliver.files import FileRef
from fc_assets.ingestion.deliver.ledger import Ledger
from fc_assets.ingestion.feeds import Inbox
from fc_assets.resources.storage import TMP_DIR, Lake

# what the children import, done once in the forkserver rather than in every child (the code imports
# pandas, pandera, DuckDB... where used: seconds per child on a loaded machine)
PRELOAD = (
    "fc_assets.ingestion.assets",
    "fc_assets.ingestion.deliver.plans",
    "fc_assets.ingestion.read.validate",
    "fc_assets.ingestion.read.unreadable",
    "fc_assets.extraction.assets",
    "fc_assets_tests.ingestion_flow.flow",
    "duckdb",
    "pyarrow.parquet",
    "botocore.exceptions",
)
for _module in PRELOAD:
    importlib.import_module(_module)

import boto3  # noqa: E402

# one botocore session whose loader has parsed the S3 model and endpoint data (~1 s of JSON per new
# session): the clients of the children and of the re-executions are made from it
_BOTO = boto3.session.Session()
_BOTO.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")

_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload(["fc_assets_tests.ingestion_flow.crash_preload"])

KILLED = -signal.SIGKILL


@dataclass(frozen=True)
class ChildRun:
    """Everything a child needs, as plain picklable values."""

    feed: str  # a declared feed (feeds.get_feed), its inboxes replaced by `inboxes`
    inboxes: tuple[Inbox, ...]
    resources: dict[str, tuple[str, dict[str, Any]]]  # name → ("module:Class", fields)
    ref: FileRef
    batch_size: int = 5000
    kill_at: str | None = None  # FC_KILL_AT in the child
    environ: dict[str, str] = field(default_factory=dict)
    dagster: dict[str, Any] | None = None  # instance_ref, partition_key, run_config, tags: run the job


@dataclass(frozen=True)
class ExtractRun:
    """A materialization of one extraction asset over a range of days, on a shared Dagster instance."""

    entity: str
    first: str  # partition keys (days), inclusive
    last: str
    start_date: str
    resources: dict[str, tuple[str, dict[str, Any]]]
    instance_ref: Any


def resource_fields(resources: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """Dagster resources as (class, field values): they do not pickle, their fields do."""
    out = {}
    for name, r in resources.items():
        cls = type(r)
        out[name] = (f"{cls.__module__}:{cls.__qualname__}", {k: getattr(r, k) for k in cls.model_fields})
    return out


def child_run(flow, ref: FileRef, **kw: Any) -> ChildRun:
    """A `ChildRun` of one file of a `flow.Flow` (its feed, inboxes and resources)."""
    return ChildRun(flow.feed.name, flow.feed.inboxes, resource_fields(flow.resources), ref, **kw)


def _build(spec: tuple[str, dict[str, Any]]) -> Any:
    path, fields_ = spec
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)(**fields_)


def _child_main(run: ChildRun | ExtractRun) -> None:
    """The child: one run of one file or one extraction (exit 0 done, 1 failed; a kill ends it before).
    It ends with `os._exit`: a run worker's exit is not what is tested, and a stray non-daemon thread
    must not keep a child alive past its run."""
    import faulthandler
    import traceback

    faulthandler.dump_traceback_later(150, exit=True)  # a hung child says where it hangs
    code = 1
    try:
        _child_body(run)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _child_body(run: ChildRun | ExtractRun) -> None:
    import dagster as dg

    from fc_assets.ingestion.deliver.pipeline import process_file
    from fc_assets.ingestion.deliver.plans import plan_for
    from fc_assets.ingestion.feeds import get_feed
    from fc_assets.settings import get_settings

    for var in (KILL_ENV, CRASH_ENV):
        os.environ.pop(var, None)
    resources = {name: _build(spec) for name, spec in run.resources.items()}
    if isinstance(run, ExtractRun):
        from fc_assets.extraction.assets import build_extraction_asset
        from fc_assets.extraction.entities import ENTITIES

        warnings.filterwarnings("ignore", category=dg.BetaWarning)  # backfill_policy: the asset's, known
        spec = next(e for e in ENTITIES if e.name == run.entity)
        asset = build_extraction_asset(spec, run.start_date, retry_policy=None)
        tags = {
            "dagster/asset_partition_range_start": run.first,
            "dagster/asset_partition_range_end": run.last,
        }
        with dg.DagsterInstance.from_ref(run.instance_ref) as instance:
            result = dg.materialize(
                [asset],
                resources=resources,
                instance=instance,
                tags=tags,
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
                raise_on_error=False,
            )
        sys.exit(0 if result.success else 1)
    os.environ.update(run.environ)
    if run.kill_at:
        os.environ[KILL_ENV] = run.kill_at
    get_settings.cache_clear()
    feed = dataclasses.replace(get_feed(run.feed), inboxes=run.inboxes)
    if run.dagster is not None:
        from fc_assets_tests.ingestion_flow.flow import feed_definitions

        d = run.dagster
        job = feed_definitions(feed, resources).resolve_job_def(f"{feed.name}_feed_job")
        with dg.DagsterInstance.from_ref(d["instance_ref"]) as instance:
            result = job.execute_in_process(
                instance=instance,
                partition_key=d["partition_key"],
                run_config=d["run_config"],
                tags=d["tags"],
                raise_on_error=False,
            )
        sys.exit(0 if result.success else 1)
    process_file(plan_for(feed), run.ref, pipeline_env(resources, run.batch_size, f"child-{os.getpid()}"))


def pipeline_env(resources: dict[str, Any], batch_size: int, run_id: str):
    """The `PipelineEnv` the feed asset builds from its resources (child and re-execution alike); the
    inbox's S3 client comes from the warmed session, with the `s3` resource's endpoint and credentials."""
    from fc_assets.ingestion.deliver.pipeline import PipelineEnv
    from fc_assets.ingestion.deliver.sources import SourceStore

    s3 = resources["s3"]
    client = _BOTO.client(
        "s3",
        endpoint_url=s3.endpoint_url,
        region_name=s3.region_name,
        aws_access_key_id=s3.aws_access_key_id,
        aws_secret_access_key=s3.aws_secret_access_key,
    )
    return PipelineEnv(
        lake=resources["lake"].get_lake(),
        sources=SourceStore(s3_client=client, sftp=resources["sftp"]),
        fluent=resources["fluent"].get_client,
        run_id=run_id,
        log=lambda m: None,
        batch_timeout_s=60.0,
        batch_size=batch_size,
    )


def run_in_child(
    run: ChildRun | ExtractRun, *, kill_after_s: float | None = None, timeout_s: float = 180.0
) -> int:
    """Run `run` in a child; SIGKILL it after `kill_after_s` if still running. Returns its exit code
    (`KILLED` if it died by SIGKILL, whoever sent it)."""
    p = _CTX.Process(target=_child_main, args=(run,), name="crash-child")
    p.start()
    if kill_after_s is not None:
        p.join(kill_after_s)
        if p.is_alive():
            p.kill()
    p.join(timeout_s)
    if p.is_alive():
        p.kill()
        p.join()
        raise TimeoutError(f"child run {run} still running after {timeout_s:.0f} s")
    return p.exitcode


def warm_up() -> float:
    """Start the forkserver (its imports) before anything is timed; returns the seconds it took."""
    started = time.monotonic()
    p = _CTX.Process(target=int)
    p.start()
    p.join()
    return time.monotonic() - started


# ------------------------------------------------------------------------------------------------ checks


def partial_objects(lake: Lake, since: float | None = None) -> list[str]:
    """Objects outside `_tmp/` a reader could find half-written: every Parquet footer and every JSON
    document of the lake (modified since the epoch time `since`, if given) must parse."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    bad = []
    infos = lake.fs.get_file_info(pafs.FileSelector(lake.root, recursive=True, allow_not_found=True))
    for info in infos:
        rel = info.path[len(lake.root) + 1 :]
        if info.type != pafs.FileType.File or rel.startswith(f"{TMP_DIR}/"):
            continue
        if since is not None and info.mtime is not None and info.mtime.timestamp() < since - 2:
            continue
        try:
            if rel.endswith(".parquet"):
                with lake.fs.open_input_file(lake.path(rel)) as f:
                    pq.ParquetFile(f).metadata  # noqa: B018  (reads the footer)
            elif rel.endswith(".json"):
                json.loads(lake.read_bytes(rel))
            elif rel.endswith(".jsonl"):
                for line in lake.read_bytes(rel).splitlines():
                    if line.strip():
                        json.loads(line)
        except Exception as e:  # anything a reader would trip on
            bad.append(f"{rel}: {type(e).__name__}: {e}")
    return bad


def tmp_leftovers(lake: Lake) -> list[str]:
    """Temporaries a killed writer left in `_tmp/` (invisible to readers; removed after a day)."""
    return [rel for rel in lake.list_files(TMP_DIR)]


def ledger_problems(lake: Lake, feed: str, file_ids: list[str] | None = None) -> list[str]:
    """Where the ledger, the feed's state and the send logs disagree once every file was re-executed: a
    file not archived, a slot still held, a send-log record left mid-request, the last committed file."""
    ledger = Ledger(lake, feed)
    state = ledger.state()
    out = []
    if state.inflight:
        out.append(f"slot still held: {state.inflight}")
    entries = {e.file_id: e for e in ledger.entries()}
    for fid in file_ids or list(entries):
        e = entries.get(fid)
        if e is None:
            out.append(f"{fid}: no ledger entry")
            continue
        if not e.done or e.outcome != "processed":
            out.append(f"{e.key}: stage {e.stage}, outcome {e.outcome}")
        for key, rec in ledger.sends(fid).records.items():
            if key in ("plan", "job"):
                continue
            if rec.get("state") not in ("complete", "done") or rec.get("in_flight") is not None:
                out.append(f"{e.key}: send-log record {key} left {rec.get('state')}")
        if e.counts.get("sent", 0) and state.committed < 1:
            out.append(f"{e.key}: sent but nothing ever committed")
    if file_ids and state.last_file_id != file_ids[-1]:
        out.append(f"last committed file {state.last_file_id}, expected {file_ids[-1]}")
    return out
