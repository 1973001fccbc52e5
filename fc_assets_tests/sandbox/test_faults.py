"""Injected faults through the admin API, as a client observes them."""

from __future__ import annotations

import time

import httpx
import pytest

from fc_assets_tests.sandbox.api import get_token

ME = "{ me { ref } }"


def test_rate_limit_answers_429_with_retry_after_for_the_next_n_api_requests(api, sandbox_clean):
    sandbox_clean.admin.set_faults(rate_limit={"count": 2, "retry_after": 3})
    assert get_token(api.base_url).status_code == 200  # /oauth/token is not counted by default
    assert httpx.get(f"{api.base_url}/health").status_code == 200
    for _ in range(2):
        r = api.post("/graphql", json={"query": ME})
        assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert api.post("/graphql", json={"query": ME}).status_code == 200
    assert sandbox_clean.admin.faults()["rate_limit"]["count"] == 0


def test_rate_limit_without_retry_after_sends_no_header(api, sandbox_clean):
    sandbox_clean.admin.set_faults(rate_limit={"count": 1, "retry_after": None})
    r = api.post("/graphql", json={"query": ME})
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert api.post("/graphql", json={"query": ME}).status_code == 200


def test_server_errors_answer_the_status_for_the_next_n_requests(api, sandbox_clean):
    sandbox_clean.admin.set_faults(server_errors={"count": 3, "status": 502})
    statuses = [api.get("/api/v4.1/event").status_code for _ in range(4)]
    assert statuses == [502, 502, 502, 200]
    received = sandbox_clean.admin.received()["requests"]
    assert received["GET /api/v4.1/event"] == 4  # faulted requests were received too


def test_paths_limit_counted_faults_to_some_prefixes(api, sandbox_clean):
    sandbox_clean.admin.set_faults(server_errors={"count": 1, "status": 503}, paths=["/api/"])
    assert api.post("/graphql", json={"query": ME}).status_code == 200
    assert api.get("/api/v4.1/event").status_code == 503
    sandbox_clean.admin.set_faults(server_errors={"count": 1, "status": 500}, paths=["/oauth/token"])
    assert get_token(api.base_url).status_code == 500


LATENCY_MS = 1000


def test_latency_is_added_to_api_requests_but_not_to_health_or_admin(api, sandbox_clean):
    sandbox_clean.admin.set_faults(latency_ms=LATENCY_MS)
    started = time.perf_counter()
    assert api.post("/graphql", json={"query": ME}).status_code == 200
    assert time.perf_counter() - started >= LATENCY_MS / 1000
    # Both over clients already connected: making a new httpx client (its SSL context) took 0.2-0.9 s on a
    # loaded machine, which is not the sandbox's doing. The latency is a sleep before the answer, so either
    # request delayed by it makes the two take at least LATENCY_MS; undelayed, two loopback round trips
    # take milliseconds (tens under load).
    started = time.perf_counter()
    assert api.http.get("/health").status_code == 200
    sandbox_clean.admin.faults()
    assert time.perf_counter() - started < LATENCY_MS / 1000


def test_dropped_connections_get_no_response(api, sandbox_clean):
    sandbox_clean.admin.set_faults(drop_connections=1)
    with pytest.raises(httpx.TransportError):
        api.post("/graphql", json={"query": ME})
    assert api.post("/graphql", json={"query": ME}).status_code == 200


def test_lost_responses_are_processed_but_never_answered(api, sandbox_clean):
    before = len(sandbox_clean.admin.received()["events"])
    sandbox_clean.admin.set_faults(lose_responses=1, paths=["/api/v4.1/event"])
    event = {"name": "LOST_ANSWER", "entityType": "ORDER", "retailerId": "1"}
    with pytest.raises(httpx.TransportError):
        api.post("/api/v4.1/event/async", json=event)
    assert [e["name"] for e in sandbox_clean.admin.received()["events"][before:]] == ["LOST_ANSWER"]  # ran
    assert api.post("/api/v4.1/event/async", json=event).status_code == 200


def test_fail_mutations_fail_the_alias_of_that_location_n_times(api, sandbox_clean):
    ref = api.data("{ locations(first: 1) { edges { node { id ref } } } }")["locations"]["edges"][0]["node"]
    before = len(sandbox_clean.admin.received()["mutations"])
    sandbox_clean.admin.set_faults(fail_mutations={ref["ref"]: 1})
    mutation = "mutation($i: UpdateLocationInput!) { a0: updateLocation(input: $i) { id } }"
    body = {"query": mutation, "variables": {"i": {"id": ref["id"], "name": "Renamed"}}}
    first = api.post("/graphql", json=body).json()
    assert first["errors"][0]["path"] == ["a0"] and first["errors"][0]["extensions"]["code"] == "S0001E"
    assert api.post("/graphql", json=body).json()["data"]["a0"]["id"] == ref["id"]
    assert [m["ok"] for m in sandbox_clean.admin.received()["mutations"][before:]] == [False, True]


def test_stuck_cursor_repeats_the_cursor_with_has_next_page_true(api, sandbox_clean):
    query = (
        "query($a: String) { locations(first: 5, after: $a) { edges { cursor } pageInfo { hasNextPage } } }"
    )
    sandbox_clean.admin.set_faults(stuck_cursor=True)
    first = api.data(query)["locations"]
    cursor = first["edges"][-1]["cursor"]
    for _ in range(3):
        again = api.data(query, {"a": cursor})["locations"]
        assert again["edges"][-1]["cursor"] == cursor and again["pageInfo"]["hasNextPage"] is True
    sandbox_clean.admin.clear_faults()
    assert api.data(query, {"a": cursor})["locations"]["edges"][-1]["cursor"] != cursor


def test_faults_endpoint_merges_shows_clears_and_refuses_unknown_keys(sandbox_clean):
    admin = sandbox_clean.admin
    admin.set_faults(latency_ms=5)
    admin.set_faults(stuck_batches=True)
    assert admin.faults() == {"latency_ms": 5, "stuck_batches": True}
    admin.set_faults(latency_ms=None)
    assert admin.faults() == {"stuck_batches": True}
    assert (
        httpx.post(
            f"{sandbox_clean.base_url}/_sandbox/faults", json={"explode": 1}, headers={"X-Sandbox-Admin": "1"}
        ).status_code
        == 400
    )
    admin.clear_faults()
    assert admin.faults() == {}


def test_graphql_errors_answer_matching_requests_with_a_graphql_error(api, sandbox_clean):
    sandbox_clean.admin.set_faults(
        graphql_errors={"match": '"who":"me"', "message": "S0002E: busy", "code": "S0002E", "count": 1}
    )
    assert api.post("/graphql", json={"query": ME}).json()["data"]["me"]  # no match
    hit = api.post("/graphql", json={"query": ME, "variables": {"who": "me"}})
    assert hit.status_code == 200
    assert hit.json() == {
        "data": None,
        "errors": [{"message": "S0002E: busy", "extensions": {"code": "S0002E"}}],
    }
    assert api.post("/graphql", json={"query": ME, "variables": {"who": "me"}}).json()["data"]["me"]  # count


def test_expire_tokens_after_n_requests_expires_tokens_once(api, sandbox_clean):
    sandbox_clean.admin.set_faults(expire_tokens_after=2)
    assert get_token(api.base_url).status_code == 200  # token requests are not counted
    assert api.post("/graphql", json={"query": ME}).status_code == 200
    assert api.post("/graphql", json={"query": ME}).status_code == 401  # the 2nd: every token expired
    assert "expire_tokens_after" not in sandbox_clean.admin.faults()


def test_server_errors_can_carry_a_message_and_a_4xx_status(api, sandbox_clean):
    sandbox_clean.admin.set_faults(server_errors={"count": 1, "status": 400, "message": "no such thing"})
    answer = api.get("/api/v4.1/event")
    assert answer.status_code == 400 and answer.json() == {"message": "no such thing"}
