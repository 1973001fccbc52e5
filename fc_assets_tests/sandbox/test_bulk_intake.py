"""`--bulk-intake`: batch inventory validated as usual, kept as key hashes and qtys, summed up in
`GET /_sandbox/received` (what a 10M-row first load is checked against), over HTTP."""

from __future__ import annotations

import pytest

from fc_assets.sandbox.bulk import MASK, entity_digest
from fc_assets.sandbox.runner import SandboxServer
from fc_assets_tests.sandbox.api import Api
from fc_assets_tests.sandbox.test_batch import JOB, POSITION, batch, new_job, wait_for


@pytest.fixture(scope="module")
def bulk_sandbox():
    args = [
        "--orders",
        "0",
        "--inventory-positions",
        "0",
        "--virtual-positions",
        "0",
        "--batch-delay-ms",
        "0",
    ]
    with SandboxServer([*args, "--bulk-intake", "--reject-sku", "REFUSED"], seed=3) as server:
        yield server


def entity(sku: str, qty, loc: str = "LOC-1") -> dict:
    return {"skuRef": sku, "locationRef": loc, "qty": qty, "type": "LAST_ON_HAND", "status": "AVAILABLE"}


def test_bulk_batches_are_validated_counted_and_summed(bulk_sandbox):
    api = Api(bulk_sandbox.base_url)
    job = new_job(api)
    first = [
        entity("A", 5),
        entity("B", "7"),
        entity("C", -1),
        entity("REFUSED", 3),
        entity("D", 11, "LOC-2"),
    ]
    second = [entity("A", 2), entity("E", 0)]  # A again: a second entity, the same position
    ids = []
    for entities in (first, second):
        r = api.post(f"{JOB}/{job}/batch", json=batch(entities))
        assert r.status_code == 200, r.text
        ids.append(r.json()["id"])
    body, _ = wait_for(api, job, ids[0])
    assert body["count"] == 5 and body["total"] == 2
    assert [(e["entityIndex"], e["code"]) for e in body["results"]] == [
        (2, "INVALID_ENTITY"),
        (3, "REJECTED"),
    ]
    assert wait_for(api, job, ids[1])[0]["count"] == 2

    got = bulk_sandbox.admin.received()
    assert [(b["id"], b["count"], b["status"]) for b in got["batches"]] == [
        (ids[0], 5, "COMPLETE"),
        (ids[1], 2, "COMPLETE"),
    ]
    assert all("entities" not in b for b in got["batches"])
    assert got["entity_count"] == 7
    valid = [("A", "LOC-1", 5), ("B", "LOC-1", 7), ("D", "LOC-2", 11), ("A", "LOC-1", 2), ("E", "LOC-1", 0)]
    digest = sum(entity_digest(s, loc, "LAST_ON_HAND", q) for s, loc, q in valid) & MASK
    assert got["bulk_inventory"] == {
        "entities": 5,
        "qty_sum": 25,
        "digest": str(digest),
        "positions": 4,  # A, B, D, E
        "on_hand_sum": 2 + 7 + 11 + 0,  # A's latest qty
    }
    # a changed qty changes the digest
    assert str(digest) != str(
        (
            digest
            - entity_digest("E", "LOC-1", "LAST_ON_HAND", 0)
            + entity_digest("E", "LOC-1", "LAST_ON_HAND", 1)
        )
        & MASK
    )
    # not in the store: GraphQL does not see bulk-loaded inventory
    nodes = api.gql(POSITION, {"r": ["A:LOC-1:DEFAULT"]})["data"]["inventoryPositions"]["edges"]
    assert nodes == []

    bulk_sandbox.admin.reset()
    after = bulk_sandbox.admin.received()
    assert after["entity_count"] == 0
    assert after["bulk_inventory"] == {
        "entities": 0,
        "qty_sum": 0,
        "digest": "0",
        "positions": 0,
        "on_hand_sum": 0,
    }
    api.close()


def test_a_qty_beyond_int64_is_an_entity_error_and_the_batch_completes(bulk_sandbox):
    """Before: the batch stayed RUNNING (OverflowError while keeping the qtys as int64)."""
    bulk_sandbox.admin.reset()
    api = Api(bulk_sandbox.base_url)
    job = new_job(api)
    r = api.post(f"{JOB}/{job}/batch", json=batch([entity("BIG", 2**63), entity("OK", 1)]))
    assert r.status_code == 200, r.text
    body, _ = wait_for(api, job, r.json()["id"])
    assert body["status"] == "COMPLETE"
    assert [(e["entityIndex"], e["message"]) for e in body["results"]] == [(0, "qty out of range")]
    assert bulk_sandbox.admin.received()["bulk_inventory"]["entities"] == 1
    api.close()


def test_default_sandbox_keeps_entities_and_no_bulk_summary(sandbox_clean):
    sandbox = sandbox_clean
    api = Api(sandbox.base_url)
    job = new_job(api)
    r = api.post(f"{JOB}/{job}/batch", json=batch([entity("BULK-OFF", 4)]))
    wait_for(api, job, r.json()["id"])
    got = sandbox.admin.received()
    assert got["bulk_inventory"] is None
    assert got["batches"][-1]["entities"] == [entity("BULK-OFF", 4)]
    api.close()
