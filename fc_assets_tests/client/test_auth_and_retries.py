"""Unit tests (MockTransport): OAuth grants and token life, and the retry policy by idempotency."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from fc_assets.resources.fluent import (
    FluentAuthError,
    FluentHTTPError,
    FluentRateLimited,
    FluentTimeoutError,
    FluentTransportError,
)
from fc_assets_tests.client.mock_fluent import PASSWORD, SECRET, MockFluent

ME = "query { me { ref } }"
MUTATION = "mutation M($i: CreateLocationInput!) { createLocation(input: $i) { id } }"


def test_client_credentials_grant_is_cached():
    fluent = MockFluent()
    with fluent.client() as client:
        for _ in range(3):
            assert client.graphql(ME) == {"me": {"ref": "u"}}
    assert [f["grant_type"] for f in fluent.token_forms] == ["client_credentials"]
    assert fluent.token_forms[0]["client_secret"] == SECRET and fluent.token_forms[0]["scope"] == "api"
    assert client.stats.token_requests == 1 and client.stats.requests == 4


def test_password_grant_when_username_is_set():
    fluent = MockFluent()
    with fluent.client(username="sandbox", password=PASSWORD) as client:
        client.graphql(ME)
    form = fluent.token_forms[0]
    assert (form["grant_type"], form["username"], form["password"]) == ("password", "sandbox", PASSWORD)


def test_token_renewed_before_expiry_with_refresh_token_then_fallback():
    fluent = MockFluent(expires_in=0.3, refresh_tokens=True)
    with fluent.client(username="sandbox", password=PASSWORD) as client:
        client.graphql(ME)
        time.sleep(0.3)  # past expires_in minus the buffer (a tenth of the lifetime)
        client.graphql(ME)
        fluent.valid_refresh.clear()  # e.g. revoked: the refresh grant fails and the password grant takes over
        time.sleep(0.3)
        client.graphql(ME)
    assert [f["grant_type"] for f in fluent.token_forms] == [
        "password",
        "refresh_token",
        "refresh_token",
        "password",
    ]
    assert fluent.calls("/graphql") == 3  # renewed before use, never a 401 round trip
    assert client.stats.reauths == 0


def test_one_reauth_on_401_then_auth_error():
    fluent = MockFluent()
    with fluent.client() as client:
        client.graphql(ME)
        fluent.valid_tokens.clear()  # server-side expiry
        assert client.graphql(ME) == {"me": {"ref": "u"}}
        assert client.stats.reauths == 1 and len(fluent.token_forms) == 2
        fluent.then("/graphql", 401, 401)
        with pytest.raises(FluentAuthError, match="401 after re-authenticating"):
            client.graphql(ME)
    assert client.stats.reauths == 2


def test_bad_credentials_raise_auth_error_without_the_secret():
    fluent = MockFluent()
    client = fluent.client(username="sandbox", password="wrong-password-123")
    with pytest.raises(FluentAuthError) as info:
        client.graphql(ME)
    assert info.value.status == 400 and info.value.error == "invalid_grant"
    assert "Bad credentials" in str(info.value)
    assert "wrong-password-123" not in str(info.value) and SECRET not in str(info.value)
    assert fluent.calls("/oauth/token") == 1  # a refused grant is not retried


def test_concurrent_callers_share_one_token_request():
    fluent = MockFluent()
    client = fluent.client()
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.graphql(ME)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(fluent.token_forms) == 1 and fluent.calls("/graphql") == 8


@pytest.mark.parametrize("header", ["0.3", "date"])
def test_429_waits_retry_after(header):
    # timed from before the date is written: an HTTP date has 1 s resolution, so it is at least 0.2 s ahead
    # of the moment it was made however the second boundaries fall, but only 0.2 s + whatever passes before
    # the clock starts (making the mock and its client) ahead of a clock started after it
    started = time.monotonic()
    value = (
        header
        if header != "date"
        else format_datetime(datetime.now(UTC) + timedelta(seconds=1.2), usegmt=True)
    )
    fluent = MockFluent().then("/graphql", (429, {"message": "slow down"}, {"Retry-After": value}))
    client = fluent.client()
    client.graphql(ME)
    waited = time.monotonic() - started
    assert waited >= (0.3 if header != "date" else 0.2)
    assert fluent.calls("/graphql") == 2 and client.stats.retries == 1


def test_429_retried_for_non_idempotent_calls_and_capped():
    fluent = MockFluent().then("/api/v4.1/job", (429, {}, {"Retry-After": "100"}))
    fluent.rest = lambda req: httpx.Response(200, json={"id": "7"})
    client = fluent.client(max_retry_after=0.05)
    started = time.monotonic()
    assert client.create_job("daily") == "7"  # 429 means "not processed": safe to resend even a POST
    assert time.monotonic() - started < 1 and client.stats.wait_seconds == pytest.approx(0.05)


def test_429_exhausted_raises_rate_limited():
    fluent = MockFluent().then("/graphql", *[(429, {}, {"Retry-After": "0"})] * 4)
    with pytest.raises(FluentRateLimited) as info:
        fluent.client(max_retries=3).graphql(ME)
    assert info.value.status == 429 and info.value.attempts == 4 and info.value.retry_after == 0


def test_5xx_retried_for_queries_not_for_mutations_or_batches():
    fluent = MockFluent().then("/graphql", 503, 502, 500)
    client = fluent.client()
    assert client.graphql(ME) == {"me": {"ref": "u"}}
    assert client.stats.retries == 3 and fluent.calls("/graphql") == 4

    fluent.then("/graphql", 503)
    with pytest.raises(FluentHTTPError) as info:
        client.graphql(MUTATION, {"i": {}})
    assert info.value.status == 503 and info.value.request_may_have_been_processed
    assert "reconcile" in str(info.value)

    fluent.then("/api/v4.1/job/1/batch", 500)
    with pytest.raises(FluentHTTPError):
        client.send_batch("1", [{"skuRef": "A", "locationRef": "L", "qty": 1}])
    assert fluent.calls("/api/v4.1/job/1/batch") == 1


def test_5xx_exhausted_carries_status_and_body():
    fluent = MockFluent().then("/graphql", *[(503, {"message": "maintenance"})] * 3)
    with pytest.raises(FluentHTTPError) as info:
        fluent.client(max_retries=2).graphql(ME)
    assert info.value.status == 503 and "maintenance" in info.value.body_excerpt and info.value.attempts == 3


def test_connect_error_is_retried_even_for_posts():
    fluent = MockFluent().then("/api/v4.1/event/async", httpx.ConnectError("refused"))
    fluent.rest = lambda req: httpx.Response(200, json={"id": "e1"})
    client = fluent.client()
    assert client.post_event({"name": "E", "entityType": "ORDER"}) == {"id": "e1"}
    assert fluent.calls("/api/v4.1/event/async") == 2


def test_read_timeout_after_sending_a_batch_is_not_retried():
    fluent = MockFluent().then("/api/v4.1/job/9/batch", httpx.ReadTimeout("timed out"))
    client = fluent.client()
    with pytest.raises(FluentTimeoutError) as info:
        client.send_batch("9", [{"skuRef": "A", "locationRef": "L", "qty": 1}])
    assert info.value.request_sent and "may have processed" in str(info.value)
    assert fluent.calls("/api/v4.1/job/9/batch") == 1


def test_dropped_connection_on_query_is_retried_then_raised():
    fluent = MockFluent().then("/graphql", *[httpx.RemoteProtocolError("Server disconnected")] * 3)
    client = fluent.client(max_retries=2)
    with pytest.raises(FluentTransportError) as info:
        client.graphql(ME)
    assert not isinstance(info.value, FluentTimeoutError)
    assert info.value.attempts == 3 and "RemoteProtocolError" in str(info.value)


def test_every_request_has_a_timeout():
    seen = []
    fluent = MockFluent()
    inner = fluent.__call__

    def spy(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return inner(request)

    client = fluent.client(timeout=7, connect_timeout=2, transport=httpx.MockTransport(spy))
    client.graphql(ME)
    assert seen and all(t == {"connect": 2, "read": 7, "write": 7, "pool": 7} for t in seen)


def wait_for(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.002)
    return condition()


def test_authenticate_early_gets_the_token_before_the_first_call_and_only_once():
    fluent = MockFluent()
    with fluent.client() as client:
        client.authenticate_early()
        assert wait_for(lambda: client._token is not None)  # in the background, nothing else called
        assert fluent.calls("/oauth/token") == 1 and fluent.calls("/graphql") == 0
        client.authenticate_early()  # a token is held: nothing more
        assert client.graphql(ME) == {"me": {"ref": "u"}}
    assert fluent.calls("/oauth/token") == 1 and client.stats.token_requests == 1
    assert fluent.calls("/graphql") == 1 and client.stats.reauths == 0


def test_a_call_during_an_early_token_request_waits_for_it():
    fluent = MockFluent()
    answer = fluent._token
    token_requested = threading.Event()

    def slow_token(request: httpx.Request) -> httpx.Response:
        token_requested.set()
        time.sleep(0.3)
        return answer(request)

    fluent._token = slow_token
    with fluent.client() as client:
        client.authenticate_early()
        assert token_requested.wait(5)
        client.authenticate_early()  # already under way: no second thread, no second request
        assert client.graphql(ME) == {"me": {"ref": "u"}}  # waits for that token instead of asking again
    assert fluent.calls("/oauth/token") == 1 and client.stats.token_requests == 1


def test_an_early_token_failure_is_raised_by_the_first_call_then_tried_again():
    fluent = MockFluent()
    with fluent.client(username="sandbox", password="wrong-password-123") as client:
        client.authenticate_early()
        assert wait_for(lambda: fluent.calls("/oauth/token") == 1 and client._early_auth_error is not None)
        with pytest.raises(FluentAuthError, match="Bad credentials") as info:
            client.graphql(ME)
        assert "wrong-password-123" not in str(info.value)
        assert fluent.calls("/oauth/token") == 1  # the early attempt's error, not a second request
        with pytest.raises(FluentAuthError):
            client.graphql(ME)
        assert fluent.calls("/oauth/token") == 2  # a later call tries again
    assert fluent.calls("/graphql") == 0


def test_closing_the_client_ends_an_early_token_requests_retries():
    fluent = MockFluent()
    fluent.then("/oauth/token", *[503] * 3)
    client = fluent.client(backoff_base=30, backoff_max=30)  # the first retry would wait 15-30 s
    client.authenticate_early()
    assert wait_for(lambda: fluent.calls("/oauth/token") == 1)
    started = time.monotonic()
    client.close()
    client._early_auth.join(5)
    assert not client._early_auth.is_alive() and time.monotonic() - started < 5
