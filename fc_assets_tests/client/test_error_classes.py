"""Which errors the client retries and which fail at once, against the real sandbox over HTTP (loopback).

Permanent errors (GraphQL validation, Fluent's non-retryable codes, a refused batch) must cost one request
and fail in well under a second; transient ones (5xx, Fluent's retryable codes) are retried. Request counts
come from the sandbox's own `received`, not only the client's stats.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from fc_assets.resources.fluent import (
    FluentCancelled,
    FluentClient,
    FluentGraphQLError,
    FluentHTTPError,
    FluentJobClosedError,
)
from fc_assets.sandbox.runner import SandboxServer

ORDERS_TYPO = """
query Orders($first: Int, $after: String) {
  orders(first: $first, after: $after) { edges { cursor node { id refx } } pageInfo { hasNextPage } }
}"""
CONNECTION_TYPO = """
query Orders($first: Int, $after: String) {
  orders(first: $first, after: $after) { totalCount edges { cursor node { id } } pageInfo { hasNextPage } }
}"""
ORDERS_PAGES = """
query Orders($first: Int, $after: String) {
  orders(first: $first, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage } }
}"""
ENTITY = {"skuRef": "S1", "locationRef": "L1", "qty": 1}


def client_for(sb: SandboxServer, **kw) -> FluentClient:
    # the resource's defaults: a wrongly retried error would cost seconds of backoff
    return FluentClient(sb.base_url, "fc-sandbox", "fc-sandbox-secret", **{"max_retries": 5, **kw})


def requests(sb: SandboxServer, key: str = "POST /graphql") -> int:
    return sb.admin.received()["requests"].get(key, 0)


@pytest.mark.parametrize("query", [ORDERS_TYPO, CONNECTION_TYPO], ids=["node-field", "connection-field"])
def test_a_malformed_query_fails_at_once_with_one_request(sandbox, query):
    with client_for(sandbox) as client:
        client.graphql("query { me { ref } }")  # token obtained outside the measured call
        before = requests(sandbox)
        started = time.monotonic()
        with pytest.raises(FluentGraphQLError) as info:
            list(client.paginate(query))
        elapsed = time.monotonic() - started
    assert "Cannot query field" in str(info.value)
    assert not info.value.retryable and info.value.classification.category == "VALIDATION_ERROR"
    assert requests(sandbox) - before == 1 and client.stats.retries == 0
    assert elapsed < 5


def test_a_retryable_fluent_code_is_retried_and_a_permanent_one_is_not(sandbox_clean):
    sb = sandbox_clean
    with client_for(sb, backoff_base=0.01, backoff_max=0.05) as client:
        client.graphql("query { me { ref } }")
        sb.admin.set_faults(
            graphql_errors={
                "count": 2,
                "message": "S0002E: service temporarily unavailable",
                "code": "S0002E",
            }
        )
        before = requests(sb)
        assert client.graphql("query { me { ref } }")["me"]["ref"] == "fc-sandbox"
        assert requests(sb) - before == 3 and client.stats.retries == 2
        sb.admin.set_faults(
            graphql_errors={
                "count": 1,
                "message": "C0020E: missing permissions: ORDER_VIEW",
                "code": "C0020E",
            }
        )
        before = requests(sb)
        with pytest.raises(FluentGraphQLError) as info:
            client.graphql("query { me { ref } }")
        assert requests(sb) - before == 1 and info.value.codes == ["C0020E"] and not info.value.retryable


def test_closed_job_is_told_by_the_jobs_status_not_by_the_word_closed(sandbox_clean):
    sb = sandbox_clean
    with client_for(sb) as client:
        job = client.create_job("open-job")
        # a batch refused for another reason, whose message happens to contain "closed"
        sb.admin.set_faults(
            server_errors={
                "count": 1,
                "status": 400,
                "message": "entity 0: location 'closed-store' is inactive",
            },
            paths=[f"/api/v4.1/job/{job}/batch"],
        )
        with pytest.raises(FluentHTTPError) as info:
            client.send_batch(job, [ENTITY])
        assert not isinstance(info.value, FluentJobClosedError)
        assert info.value.status == 400 and "closed-store" in str(info.value)
        assert client.get_job(job)["status"] == "OPEN"
        sb.admin.clear_faults()
        # the job really closes at midnight UTC: now it is a closed job (create a new one and re-send)
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=5, microsecond=0)
        sb.admin.set_clock(tomorrow.isoformat())
        with pytest.raises(FluentJobClosedError) as closed:
            client.send_batch(job, [ENTITY])
        assert closed.value.job_id == job and closed.value.status == 400
        assert len(sb.admin.received()["batches"]) == 0  # neither batch was accepted


def test_cancel_ends_a_wait_before_a_retry_at_once(sandbox_clean):
    sb = sandbox_clean
    cancel = threading.Event()
    outcome: list[BaseException] = []
    with client_for(sb) as client:
        client.graphql("query { me { ref } }")
        sb.admin.set_faults(rate_limit={"count": 1, "retry_after": 30})

        def page_all() -> None:
            try:
                list(client.paginate(ORDERS_PAGES, page_size=10, cancel=cancel))
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                outcome.append(exc)

        thread = threading.Thread(target=page_all)
        thread.start()
        deadline = time.monotonic() + 10
        while sb.admin.faults()["rate_limit"]["count"] and time.monotonic() < deadline:
            time.sleep(0.05)  # until the 429 has been answered: the client now waits 30 s
        time.sleep(0.2)
        cancelled_at = time.monotonic()
        cancel.set()
        thread.join(timeout=10)
        stopped_after = time.monotonic() - cancelled_at
    assert not thread.is_alive() and stopped_after < 2
    assert len(outcome) == 1 and isinstance(outcome[0], FluentCancelled), outcome
    assert client.stats.retries == 1 and client.stats.pages == 0
