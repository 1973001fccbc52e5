"""The Event API: posting (async/sync), validation, search and get; product upsert events applied."""

from __future__ import annotations

import pytest

EVENT = "/api/v4.1/event"


@pytest.mark.parametrize(
    "body",
    [
        {"entityType": "ORDER", "retailerId": "1"},
        {"name": "OrderCancel", "retailerId": "1"},
        {"name": "OrderCancel", "entityType": "ORDER"},
        [],
    ],
)
def test_events_without_name_entity_type_or_retailer_are_400(api, body):
    assert api.post(f"{EVENT}/async", json=body).status_code == 400


def test_posted_events_are_found_by_id_and_by_search(api, sandbox_clean):
    a = api.post(
        f"{EVENT}/async",
        json={
            "name": "OrderCancel",
            "entityType": "ORDER",
            "entityRef": "ORD-0000007",
            "rootEntityType": "ORDER",
            "retailerId": "1",
            "attributes": {"reason": "customer"},
        },
    )
    assert a.status_code == 200 and set(a.json()) == {"id"}
    s = api.post(
        f"{EVENT}/sync",
        json={
            "name": "OrderCancel",
            "entityType": "ORDER",
            "entityId": "7",
            "entityRef": "ORD-0000007",
            "retailerId": 1,
        },
    )
    assert s.status_code == 200
    assert s.json()["eventStatus"] == "COMPLETE" and s.json()["entityId"] == "7" and s.json()["eventId"]
    one = api.get(f"{EVENT}/{a.json()['id']}").json()
    assert (
        one["name"] == "OrderCancel"
        and one["retailerId"] == "1"
        and one["attributes"] == {"reason": "customer"}
    )
    assert one["context"]["entityRef"] == "ORD-0000007" and one["context"]["rootEntityType"] == "ORDER"
    assert api.get(f"{EVENT}/00000000-0000-0000-0000-000000000000").status_code == 404

    found = api.get(EVENT, params={"name": "OrderCancel", "context.entityRef": "ORD-0000007"}).json()
    assert {r["id"] for r in found["results"]} == {a.json()["id"], s.json()["eventId"]}
    assert found["start"] == 0 and found["hasMore"] is False
    page = api.get(EVENT, params={"name": "OrderCancel", "count": 1}).json()
    assert page["count"] == 1 and page["hasMore"] is True
    rest = api.get(EVENT, params={"name": "OrderCancel", "count": 1, "start": 1}).json()
    assert rest["hasMore"] is False and rest["results"][0]["id"] != page["results"][0]["id"]
    assert (
        api.get(EVENT, params={"name": "OrderCancel", "to": "2000-01-01T00:00:00Z"}).json()["results"] == []
    )
    assert [e["name"] for e in sandbox_clean.admin.received()["events"]] == ["OrderCancel", "OrderCancel"]


def test_product_upsert_events_are_applied_to_the_product_store(api, sandbox_clean):
    standard = {
        "name": "UPSERT_PRODUCT",
        "entityType": "PRODUCT",
        "entityRef": "TSHIRT-1",
        "retailerId": "1",
        "rootEntityType": "PRODUCT_CATALOGUE",
        "rootEntityRef": "PC:MASTER:1",
        "attributes": {
            "ref": "TSHIRT-1",
            "type": "STANDARD",
            "status": "ACTIVE",
            "name": "T-shirt",
            "gtin": "9300000000017",
            "price": 19.95,
            "currency": "AUD",
            "colour": "blue",
        },
    }
    r = api.post(f"{EVENT}/sync", json=standard).json()
    assert r["eventStatus"] == "COMPLETE"
    variant = {
        "name": "UPSERT_PRODUCT",
        "entityType": "PRODUCT_CATALOGUE",
        "entityRef": "PC:MASTER:1",
        "retailerId": "1",
        "attributes": {
            "ref": "TSHIRT-1-M",
            "type": "VARIANT",
            "name": "T-shirt M",
            "parent_ref": "TSHIRT-1",
            "gtin": "9300000000024",
        },
    }
    assert api.post(f"{EVENT}/async", json=variant).status_code == 200
    got = api.data("""{ standardProducts(ref: ["TSHIRT-1"], catalogue: {ref: "PC:MASTER:1"}) { edges { node {
        id ref name status gtin prices { type currency value } attributes { name value }
        variants(first: 5) { edges { node { ref name product { ref } } } } } } } }""")
    node = got["standardProducts"]["edges"][0]["node"]
    assert node["id"] == r["entityId"]
    assert (node["name"], node["status"], node["gtin"]) == ("T-shirt", "ACTIVE", "9300000000017")
    assert node["prices"] == [{"type": "DEFAULT", "currency": "AUD", "value": 19.95}]
    assert {"name": "colour", "value": "blue"} in node["attributes"]
    assert node["variants"]["edges"] == [
        {"node": {"ref": "TSHIRT-1-M", "name": "T-shirt M", "product": {"ref": "TSHIRT-1"}}}
    ]
    update = {
        **standard,
        "attributes": {"ref": "TSHIRT-1", "name": "T-shirt (new)", "price": 17.5, "currency": "AUD"},
    }
    api.post(f"{EVENT}/sync", json=update)
    again = api.data(
        '{ standardProduct(ref: "TSHIRT-1", catalogue: {ref: "PC:MASTER:1"}) { name prices { value } } }'
    )
    assert again["standardProduct"] == {"name": "T-shirt (new)", "prices": [{"value": 17.5}]}
    orphan = {**variant, "attributes": {"ref": "X-1", "type": "VARIANT", "parent_ref": "NOPE", "name": "x"}}
    assert api.post(f"{EVENT}/sync", json=orphan).json()["eventStatus"] == "FAILED"
