"""The Job/Batch API: validation, the PENDING → RUNNING → COMPLETE lifecycle with per-entity errors,
inventory visible through GraphQL afterwards, jobs closing at UTC midnight, and the batch faults."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

JOB = "/api/v4.1/job"
POSITION = (
    'query($r: [String!]) { inventoryPositions(ref: $r, catalogue: {ref: "DEFAULT:1"}) { edges { node { '
    "ref onHand productRef locationRef updatedOn quantities(first: 10) { edges { node { ref type quantity "
    "updatedOn } } } } } } }"
)


def new_job(api) -> str:
    r = api.post(
        JOB, json={"name": "inventory-feed 2024-05-01", "retailerId": "1", "meta": {"source": "test"}}
    )
    assert r.status_code == 200, r.text
    return r.json()["id"]


def batch(entities: list, **kw) -> dict:
    return {"action": "UPSERT", "entityType": "INVENTORY", "entities": entities, **kw}


def wait_for(
    api, job_id: str, batch_id: str, status: str = "COMPLETE", timeout: float = 10
) -> tuple[dict, list]:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = api.get(f"{JOB}/{job_id}/batch/{batch_id}").json()
        if not seen or seen[-1] != body["status"]:
            seen.append(body["status"])
        if body["status"] == status:
            return body, seen
        time.sleep(0.01)
    raise AssertionError(f"batch stayed {seen}")


@pytest.mark.parametrize(
    "body,reason",
    [
        (batch([{"skuRef": "A", "locationRef": "L", "qty": 1}] * 5001), "at most 5000"),
        (batch([]), "non-empty"),
        (batch([{"skuRef": "A", "locationRef": "L", "qty": 1}], action="CREATE"), "action"),
        (batch([{"skuRef": "A", "locationRef": "L", "qty": 1}], entityType="UNKNOWN"), "entityType"),
        ({"action": "UPSERT", "entityType": "INVENTORY"}, "entities"),
        ([1, 2, 3], "object"),
    ],
)
def test_batches_fluent_would_refuse_get_400(api, body, reason):
    job = new_job(api)
    r = api.post(f"{JOB}/{job}/batch", json=body)
    assert r.status_code == 400 and reason in r.json()["message"]
    assert api.get(f"{JOB}/{job}").json()["batch"] == []


def test_malformed_bodies_unknown_jobs_and_bad_jobs(api):
    assert api.post(JOB, content=b"{oops", headers={"content-type": "application/json"}).status_code == 400
    assert api.post(JOB, json={"retailerId": "1"}).status_code == 400
    assert api.post(JOB, json={"name": "x"}).status_code == 400
    assert api.get(f"{JOB}/999999").status_code == 404
    assert (
        api.post(
            f"{JOB}/999999/batch", json=batch([{"skuRef": "A", "locationRef": "L", "qty": 1}])
        ).status_code
        == 404
    )
    job = new_job(api)
    assert api.get(f"{JOB}/{job}/batch/1").status_code == 404


def test_batch_lifecycle_with_per_entity_errors_and_inventory_visible_in_graphql(api, sandbox_clean):
    before = sandbox_clean.admin.received()["entity_count"]
    job = new_job(api)
    entities = [
        {
            "skuRef": "SP-00001-S",
            "locationRef": "LOC-0001",
            "qty": 11,
            "type": "LAST_ON_HAND",
            "status": "ACTIVE",
        },
        {"skuRef": "SP-00002-M", "locationRef": "LOC-0002", "qty": "12"},
        {"skuRef": "NEW-SKU", "locationRef": "LOC-0003", "qty": 0, "expectedOn": "2024-06-01T00:00:00Z"},
        {"skuRef": "SP-00003-L", "locationRef": "LOC-0001", "qty": "lots"},
        {"locationRef": "LOC-0001", "qty": 5},
    ]
    r = api.post(f"{JOB}/{job}/batch", json=batch(entities))
    assert r.status_code == 200
    batch_id = r.json()["id"]
    done, seen = wait_for(api, job, batch_id)
    assert seen == ["PENDING", "RUNNING", "COMPLETE"]
    assert done["batchId"] == batch_id and done["jobId"] == job and done["entityType"] == "INVENTORY"
    assert (done["count"], done["total"]) == (5, 2)
    assert [(e["entityIndex"], e["code"]) for e in done["results"]] == [
        (3, "INVALID_ENTITY"),
        (4, "INVALID_ENTITY"),
    ]
    assert "qty" in done["results"][0]["message"] and done["results"][0]["skuRef"] == "SP-00003-L"
    assert "skuRef" in done["results"][1]["message"]
    job_body = api.get(f"{JOB}/{job}").json()
    assert job_body["status"] == "OPEN" and job_body["batch"] == [
        {"batchId": batch_id, "status": "COMPLETE", "createdOn": job_body["batch"][0]["createdOn"]}
    ]

    refs = [
        "SP-00001-S:LOC-0001:DEFAULT",
        "SP-00002-M:LOC-0002:DEFAULT",
        "NEW-SKU:LOC-0003:DEFAULT",
        "SP-00003-L:LOC-0001:DEFAULT",
    ]
    nodes = {
        e["node"]["ref"]: e["node"] for e in api.data(POSITION, {"r": refs})["inventoryPositions"]["edges"]
    }
    assert nodes["SP-00001-S:LOC-0001:DEFAULT"]["onHand"] == 11
    assert nodes["SP-00002-M:LOC-0002:DEFAULT"]["onHand"] == 12
    assert nodes["NEW-SKU:LOC-0003:DEFAULT"]["onHand"] == 0  # created by the batch
    assert (
        "SP-00003-L:LOC-0001:DEFAULT" not in nodes or nodes["SP-00003-L:LOC-0001:DEFAULT"]["onHand"] != "lots"
    )
    lastonhand = [
        q["node"]
        for q in nodes["SP-00001-S:LOC-0001:DEFAULT"]["quantities"]["edges"]
        if q["node"]["type"] == "LAST_ON_HAND"
    ]
    assert (
        lastonhand[0]["quantity"] == 11 and lastonhand[0]["ref"] == "SP-00001-S:LOC-0001:DEFAULT:LAST_ON_HAND"
    )
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert nodes["SP-00001-S:LOC-0001:DEFAULT"]["updatedOn"].startswith(today)
    # the update is found by an extraction window over today (updatedOn moved to the sandbox clock)
    window = {"from": f"{today}T00:00:00Z"}
    recent = api.crawl(
        "inventoryQuantities", "ref quantity", ", updatedOn: $w", {"w": window}, decl=", $w: DateRange"
    )
    assert {"ref": "SP-00001-S:LOC-0001:DEFAULT:LAST_ON_HAND", "quantity": 11} in recent

    received = sandbox_clean.admin.received()
    assert received["entity_count"] - before == 5
    assert received["batches"][-1] == {
        "id": batch_id,
        "jobId": job,
        "entities": entities,
        "status": "COMPLETE",
    }
    assert any(j["id"] == job for j in received["jobs"])


def test_a_job_closes_at_utc_midnight_of_the_sandbox_clock(api, sandbox_clean):
    now = datetime.now(UTC)
    sandbox_clean.admin.set_clock((now.replace(hour=23, minute=59, second=58)).isoformat())
    job = new_job(api)
    assert api.get(f"{JOB}/{job}").json()["status"] == "OPEN"
    sandbox_clean.admin.advance_clock(3)
    assert api.get(f"{JOB}/{job}").json()["status"] == "CLOSED"
    r = api.post(
        f"{JOB}/{job}/batch", json=batch([{"skuRef": "SP-00001-S", "locationRef": "LOC-0001", "qty": 1}])
    )
    assert r.status_code == 400 and "closed" in r.json()["message"]
    fresh = new_job(api)
    assert api.get(f"{JOB}/{fresh}").json()["status"] == "OPEN"
    tomorrow = (now + timedelta(days=1)).strftime("%Y-%m-%d")
    assert api.get(f"{JOB}/{fresh}").json()["createdOn"].startswith(tomorrow)


def test_stuck_batches_stay_running_and_rejected_entities_fail_alone(api, sandbox_clean):
    job = new_job(api)
    sandbox_clean.admin.set_faults(stuck_batches=True)
    stuck = api.post(
        f"{JOB}/{job}/batch", json=batch([{"skuRef": "SP-00001-S", "locationRef": "LOC-0001", "qty": 1}])
    ).json()["id"]
    wait_for(api, job, stuck, "RUNNING")
    time.sleep(0.3)
    assert api.get(f"{JOB}/{job}/batch/{stuck}").json()["status"] == "RUNNING"
    sandbox_clean.admin.set_faults(stuck_batches=None, reject_entities={"skuRefs": ["SP-00002-M"]})
    ok = api.post(
        f"{JOB}/{job}/batch",
        json=batch(
            [
                {"skuRef": "SP-00001-S", "locationRef": "LOC-0001", "qty": 3},
                {"skuRef": "SP-00002-M", "locationRef": "LOC-0001", "qty": 4},
            ]
        ),
    ).json()["id"]
    done, _ = wait_for(api, job, ok)
    assert [(e["entityIndex"], e["skuRef"], e["code"]) for e in done["results"]] == [
        (1, "SP-00002-M", "REJECTED")
    ]
    sandbox_clean.admin.set_faults(reject_entities={"rate": 1.0})
    all_rejected = api.post(
        f"{JOB}/{job}/batch", json=batch([{"skuRef": "SP-00001-S", "locationRef": "LOC-0001", "qty": 3}] * 3)
    ).json()["id"]
    done, _ = wait_for(api, job, all_rejected)
    assert done["total"] == 3
