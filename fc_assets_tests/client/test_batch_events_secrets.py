"""Unit tests (MockTransport): Batch/Job and Event API calls, secret hygiene, the Dagster resource."""

from __future__ import annotations

import json
import logging
from urllib.parse import parse_qsl

import dagster as dg
import httpx
import pytest

from fc_assets.resources.fluent import (
    FluentAuthError,
    FluentBatchTimeout,
    FluentHTTPError,
    FluentJobClosedError,
    FluentResource,
    FluentValidationError,
)
from fc_assets_tests.client.mock_fluent import PASSWORD, SECRET, MockFluent

ENTITY = {"skuRef": "SKU1", "locationRef": "LOC1", "qty": 5, "type": "LAST_ON_HAND", "status": "ACTIVE"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"action": "CREATE"}, "action"),
        ({"entity_type": "UNKNOWN"}, "entityType"),
        ({"entities": []}, "1..5000"),
        ({"entities": [ENTITY] * 5001}, "1..5000"),
    ],
)
def test_batch_validated_before_sending(kwargs, message):
    fluent = MockFluent()
    entities = kwargs.pop("entities", [ENTITY])
    with pytest.raises(FluentValidationError, match=message):
        fluent.client().send_batch("1", entities, **kwargs)
    assert fluent.requests == []


def test_job_batch_flow_and_poll_until_complete():
    fluent = MockFluent()
    statuses = iter(["PENDING", "RUNNING", "COMPLETE"])
    posted = []

    def rest(req: httpx.Request) -> httpx.Response:
        if req.method == "POST":
            posted.append(json.loads(req.content))
            return httpx.Response(200, json={"id": 42 if req.url.path.endswith("/job") else "b1"})
        return httpx.Response(200, json={"batchId": "b1", "status": next(statuses), "results": []})

    fluent.rest = rest
    client = fluent.client()
    job = client.create_job("inventory-2025-01-01", meta={"preprocessing": "skip"})
    assert job == "42" and posted[0] == {
        "name": "inventory-2025-01-01",
        "retailerId": "1",
        "meta": {"preprocessing": "skip"},
    }
    assert client.send_batch(job, [ENTITY], catalogueRef="DEFAULT:1") == "b1"
    assert posted[1] == {
        "action": "UPSERT",
        "entityType": "INVENTORY",
        "catalogueRef": "DEFAULT:1",
        "entities": [ENTITY],
    }
    batch = client.wait_for_batch(job, "b1", poll_initial=0.01)
    assert batch["status"] == "COMPLETE" and fluent.calls("/api/v4.1/job/42/batch/b1") == 3


def test_wait_for_batch_times_out():
    fluent = MockFluent()
    fluent.rest = lambda req: httpx.Response(200, json={"status": "RUNNING"})
    with pytest.raises(FluentBatchTimeout) as info:
        fluent.client().wait_for_batch("1", "2", timeout=0.1, poll_initial=0.02)
    assert info.value.last_status == "RUNNING" and info.value.waited >= 0.1


def test_closed_job_is_recognised_by_the_jobs_status():
    fluent = MockFluent().then("/api/v4.1/job/5/batch", (400, {"message": "refused"}))
    fluent.then("/api/v4.1/job/5", (200, {"jobId": "5", "status": "CLOSED"}))
    with pytest.raises(FluentJobClosedError) as info:
        fluent.client().send_batch("5", [ENTITY])
    assert info.value.job_id == "5" and info.value.status == 400
    fluent.then("/api/v4.1/job/5/batch", (400, {"message": "location 'closed-store' is closed"}))
    fluent.then("/api/v4.1/job/5", (200, {"jobId": "5", "status": "OPEN"}))
    with pytest.raises(FluentHTTPError) as info:
        fluent.client().send_batch("5", [ENTITY])
    assert not isinstance(info.value, FluentJobClosedError)
    fluent.then("/api/v4.1/job/5/batch", (400, {"message": "Job 5 is closed"}))
    fluent.then("/api/v4.1/job/5", 503, 503, 503, 503, 503, 503)  # status unknown: not taken as closed
    with pytest.raises(FluentHTTPError) as info:
        fluent.client(max_retries=0).send_batch("5", [ENTITY])
    assert not isinstance(info.value, FluentJobClosedError)


def test_events_post_and_search_pages():
    fluent = MockFluent()
    events = [{"id": f"e{i}", "name": "E"} for i in range(5)]
    seen = []

    def rest(req: httpx.Request) -> httpx.Response:
        if req.method == "POST":
            return httpx.Response(200, json=json.loads(req.content))
        q = dict(parse_qsl(req.url.query.decode()))
        seen.append(q)
        start, count = int(q["start"]), int(q["count"])
        return httpx.Response(
            200,
            json={
                "start": start,
                "count": count,
                "hasMore": start + count < len(events),
                "results": events[start : start + count],
            },
        )

    fluent.rest = rest
    client = fluent.client(page_size=2)
    echoed = client.post_event({"name": "E", "entityType": "ORDER"}, mode="sync")
    assert echoed["retailerId"] == "1" and fluent.requests[-1].url.path == "/api/v4.1/event/sync"
    found = list(client.search_events(name="E", context={"entityRef": "O1"}, eventStatus=None))
    assert found == events and client.stats.pages == 3
    assert seen[0] == {"name": "E", "context.entityRef": "O1", "start": "0", "count": "2"}
    with pytest.raises(FluentValidationError):
        client.post_event({"entityType": "ORDER"})


def test_secrets_never_in_repr_errors_or_logs(caplog):
    caplog.set_level(logging.DEBUG)
    fluent = MockFluent(refresh_tokens=True)
    client = fluent.client(username="sandbox", password=PASSWORD)
    client.graphql("query { me { ref } }")
    token = next(iter(fluent.valid_tokens))
    # a server that echoes the credentials and the token back in an error body
    fluent.then("/graphql", (400, {"message": f"bad request {SECRET} {PASSWORD} {token}"}))
    with pytest.raises(FluentHTTPError) as http_err:
        client.graphql("query { me { ref } }")
    fluent.valid_tokens.clear()
    fluent.then(
        "/oauth/token",
        (401, {"error": "invalid_client", "error_description": f"client {SECRET}"}),
        (401, {"error": "invalid_client", "error_description": f"client {SECRET}"}),
    )
    fluent.then("/graphql", 401)
    with pytest.raises(FluentAuthError) as auth_err:
        client.graphql("query { me { ref } }")
    texts = [
        repr(client),
        str(client.stats),
        str(http_err.value),
        repr(http_err.value),
        str(auth_err.value),
        caplog.text,
    ]
    for text in texts:
        for secret in (SECRET, PASSWORD, token, "refresh-token-0001-xyz"):
            assert secret not in text
    assert (
        "***" in str(http_err.value)
        and "***" in str(auth_err.value)
        and "POST /graphql -> 200" in caplog.text
    )


def test_resource_from_env_uses_envvars_for_secrets(settings_env):
    settings_env(
        FLUENT_CLIENT_SECRET="env-secret-value",
        FLUENT_USERNAME="sandbox",
        FLUENT_PASSWORD="env-password-value",
        FC_FLUENT_PAGE_SIZE=250,
    )
    resource = FluentResource.from_env()
    assert isinstance(resource.client_secret, dg.EnvVar) and isinstance(resource.password, dg.EnvVar)
    assert "env-secret-value" not in repr(resource) and "env-password-value" not in repr(resource)
    client = resource.get_client()  # outside a run the EnvVars are resolved here
    assert (
        client._client_secret == "env-secret-value"
        and client.page_size == 250
        and client.grant_type == "password"
    )

    with dg.build_resources({"fluent": resource}) as resources:  # what Dagster hands an asset
        assert resources.fluent.client_secret == "env-secret-value"
        assert resources.fluent.get_client()._client_secret == "env-secret-value"
