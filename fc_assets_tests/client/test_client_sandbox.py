"""Acceptance tests of the Fluent client against the real sandbox over HTTP (loopback).

The session `sandbox` serves most tests; `big_sandbox` is a dedicated server (25,000 inventory positions,
2 s tokens, its own secret and password) for the volume, token-expiry and secret-hygiene tests. Every count
is checked against the sandbox's own answers (`admin.counts`, `admin.received`), not only the client's.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from fc_assets.resources.fluent import (
    FluentAuthError,
    FluentClient,
    FluentJobClosedError,
    FluentPagingError,
    FluentTimeoutError,
)
from fc_assets.sandbox.runner import SandboxServer

POSITIONS = """
query Positions($first: Int, $after: String) {
  inventoryPositions(first: $first, after: $after) {
    edges { cursor node { id ref productRef locationRef onHand } }
    pageInfo { hasNextPage }
  }
}"""

TWO_ROOTS = """
query TwoRoots($locFirst: Int, $first: Int, $cursor: String) {
  locations(first: $locFirst) { edges { cursor node { id ref } } pageInfo { hasNextPage } }
  inventoryPositions(first: $first, after: $cursor) { edges { cursor node { id } } pageInfo { hasNextPage } }
}"""

ME = "query { me { ref type } }"
BIG_SECRET = "big-client-secret-7f3a"
BIG_PASSWORD = "big-password-91c2"


def client_for(sb: SandboxServer, **kw) -> FluentClient:
    opts = {"backoff_base": 0.05, "backoff_max": 0.2, "max_retries": 4, "timeout": 10.0}
    opts.update(kw)
    secret = opts.pop("client_secret", "fc-sandbox-secret")
    return FluentClient(sb.base_url, "fc-sandbox", secret, **opts)


def graphql_requests(sb: SandboxServer) -> int:
    return sb.admin.received()["requests"].get("POST /graphql", 0)


@pytest.fixture(scope="module")
def big_sandbox() -> Iterator[SandboxServer]:
    args = [
        "--inventory-positions",
        "25000",
        "--orders",
        "10",
        "--virtual-positions",
        "10",
        "--token-ttl",
        "2",
        "--client-secret",
        BIG_SECRET,
        "--password",
        BIG_PASSWORD,
    ]
    with SandboxServer(args, seed=7) as server:
        yield server


def test_all_three_grants(sandbox, caplog):
    caplog.set_level(logging.DEBUG, logger="fc_assets.fluent")
    with client_for(sandbox) as client:
        assert client.graphql(ME)["me"]["type"] == "API"  # client_credentials
        client._invalidate(client._token.value)  # as if it expired: the refresh_token grant is used first
        assert client.graphql(ME)["me"]["type"] == "API"
    with client_for(sandbox, username="sandbox", password="sandbox") as client:
        assert client.graphql(ME)["me"] == {"ref": "sandbox", "type": "ADMIN"}  # password
    grants = [r.getMessage() for r in caplog.records if "token obtained" in r.getMessage()]
    assert [g.split(" grant")[0].rsplit(" ", 1)[1] for g in grants] == [
        "client_credentials",
        "refresh_token",
        "password",
    ]
    with pytest.raises(FluentAuthError, match="invalid_grant Bad credentials"):
        client_for(sandbox, username="sandbox", password="wrong").graphql(ME)


def test_token_expiry_in_the_middle_of_paging(sandbox_clean):
    sb = sandbox_clean
    expected = sb.admin.counts("inventory_positions")["count"]
    with client_for(sb) as client:
        pages = client.paginate(POSITIONS, page_size=200)
        ids = [n["id"] for n in next(pages).nodes]
        sb.admin.set_faults(expire_tokens=True)  # access and refresh tokens both die server-side
        ids += [n["id"] for p in pages for n in p.nodes]
    assert len(ids) == len(set(ids)) == expected
    assert client.stats.reauths == 1 and client.stats.token_requests == 3  # first, refresh refused, fallback


class Timed(httpx.HTTPTransport):
    """When each page request was sent and each token answered (monotonic), and with which token."""

    def __init__(self) -> None:
        super().__init__()
        self.pages: list[tuple[float, str]] = []
        self.tokens: list[tuple[float, str]] = []
        self.refused: set[str] = set()  # tokens a page was answered 401 with

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if request.url.path == "/graphql":
            self.pages.append((time.monotonic(), token))
        response = super().handle_request(request)
        if request.url.path == "/graphql" and response.status_code == 401:
            self.refused.add(token)
        if request.url.path == "/oauth/token":
            response.read()
            self.tokens.append((time.monotonic(), response.json()["access_token"]))
        return response


def test_tokens_renewed_before_expiry_while_paging_25k_nodes(big_sandbox):
    """25,000 nodes, exact count, while 2 s tokens expire several times under the paging."""
    sb = big_sandbox
    expected = sb.admin.counts("inventory_positions")
    before = sb.admin.received()["requests"]
    started = time.monotonic()
    transport = Timed()
    with client_for(sb, client_secret=BIG_SECRET, transport=transport) as client:
        seen: list[str] = []
        for page in client.paginate(POSITIONS, page_size=250):
            seen.extend(n["id"] for n in page.nodes)
            time.sleep(0.05)  # a consumer writing Parquet: stretches the crawl over several token lifetimes
    elapsed = time.monotonic() - started
    after = sb.admin.received()["requests"]
    assert expected["count"] == 25_000 and seen == expected["ids"]
    # Renewed ahead of expiry, so no 401 — but for at most one: the client renews 0.2 s (a tenth of the 2 s
    # life) before expiry, and on a loaded machine (load 12-20 on 2 cores) one page in 16 runs took longer
    # than that from the client's check to the server's, was answered 401, and was resent with a new token.
    # A client that waits for the 401 to renew has one per token (here 2 or more).
    reauths = client.stats.reauths
    assert reauths == len(transport.refused) <= 1, (reauths, transport.refused)
    assert (
        client.stats.pages == 100 and after["POST /graphql"] - before.get("POST /graphql", 0) == 100 + reauths
    )
    assert client.stats.retries == 0
    renewals = after["POST /oauth/token"] - before.get("POST /oauth/token", 0)
    assert renewals == client.stats.token_requests == len(transport.tokens)
    # Renewed when the token is a tenth of its life from expiry (1.8 s old), not sooner: the client's clock
    # for a token starts after the answer the transport timed, and the first page with the next is sent after
    # the client decided to renew, so the age measured here is never less than the client's.
    answered = {token: at for at, token in transport.tokens}
    first_use: dict[str, float] = {}
    for at, token in transport.pages:
        first_use.setdefault(token, at)
    ages = [
        first_use[new] - answered[old]
        for (_, old), (_, new) in itertools.pairwise(transport.tokens)
        if old not in transport.refused  # a 401 renews when the server's clock says so
    ]
    assert all(age >= 1.8 for age in ages), ages
    # ... and as often as the server's 2 s lifetime demands. Without a 401 each token's pages were sent less
    # than 2 s after its answer (the server checks them later than they are sent, and its clock started
    # before the answer), and between one token's last page and the next one's first lies one gap between
    # two pages (at most `gap`): so k tokens cover at most 2k + (k - 1) gap of paging. Not
    # `1 + elapsed // 2`, which counts the whole run as paging without gaps: on a loaded machine (two busy
    # loops, load 12-20 on 2 cores) pages came up to 2 s apart, a token served 1.8 s plus the wait for the
    # next page, and there were 12 tokens for 29 s, 7 for 14.9 s.
    sent = [at for at, _ in transport.pages]
    span, gap = sent[-1] - sent[0], max(b - a for a, b in itertools.pairwise(sent))
    assert renewals >= math.ceil((span + gap) / (2 + gap)), (renewals, span, gap, ages)
    assert renewals - 1 - reauths >= 2  # renewed ahead of expiry at least twice (a 401-driven client: 0)
    assert elapsed < 60  # ~7 s idle


def test_429_retry_after_is_honoured(sandbox_clean):
    sb = sandbox_clean
    with client_for(sb) as client:
        client.graphql(ME)
        sb.admin.set_faults(rate_limit={"count": 1, "retry_after": 1}, paths=["/graphql"])
        started = time.monotonic()
        assert client.graphql(ME)["me"]["ref"] == "fc-sandbox"
        waited = time.monotonic() - started
    assert waited >= 1.0 and client.stats.retries == 1 and client.stats.wait_seconds >= 1.0


def test_5xx_burst_recovered_and_pages_counted(sandbox_clean):
    sb = sandbox_clean
    expected = sb.admin.counts("inventory_positions")["count"]
    with client_for(sb) as client:
        client.graphql(ME)
        before = graphql_requests(sb)
        sb.admin.set_faults(server_errors={"count": 3, "status": 503}, drop_connections=1, paths=["/graphql"])
        nodes = list(client.iter_nodes(POSITIONS, page_size=500))
    assert len({n["id"] for n in nodes}) == len(nodes) == expected
    assert client.stats.pages == 4 and client.stats.retries == 4  # 3 x 503 + 1 dropped connection
    assert graphql_requests(sb) - before == client.stats.pages + client.stats.retries


def test_timeout_is_a_clear_error_and_posts_are_not_resent(sandbox_clean):
    sb = sandbox_clean
    with client_for(sb, timeout=0.3, max_retries=1) as client:
        client.graphql(ME)
        sb.admin.set_faults(latency_ms=800)
        started = time.monotonic()
        with pytest.raises(FluentTimeoutError) as query_err:
            client.graphql(ME)
        assert query_err.value.attempts == 2 and time.monotonic() - started < 3  # a query is retried once
        posts_before = sb.admin.received()["requests"].get("POST /api/v4.1/job", 0)
        with pytest.raises(FluentTimeoutError) as post_err:
            client.create_job("timeout-probe")
    assert post_err.value.attempts == 1 and post_err.value.request_sent
    assert "POST /api/v4.1/job" in str(post_err.value) and "may have processed" in str(post_err.value)
    assert (
        sb.admin.received()["requests"]["POST /api/v4.1/job"] == posts_before + 1
    )  # sent once, not repeated


def test_non_advancing_cursor_raises(sandbox_clean):
    sandbox_clean.admin.set_faults(stuck_cursor=True)
    with (
        client_for(sandbox_clean) as client,
        pytest.raises(FluentPagingError, match="did not advance") as info,
    ):
        list(client.paginate(POSITIONS, page_size=100))
    assert info.value.page == 2


def test_two_root_connections_page_only_the_one_asked_for(sandbox):
    expected = sandbox.admin.counts("inventory_positions")["count"]
    with client_for(sandbox) as client:
        pages = list(
            client.paginate(TWO_ROOTS, {"locFirst": 5}, connection_path="inventoryPositions", page_size=300)
        )
    ids = [n["id"] for p in pages for n in p.nodes]
    assert len(ids) == len(set(ids)) == expected and len(pages) == -(-expected // 300)


def test_batch_complete_with_per_entity_errors(sandbox_clean):
    sb = sandbox_clean
    with client_for(sb) as client:
        positions = next(client.paginate(POSITIONS, page_size=3)).nodes
        sb.admin.set_faults(reject_entities={"skuRefs": [positions[1]["productRef"]]})
        entities = [
            {
                "skuRef": p["productRef"],
                "locationRef": p["locationRef"],
                "qty": 77 + i,
                "type": "LAST_ON_HAND",
                "status": "ACTIVE",
            }
            for i, p in enumerate(positions)
        ]
        entities[2]["qty"] = "not a number"
        job = client.create_job("inventory-test", meta={"preprocessing": "skip"})
        batch_id = client.send_batch(job, entities)
        batch = client.wait_for_batch(job, batch_id, timeout=10, poll_initial=0.05)
        refreshed = client.graphql(
            "query($refs: [String!]) { inventoryPositions(productRef: $refs, first: 10) "
            "{ edges { node { locationRef onHand } } } }",
            {"refs": [positions[0]["productRef"]]},
        )
    assert batch["status"] == "COMPLETE" and batch["count"] == 3 and batch["total"] == 2
    assert {(r["entityIndex"], r["code"]) for r in batch["results"]} == {
        (1, "REJECTED"),
        (2, "INVALID_ENTITY"),
    }
    on_hand = {
        e["node"]["locationRef"]: e["node"]["onHand"] for e in refreshed["inventoryPositions"]["edges"]
    }
    assert on_hand[positions[0]["locationRef"]] == 77  # the accepted entity is visible through GraphQL


def test_batch_to_a_closed_job(sandbox_clean):
    sb = sandbox_clean
    with client_for(sb) as client:
        job = client.create_job("closing-job")
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=5, microsecond=0)
        sb.admin.set_clock(tomorrow.isoformat())
        assert client.get_job(job)["status"] == "CLOSED"
        with pytest.raises(FluentJobClosedError) as info:
            client.send_batch(job, [{"skuRef": "S", "locationRef": "L", "qty": 1}])
    assert info.value.job_id == job and info.value.status == 400


def test_events_posted_and_found_again(sandbox_clean):
    ref = f"ORDER-{time.time_ns()}"
    with client_for(sandbox_clean, page_size=2) as client:
        answer = client.post_event(
            {"name": "OrderNote", "entityType": "ORDER", "entityRef": ref, "attributes": {"note": "hello"}}
        )
        for i in range(4):
            client.post_event(
                {"name": "OrderNote", "entityType": "ORDER", "entityRef": ref, "attributes": {"n": i}},
                mode="sync" if i == 0 else "async",
            )
        pages_before = client.stats.pages
        found = list(client.search_events(name="OrderNote", context={"entityRef": ref}))
    assert len(found) == 5 and answer["id"] in {e["id"] for e in found}
    assert all(e["context"]["entityRef"] == ref and e["retailerId"] == "1" for e in found)
    assert client.stats.pages - pages_before == 3  # 2 + 2 + 1, paged by start/count/hasMore


def test_secrets_absent_from_logs_reprs_errors_and_metadata(big_sandbox, caplog):
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    sb = big_sandbox
    texts: list[str] = []
    tokens: set[str] = set()
    with client_for(sb, client_secret=BIG_SECRET, username="sandbox", password=BIG_PASSWORD) as client:
        client.graphql(ME)
        tokens |= {client._token.value, client._token.refresh_token}
        sb.admin.set_faults(expire_tokens=True)
        client.graphql(ME)  # 401 -> refresh refused -> password grant
        tokens |= {client._token.value, client._token.refresh_token}
        texts += [repr(client), str(client.stats.as_metadata())]
    for bad in (
        client_for(sb, client_secret="wrong-secret-55", username="sandbox", password=BIG_PASSWORD),
        client_for(sb, client_secret=BIG_SECRET, username="sandbox", password="wrong-pass-66"),
    ):
        with pytest.raises(FluentAuthError) as info:
            bad.graphql(ME)
        texts += [str(info.value), repr(info.value), repr(bad)]
    texts.append(caplog.text)
    assert "token obtained" in caplog.text and "401" in caplog.text
    for secret in (BIG_SECRET, BIG_PASSWORD, "wrong-secret-55", "wrong-pass-66", *tokens):
        assert secret and not any(secret in t for t in texts), secret
