"""The fault matrix of issue 14: five operations x eleven faults, each cell run for real and recorded into
docs/reliability.md (matrix.py) when the session ends with every cell.

Operations: one day of orders extracted to the lake (Dagster `materialize`), and four feed files run the way
the daemon would (sensor tick, then the feed job in process, ingestion_flow/flow.py): inventory from S3 and
from SFTP (Batch API), products (Event API), locations (GraphQL mutations). Faults: the sandbox's own
(`/_sandbox/faults`), S3 `500 InternalError`/`503 SlowDown` from a proxy in front of moto (in that column
every S3 request of the cell, lake and inbox, goes through it) and a restart of the asyncssh SFTP server
while the file is being read. A fault that is not on an operation's path is injected all the same and its outcome recorded. Each
cell has its own lake (a local directory, on S3 behind the proxy in the S3 column), inbox and file names;
the sandbox, moto, the SFTP server and one Dagster instance are shared by the module.

Every cell ends in one of two outcomes, asserted here:
- completed, with exact counts: the Parquet ids equal the sandbox's own answer for the day; Fluent's final
  state equals the file's rows and every record the sandbox received is accounted for by the run's
  metadata (`sent`, plus the re-sends it reports after an uncertain POST);
- failed with an error naming the cause, nothing half-done (no lake object or temporary; the file released
  to `error/` with its reason, not in `processed/`, no file left in flight in the ledger), and a
  re-execution after the fault is cleared that completes with exact counts.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

from fc_assets.extraction.assets import build_extraction_asset
from fc_assets.extraction.entities import ORDERS
from fc_assets.ingestion.deliver.ledger import Ledger
from fc_assets.ingestion.deliver.plans import plan_for
from fc_assets.ingestion.deliver.senders import CRASH_ENV
from fc_assets.ingestion.deliver.sources import SourceStore
from fc_assets.ingestion.deliver.state_ops import reprocess
from fc_assets.ingestion.feeds import inventory_feed, locations_feed, products_feed
from fc_assets.resources.fluent import FluentResource
from fc_assets.resources.sftp import SFTPSession
from fc_assets.resources.storage import TMP_DIR, Lake, LakeResource
from fc_assets_tests.extraction.test_sandbox_extraction import START_DATE, day_key, expected_ids, parquet_ids
from fc_assets_tests.fixtures.settings import set_settings_env
from fc_assets_tests.ingestion_flow.flow import (
    Flow,
    Received,
    failure_metadata,
    metadata,
    on_hand,
    sandbox_fluent,
)
from fc_assets_tests.ingestion_flow.helpers import inventory_csv
from fc_assets_tests.reliability.matrix import FAULTS, OPERATIONS, Matrix

LATENCY_MS, LATENCY_TIMEOUT_S = 1000, 0.3
S3_BURST = 4  # consecutive S3 requests answered 500 / 503 SlowDown
BATCH_TIMEOUT_S = 1.0
EXTRACTION_RETRY = dg.RetryPolicy(max_retries=1, delay=0.2)
DAY = day_key(2)

# what a failed cell's error must name
CAUSES = {
    "latency": r"[Tt]imeout",
    "429_retry_after": r"429",
    "429_no_retry_after": r"429",
    "5xx_burst": r"HTTP 5\d\d",
    "dropped_connections": r"RemoteProtocolError|disconnected|closed",
    "token_expiry": r"401|token",
    "stuck_cursor": r"cursor did not advance",
    "stuck_batch": r"RUNNING",
    "rejected_entities": r"reject",
    "s3_errors": r"500|503|SlowDown|InternalError",
    "sftp_restart": r"SFTP|sftp|[Cc]onnection|EOF|[Ss]ocket",
}

# the sandbox's faults per column (S3 and SFTP faults are injected by the test itself)
SANDBOX_FAULTS: dict[str, dict[str, Any]] = {
    "latency": {"latency_ms": LATENCY_MS},
    "429_retry_after": {"rate_limit": {"count": 3, "retry_after": 0.2}},
    "429_no_retry_after": {"rate_limit": {"count": 3, "retry_after": None}},
    "5xx_burst": {"server_errors": {"count": 3, "status": 503}},
    "dropped_connections": {"drop_connections": 2},
    "token_expiry": {"expire_tokens_after": 2},
    "stuck_cursor": {"stuck_cursor": True},
    "stuck_batch": {"stuck_batches": True},
    "rejected_entities": {},  # per operation: the rejected refs are the cell's own
    "s3_errors": {},
    "sftp_restart": {},
}


# the cells whose fault the operation never meets: injected all the same, recorded as such (a completed
# cell there says nothing about the fault)
NOT_ON_PATH: dict[tuple[str, str], str] = {
    ("extraction", "stuck_batch"): "extraction creates no batch",
    ("extraction", "rejected_entities"): "extraction sends no entity",
    ("extraction", "sftp_restart"): "extraction reads no SFTP file",
    ("products", "stuck_batch"): "events, no batch",
    ("products", "rejected_entities"): "the sandbox rejects batch entities only",
    ("locations", "stuck_batch"): "mutations, no batch",
    **{
        (op, "stuck_cursor"): "a file's sending reads no paged connection"
        for op in OPERATIONS
        if op != "extraction"
    },
    **{(op, "sftp_restart"): "the file is on S3" for op in ("s3_inventory", "products", "locations")},
}


def unconsumed(fault: str, left: dict[str, Any]) -> str | None:
    """What of a counted sandbox fault the operation never consumed (the faults as the sandbox holds them
    after the run), or None."""
    if fault in ("429_retry_after", "429_no_retry_after"):
        return (
            f"rate_limit count {left['rate_limit']['count']} left"
            if left.get("rate_limit", {}).get("count")
            else None
        )
    if fault == "5xx_burst":
        return (
            f"server_errors count {left['server_errors']['count']} left"
            if left.get("server_errors", {}).get("count")
            else None
        )
    if fault == "dropped_connections":
        return f"drop_connections {left['drop_connections']} left" if left.get("drop_connections") else None
    if fault == "token_expiry":
        return "the tokens never expired" if "expire_tokens_after" in left else None
    return None


def describe(fault: str, extra: dict[str, Any]) -> str:
    if fault == "s3_errors":
        return f"next {S3_BURST} S3 requests: 500 InternalError / 503 SlowDown in turn"
    if fault == "sftp_restart":
        return "SFTP server stopped and started again while the file is read (reads slowed to 2 s)"
    faults = {**SANDBOX_FAULTS[fault], **extra}
    return ", ".join(f"{k}={v}" for k, v in faults.items()).replace("None", "null")


@pytest.fixture(scope="session")
def fault_matrix():
    matrix = Matrix(
        settings=", ".join(f"`{k}={v}`" for k, v in SETTINGS.items())
        + f" (`FC_FLUENT_TIMEOUT_S={LATENCY_TIMEOUT_S}` in the latency cells, against {LATENCY_MS} ms of "
        f"latency); extraction retry policy {EXTRACTION_RETRY.max_retries} x {EXTRACTION_RETRY.delay} s; "
        f"batch timeout {BATCH_TIMEOUT_S} s; S3 bursts of {S3_BURST} errors"
    )
    yield matrix
    if matrix.complete():
        matrix.write()


def fast_tmp() -> str | None:
    """Memory-backed /dev/shm when there is one (else the default temporary directory)."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


@pytest.fixture(scope="module")
def matrix_instance():
    """One SQLite instance for every cell, its event log in one database (the default shards it per run,
    creating and migrating a database for each: a second per run here), in memory-backed /dev/shm when
    there is one (SQLite syncs every event to disk: another second per run on a busy disk)."""
    home = Path(tempfile.mkdtemp(prefix="fc-matrix-dagster-", dir=fast_tmp()))
    events = {
        "module": "dagster._core.storage.event_log",
        "class": "ConsolidatedSqliteEventLogStorage",
        "config": {"base_dir": str(home / "events")},
    }
    with dg.instance_for_test(temp_dir=str(home), overrides={"event_log_storage": events}) as instance:
        assert instance.event_log_storage.supports_global_concurrency_limits  # the feeds' pools
        yield instance
    shutil.rmtree(home, ignore_errors=True)


_lakes = itertools.count(1)
_s3_clients: dict[str, Any] = {}


class SharedClientS3Resource(S3Resource):
    """S3Resource whose boto3 client is made once per endpoint: dagster_aws builds a new boto3 session for
    every client, which reads botocore's service models again (~0.5 s a run and a tick on a busy machine)."""

    def get_client(self) -> Any:
        if self.endpoint_url not in _s3_clients:
            _s3_clients[self.endpoint_url] = super().get_client()
        return _s3_clients[self.endpoint_url]


@dataclass
class Stack:
    sandbox: Any
    s3: Any
    proxy: Any
    sftp: Any
    instance: dg.DagsterInstance
    s3_faults: bool = False  # this cell's S3 requests go through the fault proxy (else straight to moto)

    @property
    def s3_endpoint(self) -> str:
        return self.proxy.endpoint_url if self.s3_faults else self.s3.endpoint_url

    local: Path | None = None  # where the file:// lakes of the cells without S3 faults live

    def lake(self) -> Lake:
        """The cell's own lake: on S3 through the proxy in the S3 column, else a local directory (a lake
        `file://` URI, as production may use): the other faults are not about the lake, and a local lake
        spares the cell seconds of S3 round trips on a busy machine."""
        n = next(_lakes)
        if not self.s3_faults:
            lake = Lake((self.local / f"lake-{n}").as_uri())
        else:
            lake = Lake(
                f"s3://matrix-lake-{n}/lake",
                endpoint_url=self.s3_endpoint,
                access_key_id="testing",
                secret_access_key="testing",
            )
        lake.ensure_root()
        return lake


@pytest.fixture(scope="module")
def stack(sandbox, s3_server, s3_fault_proxy, restartable_sftp_server, matrix_instance):
    local = Path(tempfile.mkdtemp(prefix="fc-matrix-lakes-", dir=fast_tmp()))
    yield Stack(sandbox, s3_server, s3_fault_proxy, restartable_sftp_server, matrix_instance, local=local)
    shutil.rmtree(local, ignore_errors=True)
    s3_fault_proxy.clear()
    sandbox.admin.clear_faults()


SETTINGS = {
    "FC_FLUENT_TIMEOUT_S": 5,
    "FC_FLUENT_MAX_RETRIES": 2,
    "FC_FLUENT_BACKOFF_S": 0.05,
    "FC_FLUENT_PAGE_SIZE": 10,
    "FC_FLUENT_CONCURRENCY": 2,
    "FC_FEED_MAX_RETRIES": 2,
    "FC_FEED_RETRY_DELAY_S": 0.1,
    "FC_SENSOR_FULL_SCAN_MINUTES": 0,  # every tick a full scan: a reprocessed file is seen at once
}


def set_env(monkeypatch, stack: Stack, fault: str) -> None:
    env = {
        "FLUENT_BASE_URL": stack.sandbox.base_url,
        "FLUENT_CLIENT_ID": "fc-sandbox",
        "FLUENT_RETAILER_ID": "1",
        **SETTINGS,
        **({"FC_FLUENT_TIMEOUT_S": LATENCY_TIMEOUT_S} if fault == "latency" else {}),
    }
    unset = dict.fromkeys(("FLUENT_CLIENT_SECRET", "FLUENT_USERNAME", "FLUENT_PASSWORD", CRASH_ENV))
    set_settings_env(monkeypatch, **env, **unset)


def first_line(error: str) -> str:
    text = error.strip().splitlines()
    return text[0][:400] if text else ""


def step_error(result: dg.ExecuteInProcessResult) -> str:
    """The step's failure as the UI shows it: Dagster's message, then the error that caused it."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data.error:
            err = event.step_failure_data.error
            parts = [first_line(err.message)]
            while err.cause is not None:
                err = err.cause
                parts.append(first_line(err.message))
            return " <- ".join(parts)
    return ""


# ------------------------------------------------------------------------------------------- operations


class Operation:
    """One operation of a cell: `run()` (the faulted attempt), `completed()` (exact counts, a summary),
    `clean()` (nothing half-done after a failure) and `rerun()` (after the fault is cleared)."""

    kind = "s3"
    rejects: set[str] = set()

    def extra_faults(self, fault: str) -> dict[str, Any]:
        return {}


class Extraction(Operation):
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.lake = stack.lake()
        self.asset = build_extraction_asset(ORDERS, START_DATE, retry_policy=EXTRACTION_RETRY)

    def prepare(self) -> None:
        pass

    def run(self) -> dg.ExecuteInProcessResult:
        lake = self.lake
        return dg.materialize(
            [self.asset],
            resources={
                "fluent": FluentResource.from_env(),
                "lake": LakeResource(
                    uri=lake.uri,
                    endpoint_url=lake.endpoint_url,
                    access_key_id=lake.access_key_id,
                    secret_access_key=lake.secret_access_key,
                ),
            },
            instance=self.stack.instance,
            partition_key=DAY,
            raise_on_error=False,
        )

    def error(self, result) -> str:
        return step_error(result)

    def completed(self, result) -> str:
        assert result.success
        ids = parquet_ids(self.lake, "orders", DAY)
        expected = expected_ids(self.stack.sandbox, "orders", DAY)
        assert ids == expected and ids
        assert not self.lake.list_files(TMP_DIR)
        (mat,) = result.asset_materializations_for_node("orders")
        run_md = mat.metadata
        assert run_md["rows"].value == len(ids)
        retries = run_md["run_retries"].value
        reauths = run_md["run_reauths"].value
        attempts = 1 + sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")
        return (
            f"{len(ids)} rows in the Parquet object = the sandbox's {len(expected)} orders of the day; "
            f"{run_md['run_pages'].value} pages, {retries} client retries, {reauths} re-auths, "
            f"{attempts} step attempt(s)"
        )

    def clean(self, result) -> str:
        assert not result.asset_materializations_for_node("orders")
        assert not self.lake.list_files("fluent/orders"), self.lake.list_files("fluent/orders")
        assert not self.lake.list_files(TMP_DIR)
        return "no Parquet object, no temporary, partition not materialized"

    def rerun(self) -> dg.ExecuteInProcessResult:
        return self.run()


@dataclass
class FeedKind:
    name: str
    feed: Callable[[], Any]
    body: Callable[[str], tuple[bytes, dict[Any, Any]]]  # prefix -> (file, expected state by key)
    state: Callable[[Any, dict[Any, Any]], dict[Any, Any]]  # Fluent's view of the expected keys
    received: Callable[[Received], list[Any]]  # keys of the records the sandbox received
    resent: str | None = None  # metadata of the re-sends after an uncertain POST


def _inventory_body(prefix: str) -> tuple[bytes, dict]:
    rows = [(f"{prefix}-{i}", f"LOC{i % 2}", 10 + i) for i in range(6)]
    return inventory_csv(rows), {(s, loc): q for s, loc, q in rows}


def _inventory_state(fluent, expected: dict) -> dict:
    return on_hand(fluent, sorted({s for s, _ in expected}))


def _products_body(prefix: str) -> tuple[bytes, dict]:
    names = {f"{prefix}-S1": "Shirt", f"{prefix}-V1": "Shirt red", f"{prefix}-S2": "Socks"}
    body = (
        "ref,type,name,parent_ref,price,currency,gtin\n"
        f"{prefix}-S1,STANDARD,Shirt,,19.99,AUD,12345678\n"
        f"{prefix}-V1,VARIANT,Shirt red,{prefix}-S1,21.50,AUD,12345679\n"
        f"{prefix}-S2,STANDARD,Socks,,5.00,AUD,12345681\n"
    )
    return body.encode(), names


PRODUCTS_QUERY = """query P($refs: [String!]) { standardProducts(ref: $refs, first: 50) { edges { node { ref name } } }
  variantProducts(ref: $refs, first: 50) { edges { node { ref name } } } }"""


def _products_state(fluent, expected: dict) -> dict:
    with fluent.get_client() as client:
        data = client.graphql(PRODUCTS_QUERY, {"refs": sorted(expected)})
    edges = data["standardProducts"]["edges"] + data["variantProducts"]["edges"]
    return {e["node"]["ref"]: e["node"]["name"] for e in edges}


def _locations_body(prefix: str) -> tuple[bytes, dict]:
    names = {f"{prefix}-L{i}": f"Store {i}" for i in range(1, 4)}
    body = "ref,name,type,latitude,longitude,street,city,postcode,country\n" + "".join(
        f"{ref},{name},STORE,-33.8,151.2,1 George St,Sydney,2000,AU\n" for ref, name in names.items()
    )
    return body.encode(), names


def _locations_state(fluent, expected: dict) -> dict:
    body = " ".join(f'l{i}: location(ref: "{r}") {{ ref name }}' for i, r in enumerate(sorted(expected)))
    with fluent.get_client() as client:
        data = client.graphql(f"query {{ {body} }}")
    return {v["ref"]: v["name"] for v in data.values() if v}


FEEDS = {
    "inventory": FeedKind(
        "inventory",
        inventory_feed,
        _inventory_body,
        _inventory_state,
        lambda r: [(e["skuRef"], e["locationRef"]) for e in r.entities()],
    ),
    "products": FeedKind(
        "products",
        products_feed,
        _products_body,
        _products_state,
        lambda r: [e["entityRef"] for e in r.events() if e["name"] == "UPSERT_PRODUCT"],
        "events_resent_after_uncertain_post",
    ),
    "locations": FeedKind(
        "locations",
        locations_feed,
        _locations_body,
        _locations_state,
        lambda r: [m["input"].get("ref") or m["input"].get("id") for m in r.mutations()],
        "mutations_resent_after_uncertain_post",
    ),
}
_files = itertools.count(1)


class FeedFile(Operation):
    def __init__(self, stack: Stack, feed: FeedKind, kind: str) -> None:
        self.stack, self.spec, self.kind = stack, feed, kind
        self.lake = stack.lake()
        self.flow = Flow(
            feed.feed(),
            instance=stack.instance,
            lake=self.lake,
            s3_endpoint=stack.s3_endpoint,
            sftp_server=stack.sftp,
            fluent=FluentResource.from_env(),
            s3=SharedClientS3Resource(
                endpoint_url=stack.s3_endpoint,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
                region_name="us-east-1",
            ),
        )
        n = next(_files)
        self.prefix = f"FM{n:03d}"
        self.name = f"m{n:03d}.csv"
        self.body, self.expected = feed.body(self.prefix)
        first = sorted(self.expected)[0]
        self.rejects = {first}
        self.fluent = sandbox_fluent(stack.sandbox)
        self.req: dg.RunRequest | None = None

    def extra_faults(self, fault: str) -> dict[str, Any]:
        if fault != "rejected_entities":
            return {}
        if self.spec.name == "inventory":
            return {"reject_entities": {"skuRefs": [k[0] for k in self.rejects]}}
        if self.spec.name == "locations":
            return {"fail_mutations": {ref: 99 for ref in self.rejects}}
        return {"reject_entities": {"skuRefs": sorted(self.rejects)}}  # no such fault for events

    def key(self) -> str:
        return (
            f"{self.flow.feed.name}/{self.name}" if self.kind == "s3" else f"{self.flow.sftp_dir}/{self.name}"
        )

    def _request(self) -> dg.RunRequest:
        reqs: list[dg.RunRequest] = []
        for _ in range(3 if self.kind == "sftp" else 1):  # SFTP: a file is taken on its second sighting
            reqs += self.flow.tick(self.kind)
            if reqs:
                break
        assert len(reqs) == 1, (reqs, self.flow.skip)
        return reqs[0]

    def prepare(self) -> None:
        (self.flow.put_s3 if self.kind == "s3" else self.flow.put_sftp)(self.name, self.body)
        self.req = self._request()
        self.received = Received(self.stack.sandbox.admin)

    def run(self) -> dg.ExecuteInProcessResult:
        return self.flow.execute(self.req, batch_timeout_s=BATCH_TIMEOUT_S)

    def error(self, result) -> str:
        return failure_metadata(result).get("error", "") or step_error(result)

    # what is where: the inbox, processed/, error/
    def places(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"inbox": [], "processed": [], "error": []}
        if self.kind == "s3":
            got = self.flow.s3.list_objects_v2(Bucket=self.flow.bucket).get("Contents", [])
            names = [o["Key"].removeprefix(f"{self.flow.feed.name}/") for o in got]
        else:
            base = self.flow.sftp_root / self.flow.sftp_dir
            names = [str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()]
        for n in names:
            if n.endswith(".rejects.csv"):
                continue
            folder = n.split("/", 1)[0] if "/" in n else "inbox"
            out.setdefault(folder, []).append(n)
        return out

    def _exact(self, md: dict[str, Any], received: Received, rejected: set) -> str:
        expected = {k: v for k, v in self.expected.items() if k not in rejected}
        state = self.spec.state(self.fluent, self.expected)
        assert state == expected, (state, expected)
        keys = self.spec.received(received)
        assert set(keys) <= set(self.expected), set(keys) - set(self.expected)
        resent = md.get(self.spec.resent, 0) if self.spec.resent else 0
        adopted = md.get("fluent_batches_adopted", 0)
        assert md["sent"] <= len(keys) <= md["sent"] + resent, (md["sent"], len(keys), resent)
        assert md["fluent_rejected"] == len(rejected)
        places = self.places()
        assert places["inbox"] == [] and places["error"] == [] and len(places["processed"]) == 1, places
        ledger = Ledger(self.lake, self.flow.feed.name)
        assert ledger.state().inflight is None
        assert not self.lake.list_files(TMP_DIR)
        extras = [f"{resent} re-sent after an uncertain POST"] if resent else []
        extras += [f"{adopted} batch adopted"] if adopted else []
        extras += [f"{md['fluent_retried_rows']} row(s) retried"] if md.get("fluent_retried_rows") else []
        return (
            f"{len(self.expected)} rows: Fluent holds {len(expected)} as in the file"
            + (f", {len(rejected)} rejected by Fluent and reported" if rejected else "")
            + f"; received {len(keys)} record(s) = sent {md['sent']}"
            + (f" ({', '.join(extras)})" if extras else "")
            + "; file in processed/"
        )

    def completed(self, result, rejected: set | None = None) -> str:
        assert result.success, self.error(result)
        md = metadata(result)
        attempts = 1 + sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")
        summary = self._exact(md, self.received, rejected or set())
        return summary + f"; {attempts} attempt(s)"

    def clean(self, result) -> str:
        entry = next(e for e in Ledger(self.lake, self.flow.feed.name).entries() if e.key == self.key())
        assert entry.outcome == "error" and entry.error, entry
        places = self.places()
        assert places["inbox"] == [] and places["processed"] == [] and len(places["error"]) == 1, places
        assert Ledger(self.lake, self.flow.feed.name).state().inflight is None
        assert not self.lake.list_files(TMP_DIR)
        return f"file in error/ after {entry.attempts} attempts, ledger outcome error, nothing in flight"

    def rerun(self) -> dg.ExecuteInProcessResult:
        flow = self.flow
        sources = SourceStore(s3_client=flow.s3, sftp=flow.resources["sftp"])
        reprocess(self.lake, plan_for(flow.feed), sources, self.key(), "fault-matrix")
        flow.cursors.pop(self.kind, None)  # the sensor's next full scan
        self.received = Received(self.stack.sandbox.admin)
        self.req = self._request()
        return self.flow.execute(self.req, batch_timeout_s=BATCH_TIMEOUT_S)

    def send_rejected_again(self) -> str:
        """The same content as a new file after the fault: only the rows Fluent rejected are sent."""
        self.name = self.name.replace(".csv", "-again.csv")
        self.prepare()
        result = self.run()
        assert result.success, self.error(result)
        md = metadata(result)
        assert md["sent"] == len(self.rejects) and md["fluent_rejected"] == 0
        assert self.spec.state(self.fluent, self.expected) == self.expected
        return f"the same rows in the next file: sent {md['sent']} (the rejected), Fluent holds all {len(self.expected)}"


def make_operation(op: str, stack: Stack) -> Operation:
    if op == "extraction":
        return Extraction(stack)
    if op == "s3_inventory":
        return FeedFile(stack, FEEDS["inventory"], "s3")
    if op == "sftp_inventory":
        return FeedFile(stack, FEEDS["inventory"], "sftp")
    return FeedFile(stack, FEEDS[op], "s3")


# ------------------------------------------------------------------------------------------- the cells


def restart_sftp_during_the_read(stack: Stack, op: Operation, monkeypatch) -> None:
    """The file's download starts (reads slowed to 2 s each, so no byte has arrived), then the server is
    stopped and started again before the first read returns."""
    stack.sftp.slow_reads(2000)
    original = SFTPSession.open
    done = threading.Event()

    def open_then_restart(self, path: str, mode: str = "rb"):
        f = original(self, path, mode)
        if "r" in mode and path == op.key() and not done.is_set():
            done.set()
            stack.sftp.slow_reads(None)
            stack.sftp.restart()
        return f

    monkeypatch.setattr(SFTPSession, "open", open_then_restart)


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("op", list(OPERATIONS))
def test_cell(op, fault, stack, fault_matrix, monkeypatch):
    cell = fault_matrix.start(op, fault)
    try:
        _run_cell(cell, op, fault, stack, monkeypatch)
    except BaseException as e:
        cell.done("test failed", f"{type(e).__name__}: {first_line(str(e)) or repr(e)}")
        raise
    finally:
        stack.sandbox.admin.clear_faults()
        stack.proxy.clear()
        stack.sftp.slow_reads(None)


def _run_cell(cell, op: str, fault: str, stack: Stack, monkeypatch) -> None:
    set_env(monkeypatch, stack, fault)
    stack.s3_faults = fault == "s3_errors"
    operation = make_operation(op, stack)
    operation.prepare()
    extra = operation.extra_faults(fault)
    cell.injected = describe(fault, extra)
    restarter = None
    if fault == "s3_errors":
        failed_before = stack.proxy.failed
        stack.proxy.fail(S3_BURST)
    elif fault == "sftp_restart":
        if op == "sftp_inventory":
            restart_sftp_during_the_read(stack, operation, monkeypatch)
        else:  # not on this operation's path: restarted while it runs
            restarter = threading.Thread(target=stack.sftp.restart, daemon=True)
    elif SANDBOX_FAULTS[fault] or extra:
        stack.sandbox.admin.set_faults(**SANDBOX_FAULTS[fault], **extra)
    if restarter:
        restarter.start()
    cell.off_path = NOT_ON_PATH.get((op, fault), "")
    result = operation.run()
    if restarter:
        restarter.join(60)
    left = unconsumed(fault, stack.sandbox.admin.faults())
    assert left is None, f"the fault never reached the operation: {left}"
    stack.sandbox.admin.clear_faults()
    stack.proxy.clear()
    if fault == "latency":
        time.sleep(LATENCY_MS / 1000 + 0.2)  # requests the client gave up on still reach the sandbox
    if fault == "s3_errors":
        assert stack.proxy.failed - failed_before == S3_BURST  # every injected error was answered

    if result.success:
        rejected = (
            operation.rejects
            if fault == "rejected_entities" and op in ("s3_inventory", "sftp_inventory", "locations")
            else set()
        )
        detail = (
            operation.completed(result, rejected)
            if isinstance(operation, FeedFile)
            else operation.completed(result)
        )
        rerun = operation.send_rejected_again() if rejected else ""
        cell.done("completed", detail, rerun)
        return
    error = first_line(operation.error(result))
    assert re.search(CAUSES[fault], error), f"the error does not name the cause ({fault}): {error}"
    clean = operation.clean(result)
    again = operation.rerun()
    summary = operation.completed(again)
    cell.done("failed", f"{error} — {clean}", f"completed: {summary}")


def test_every_cell_has_an_outcome(fault_matrix):
    """Runs after the cells (file order): none missing, none unknown; the session then writes the document."""
    missing = fault_matrix.missing()
    assert not missing, f"cells without an outcome: {missing}"
    failed = [k for k, c in fault_matrix.cells.items() if c.outcome == "test failed"]
    assert not failed, f"cells whose test failed: {failed}"
