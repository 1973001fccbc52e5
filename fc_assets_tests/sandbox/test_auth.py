"""OAuth token endpoint and bearer checks, as a client sees them."""

from __future__ import annotations

import time

import httpx
import pytest

from fc_assets.sandbox.runner import SandboxServer
from fc_assets_tests.sandbox.api import CLIENT, get_token

ME = {"query": "{ me { ref username primaryRetailer { id } } }"}


def graphql(base_url: str, token: str | None, body: dict = ME) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{base_url}/graphql", json=body, headers=headers)


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", "/graphql"),
        ("POST", "/api/v4.1/job"),
        ("GET", "/api/v4.1/job/1"),
        ("POST", "/api/v4.1/job/1/batch"),
        ("GET", "/api/v4.1/event"),
        ("POST", "/api/v4.1/event/async"),
        ("GET", "/api/v4.1/event/x"),
    ],
)
def test_every_api_path_needs_a_live_bearer_token(sandbox, method, path):
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic Zm9vOmJhcg=="}):
        r = httpx.request(method, sandbox.base_url + path, headers=headers, json={})
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["error"] == "invalid_token"
    assert httpx.get(f"{sandbox.base_url}/health").status_code == 200


def test_client_credentials_grant(sandbox):
    r = get_token(sandbox.base_url)
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "bearer" and body["scope"] == "api" and body["Retailer_id"] == 1
    assert body["expires_in"] == 86_400 and body["refresh_token"] and body["access_token"]
    me = graphql(sandbox.base_url, body["access_token"]).json()["data"]["me"]
    assert me["ref"] == "fc-sandbox" and me["primaryRetailer"] == {"id": "1"}


def test_password_grant_with_query_parameters_and_form_merged_form_wins(sandbox):
    r = httpx.post(
        f"{sandbox.base_url}/oauth/token",
        params={"grant_type": "password", "username": "sandbox", "password": "wrong", **CLIENT},
        data={"password": "sandbox"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["FirstName"] == "Sandbox"
    me = graphql(sandbox.base_url, r.json()["access_token"]).json()["data"]["me"]
    assert me["username"] == "sandbox"
    only_query = httpx.post(
        f"{sandbox.base_url}/oauth/token",
        params={"grant_type": "password", "username": "sandbox", "password": "sandbox", **CLIENT},
    )
    assert only_query.status_code == 200


@pytest.mark.parametrize(
    "params,status,error",
    [
        ({"client_secret": "wrong-secret"}, 401, "invalid_client"),
        ({"client_id": "someone-else"}, 401, "invalid_client"),
        ({"grant_type": "password", "username": "sandbox", "password": "nope"}, 400, "invalid_grant"),
        ({"grant_type": "authorization_code"}, 400, "unsupported_grant_type"),
        ({"grant_type": ""}, 400, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "never-issued"}, 400, "invalid_grant"),
    ],
)
def test_bad_token_requests_are_refused_like_fluent(sandbox, params, status, error):
    r = get_token(sandbox.base_url, **params)
    assert r.status_code == status
    assert r.json()["error"] == error and r.json()["error_description"]
    assert "access_token" not in r.json()


def test_refresh_tokens_rotate_and_are_single_use(sandbox):
    first = get_token(sandbox.base_url, grant_type="password", username="sandbox", password="sandbox").json()
    second = get_token(sandbox.base_url, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    assert (
        graphql(sandbox.base_url, second.json()["access_token"]).json()["data"]["me"]["username"] == "sandbox"
    )
    again = get_token(sandbox.base_url, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert again.status_code == 400
    assert again.json() == {"error": "invalid_grant", "error_description": "Invalid refresh token"}
    third = get_token(
        sandbox.base_url, grant_type="refresh_token", refresh_token=second.json()["refresh_token"]
    )
    assert third.status_code == 200


def test_expire_tokens_fault_expires_every_token_issued_so_far(sandbox_clean):
    base = sandbox_clean.base_url
    old = get_token(base).json()
    assert graphql(base, old["access_token"]).status_code == 200
    sandbox_clean.admin.set_faults(expire_tokens=True)
    assert graphql(base, old["access_token"]).status_code == 401
    assert get_token(base, grant_type="refresh_token", refresh_token=old["refresh_token"]).status_code == 400
    assert "expire_tokens" not in sandbox_clean.admin.faults()  # an action, not a lasting fault
    fresh = get_token(base).json()["access_token"]
    assert graphql(base, fresh).status_code == 200


def test_token_ttl_flag_expires_tokens_and_fault_flags_apply_from_start():
    args = [
        "--orders",
        "20",
        "--locations",
        "3",
        "--products",
        "5",
        "--inventory-positions",
        "10",
        "--virtual-positions",
        "5",
        "--token-ttl",
        "1",
        "--rate-limit",
        "1",
        "--retry-after",
        "7",
    ]
    with SandboxServer(args, seed=7) as sb:
        body = get_token(sb.base_url).json()
        assert body["expires_in"] == 1
        limited = graphql(sb.base_url, body["access_token"])
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
        assert graphql(sb.base_url, body["access_token"]).status_code == 200
        time.sleep(1.1)
        assert graphql(sb.base_url, body["access_token"]).status_code == 401
        assert graphql(sb.base_url, get_token(sb.base_url).json()["access_token"]).status_code == 200
    assert sb.process.returncode == 0  # SIGTERM: a clean exit
