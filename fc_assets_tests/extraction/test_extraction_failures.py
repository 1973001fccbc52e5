"""How extraction fails, against the Fluent sandbox and moto's S3 server (both on loopback).

Permanent errors (a malformed query, data Arrow cannot convert) fail the Dagster step at once and are not
re-run by the asset's RetryPolicy; token expiry in the middle of a run is survived by re-authenticating.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import httpx
import pytest

from fc_assets.extraction.assets import build_extraction_asset
from fc_assets.extraction.columns import TIMESTAMP, Column
from fc_assets.extraction.entities import ORDERS, Source, load_query
from fc_assets.extraction.extract import extract_periods
from fc_assets.extraction.windows import Window
from fc_assets.resources.fluent import FluentClient, FluentGraphQLError
from fc_assets.resources.fluent_errors import FluentDataError
from fc_assets.resources.storage import TMP_DIR
from fc_assets_tests.extraction.test_sandbox_extraction import (
    START_DATE,
    day_key,
    expected_ids,
    resources,
)

RETRYING = dg.RetryPolicy(max_retries=2, delay=0.1)


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as inst:
        yield inst


@pytest.fixture(autouse=True)
def no_faults(sandbox):
    sandbox.admin.clear_faults()
    yield
    sandbox.admin.clear_faults()


def graphql_requests(sandbox) -> int:
    return sandbox.admin.received()["requests"].get("POST /graphql", 0)


def step_events(result: dg.ExecuteInProcessResult, kind: str) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.event_type_value == kind]


def failed_step_seconds(instance: dg.DagsterInstance, run_id: str) -> float:
    """From the step's start to its failure, by the event log's timestamps."""
    records = instance.all_logs(run_id)
    times = {
        r.dagster_event.event_type_value: r.timestamp
        for r in records
        if r.dagster_event and r.dagster_event.event_type_value in ("STEP_START", "STEP_FAILURE")
    }
    return times["STEP_FAILURE"] - times["STEP_START"]


def test_a_malformed_query_fails_the_run_at_once_without_retries(sandbox, lake, instance, tmp_path):
    # `totalCount` is not a field of OrderConnection: "Cannot query field 'totalCount' on type 'OrderConnection'"
    bad = tmp_path / "orders_typo.graphql"
    bad.write_text(load_query("orders.graphql").replace("edges {", "totalCount\n    edges {", 1))
    spec = replace(ORDERS, name="orders_typo", sources=(Source(str(bad), "orders"),))
    asset = build_extraction_asset(spec, START_DATE, retry_policy=RETRYING)
    before = graphql_requests(sandbox)
    result = dg.materialize(
        [asset],
        resources=resources(sandbox, lake, concurrency=1),
        instance=instance,
        partition_key=day_key(2),
        raise_on_error=False,
    )
    assert not result.success
    failure = step_events(result, "STEP_FAILURE")[0].step_failure_data.error
    assert "Cannot query field 'totalCount' on type 'OrderConnection'" in failure.to_string()
    assert not step_events(result, "STEP_UP_FOR_RETRY")  # the RetryPolicy did not apply
    assert graphql_requests(sandbox) - before == 1  # one stream, one request, no client retry
    assert failed_step_seconds(instance, result.run_id) < 5
    assert not lake.list_files("fluent/orders_typo") and not lake.list_files(TMP_DIR)


def test_data_arrow_cannot_convert_fails_at_once_without_retries(sandbox, lake, instance):
    # an order's `ref` read as a timestamp: Arrow cannot parse it, on every attempt
    spec = replace(
        ORDERS, name="orders_bad_time", columns=(*ORDERS.columns, Column("ref_time", "ref", TIMESTAMP))
    )
    asset = build_extraction_asset(spec, START_DATE, retry_policy=RETRYING)
    result = dg.materialize(
        [asset],
        resources=resources(sandbox, lake, concurrency=2),
        instance=instance,
        partition_key=day_key(2),
        raise_on_error=False,
    )
    assert not result.success
    failure = step_events(result, "STEP_FAILURE")[0].step_failure_data.error.to_string()
    assert "cannot be converted" in failure and "ref_time" in failure
    assert not step_events(result, "STEP_UP_FOR_RETRY")
    assert not lake.list_files("fluent/orders_bad_time") and not lake.list_files(TMP_DIR)


LATENCY_MS = 400


class Sends(httpx.HTTPTransport):
    """When each GraphQL request went out (monotonic), and when the one whose body holds `match` was
    answered."""

    def __init__(self, match: str) -> None:
        super().__init__()
        self.match = match.encode()
        self.sent: list[float] = []
        self.failed_at: float | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/graphql":
            self.sent.append(time.monotonic())
        response = super().handle_request(request)
        if self.match in request.content and self.failed_at is None:
            self.failed_at = time.monotonic()
        return response


def test_the_first_failing_stream_stops_its_siblings_within_a_round_trip(sandbox, lake):
    """One day in 8 sub-windows on 4 streams, one order a page, every request 0.4 s: the third sub-window's
    first request is refused for good (C0020E) while the first two still have ~7 pages each to go."""
    key = day_key(2)
    day = Window.of(
        datetime.fromisoformat(key).replace(tzinfo=UTC),
        datetime.fromisoformat(key).replace(tzinfo=UTC) + timedelta(days=1),
    )
    failing = day.split(8)[2]
    assert len(expected_ids(sandbox, "orders", key)) >= 40  # enough pages for the siblings to go on
    sandbox.admin.set_faults(
        latency_ms=LATENCY_MS,
        graphql_errors={
            "match": f'"from":"{failing.date_range["from"]}"',
            "message": "C0020E: missing permissions: ORDER_VIEW",
            "code": "C0020E",
        },
    )
    transport = Sends(f'"from":"{failing.date_range["from"]}"')
    before = graphql_requests(sandbox)
    with FluentClient(
        sandbox.base_url, "fc-sandbox", "fc-sandbox-secret", max_retries=4, transport=transport
    ) as client:
        client.graphql("query { me { ref } }")  # the token, outside the measured run
        transport.sent.clear()
        started = time.monotonic()
        with pytest.raises(FluentGraphQLError, match="C0020E"):
            list(extract_periods(ORDERS, [day], client=client, lake=lake, concurrency=4, page_size=1))
        elapsed = time.monotonic() - started
    assert len(transport.sent) == graphql_requests(sandbox) - before - 1
    # 8 chains share 4 request slots, and when the failing sub-window (index 2) is first asked depends on the
    # threads' start order and, on a loaded machine, on when its thread first runs: the total before the
    # failure is timing (CI 10, two busy loops 4-11, bounded 4 + 4 + 3 before). What the run must do is stop
    # once the failure is answered: the failing chain keeps its slot until the failure is recorded, a waiting
    # chain checks the failure before it sends, so the only requests sent after the answer are those of the
    # 3 sibling slots whose answers came while the failure was being recorded (milliseconds, against round
    # trips of 0.4 s): at most one each. On main the siblings paged on.
    assert transport.failed_at is not None
    after = [at for at in transport.sent if at > transport.failed_at]
    assert len(after) <= 3, (len(after), len(transport.sent))
    # the failure arrives after one or two round trips; the siblings' requests in flight end one round later
    assert elapsed < 3 * LATENCY_MS / 1000 + 2, elapsed  # on main: ~6 s, the first sub-windows to the end
    assert not lake.list_files("fluent/orders") and not lake.list_files(TMP_DIR)


LIMITED_ANSWERS = 1000
GATE_S = 10.0


class AnsweredFirst(httpx.HTTPTransport):
    """Sets `answered` once a request whose body holds `match` has been answered."""

    def __init__(self, match: str) -> None:
        super().__init__()
        self.match = match.encode()
        self.answered = threading.Event()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if self.match in request.content:
            self.answered.set()
        return response


class SiblingsAfter:
    """The client, whose other sub-windows start paging only once `gate` is set (or after GATE_S): waiting
    in `paginate` itself, before the chain asks for a request slot, so a waiting sibling holds none."""

    def __init__(self, client: FluentClient, first: str, gate: threading.Event) -> None:
        self.client, self.first, self.gate = client, first, gate
        self.retailer_id = client.retailer_id

    def paginate(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Iterator[Any]:
        if (variables or {}).get("updated", {}).get("from") != self.first:
            self.gate.wait(GATE_S)
        return self.client.paginate(query, variables, **kw)


def test_a_failure_ends_the_siblings_waits_before_retries(sandbox, lake):
    """Sub-window 1 of 4 is rate limited (C0011E, the client waits 30-60 s before each of its retries) while
    sub-window 2's first page holds data the columns cannot hold: the run fails at once, without waiting
    out the sibling's backoff."""
    key = day_key(2)
    start = datetime.fromisoformat(key).replace(tzinfo=UTC)
    day = Window.of(start, start + timedelta(days=1))
    limited = day.split(4)[0]
    spec = replace(
        ORDERS, name="orders_bad_time", columns=(*ORDERS.columns, Column("ref_time", "ref", TIMESTAMP))
    )
    # A page's slot is freed when its body arrives, before its rows are converted (request_slots): sibling
    # sub-windows take it while the bad page is converted (the first conversion in a process can take
    # 0.3-0.6 s: pyarrow imports pandas), so how many of the three siblings are asked depends on timing (they
    # share one slot: the limited window keeps the other through its wait). Each sub-window here fits on one
    # page; round trips of 300 ms keep a sibling from getting to a second page.
    sandbox.admin.set_faults(
        latency_ms=300,
        graphql_errors={
            "match": f'"from":"{limited.date_range["from"]}"',
            "message": "C0011E: rate limit exceeded",
            "code": "C0011E",
            "count": LIMITED_ANSWERS,  # counted down per request of the limited window
        },
    )
    # The limited window must be in its wait when a sibling's bad page fails the run. 4 chains share 2 slots
    # and which 2 go first is the threads' start order: under two busy loops (load 12-20 on 2 cores) the
    # first two were siblings in 1 of 6 runs, whose bad pages failed the run before the limited window was
    # ever asked (0 answers where 1 is asserted below; the rest of the test then proves nothing). So the
    # siblings start once the limited window has had its answer.
    transport = AnsweredFirst(f'"from":"{limited.date_range["from"]}"')
    before = graphql_requests(sandbox)
    with FluentClient(
        sandbox.base_url,
        "fc-sandbox",
        "fc-sandbox-secret",
        max_retries=3,
        backoff_base=60.0,
        backoff_max=60.0,  # waits of 30-60 s: far above any loaded machine's elapsed
        transport=transport,
    ) as client:
        client.graphql("query { me { ref } }")
        gated = SiblingsAfter(client, limited.date_range["from"], transport.answered)
        started = time.monotonic()
        with pytest.raises(FluentDataError, match="ref_time"):
            list(extract_periods(spec, [day], client=gated, lake=lake, concurrency=2))
        elapsed = time.monotonic() - started
    assert transport.answered.is_set()  # the limited window was answered before its siblings began
    # not the 30-60 s backoff of the rate-limited sibling (a fresh process under 3 busy loops, load ~9 on 2
    # cores: up to 2.9 s; with waits of 4-8 s the bound had to sit at 4 s, 0.3 s under a waited-out backoff)
    assert elapsed < 15, elapsed
    # each sub-window at most once: the rate-limited one is not retried (CI: 4 at 0 ms, the two siblings
    # asked while the bad page was converted on a loaded machine; 3 when the failure is seen first)
    assert graphql_requests(sandbox) - before - 1 <= 4
    # the rate-limited window asked once, not retried: the total above also counts the siblings asked while
    # the bad page was converted (1 or 2 of them, by timing), so one retry of the limited window hid under it
    assert LIMITED_ANSWERS - sandbox.admin.faults()["graphql_errors"]["count"] == 1
    assert not lake.list_files("fluent/orders_bad_time") and not lake.list_files(TMP_DIR)


def test_a_missing_required_field_fails_the_blocking_check_without_retries(sandbox, lake, instance):
    # click & collect orders only have a pickup location: declared required, most rows lack it
    pickup = Column("pickup_location_ref", "fulfilmentChoice.pickupLocationRef", nullable=False)
    spec = replace(ORDERS, name="orders_required_pickup", columns=(*ORDERS.columns, pickup))
    asset = build_extraction_asset(spec, START_DATE, retry_policy=RETRYING)
    result = dg.materialize(
        [asset],
        resources=resources(sandbox, lake),
        instance=instance,
        partition_key=day_key(2),
        raise_on_error=False,
    )
    assert not result.success
    check = step_events(result, "ASSET_CHECK_EVALUATION")[0].event_specific_data
    assert not check.passed and check.metadata["failure_count"].value > 0
    assert not step_events(result, "STEP_UP_FOR_RETRY")
