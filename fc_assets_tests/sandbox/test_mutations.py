"""GraphQL mutations with Fluent's inputs; aliased requests run each alias on its own."""

from __future__ import annotations

ADDRESS = {
    "ref": "LOC-NEW-1",
    "latitude": -33.86,
    "longitude": 151.2,
    "street": "1 Pitt St",
    "city": "Sydney",
    "postcode": "2000",
    "country": "AU",
}
SCHEDULE = {
    "allHours": True,
    **{f"{d}{p}": 0 for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun") for p in ("Start", "End")},
}


def create_input(ref: str) -> dict:
    return {
        "ref": ref,
        "type": "STORE",
        "name": f"Store {ref}",
        "retailer": {"id": "1"},
        "primaryAddress": {**ADDRESS, "ref": ref},
        "openingSchedule": SCHEDULE,
    }


def test_aliased_mutations_run_independently_with_per_alias_errors(api, sandbox_clean):
    existing = api.data('{ location(ref: "LOC-0001") { id name } }')["location"]
    query = (
        "mutation Upsert($i0: CreateLocationInput!, $i1: CreateLocationInput!, $i2: UpdateLocationInput!, "
        "$i3: UpdateLocationInput!) { a0: createLocation(input: $i0) { id ref } "
        "a1: createLocation(input: $i1) { id ref } a2: updateLocation(input: $i2) { id name } "
        "a3: updateLocation(input: $i3) { id } }"
    )
    body = api.gql(
        query,
        {
            "i0": create_input("LOC-NEW-1"),
            "i1": create_input("LOC-0002"),
            "i2": {"id": existing["id"], "name": "Renamed"},
            "i3": {"id": "987654"},
        },
    )
    assert body["data"]["a0"]["ref"] == "LOC-NEW-1"
    assert body["data"]["a1"] is None and body["data"]["a3"] is None
    assert body["data"]["a2"] == {"id": existing["id"], "name": "Renamed"}
    errors = {e["path"][0]: e for e in body["errors"]}
    assert set(errors) == {"a1", "a3"}
    assert errors["a1"]["extensions"]["code"] == "C0123E" and "already exists" in errors["a1"]["message"]
    assert errors["a3"]["extensions"]["code"] == "C0120E" and errors["a3"]["message"].startswith("C0120E")
    created = api.data(
        '{ location(ref: "LOC-NEW-1") { name primaryAddress { city latitude } openingSchedule '
        "{ allHours } retailer { id } } }"
    )["location"]
    assert created == {
        "name": "Store LOC-NEW-1",
        "primaryAddress": {"city": "Sydney", "latitude": -33.86},
        "openingSchedule": {"allHours": True},
        "retailer": {"id": "1"},
    }
    mutations = sandbox_clean.admin.received()["mutations"]
    assert [(m["name"], m["alias"], m["ok"]) for m in mutations] == [
        ("createLocation", "a0", True),
        ("createLocation", "a1", False),
        ("updateLocation", "a2", True),
        ("updateLocation", "a3", False),
    ]
    assert mutations[0]["input"]["ref"] == "LOC-NEW-1"


def test_invalid_mutation_inputs_fail_validation(api):
    body = api.gql('mutation { createLocation(input: {ref: "X"}) { id } }')  # required fields missing
    assert "data" not in body and body["errors"][0]["extensions"]["classification"] == "ValidationError"


def test_product_mutations(api, sandbox_clean):
    std = {
        "ref": "NEW-STD",
        "catalogue": {"ref": "PC:MASTER:1"},
        "type": "STANDARD",
        "gtin": "9312345678901",
        "name": "New standard",
        "prices": [{"type": "DEFAULT", "currency": "AUD", "value": 10}],
        "attributes": [{"name": "brand", "type": "STRING", "value": "Acme"}],
    }
    var = {
        "ref": "NEW-STD-M",
        "catalogue": {"ref": "PC:MASTER:1"},
        "type": "VARIANT",
        "gtin": "9312345678902",
        "name": "New variant",
        "product": {"ref": "NEW-STD", "catalogue": {"ref": "PC:MASTER:1"}},
    }
    made = api.data(
        "mutation($s: CreateStandardProductInput, $v: CreateVariantProductInput) { "
        "s: createStandardProduct(input: $s) { id status } v: createVariantProduct(input: $v) "
        "{ id product { ref } } }",
        {"s": std, "v": var},
    )
    assert made["s"]["status"] == "CREATED" and made["v"]["product"] == {"ref": "NEW-STD"}
    assert made["s"]["id"] != made["v"]["id"]
    upd = api.data(
        "mutation($u: UpdateStandardProductInput) { updateStandardProduct(input: $u) { status "
        "prices { type currency value } attributes { name value } } }",
        {
            "u": {
                "ref": "NEW-STD",
                "catalogue": {"ref": "PC:MASTER:1"},
                "status": "ACTIVE",
                "prices": [
                    {"type": "DEFAULT", "currency": "AUD", "value": 12},
                    {"type": "SALE", "currency": "AUD", "value": 9},
                ],
                "attributes": [{"name": "season", "type": "STRING", "value": "winter"}],
            }
        },
    )
    assert upd["updateStandardProduct"]["status"] == "ACTIVE"
    assert upd["updateStandardProduct"]["prices"] == [
        {"type": "DEFAULT", "currency": "AUD", "value": 12.0},
        {"type": "SALE", "currency": "AUD", "value": 9.0},
    ]
    assert {a["name"] for a in upd["updateStandardProduct"]["attributes"]} == {"brand", "season"}
    dup = api.gql(
        "mutation($s: CreateStandardProductInput) { createStandardProduct(input: $s) { id } }", {"s": std}
    )
    assert dup["errors"][0]["extensions"]["code"] == "C0128E"
    missing = api.gql(
        'mutation { updateVariantProduct(input: {ref: "NOPE", catalogue: {ref: "PC:MASTER:1"}}) { id } }'
    )
    assert missing["data"] == {"updateVariantProduct": None}
    assert missing["errors"][0]["extensions"]["code"] == "C0120E"
    found = api.data('{ variantProducts(ref: ["NEW-STD-M"]) { edges { node { ref name } } } }')
    assert found["variantProducts"]["edges"] == [{"node": {"ref": "NEW-STD-M", "name": "New variant"}}]


def test_inventory_mutations(api, sandbox_clean):
    cat = {"ref": "DEFAULT:1"}
    made = api.data(
        """mutation($p: CreateInventoryPositionInput, $q: CreateInventoryQuantityInput) {
        p: createInventoryPosition(input: $p) { ref onHand status }
        q: createInventoryQuantity(input: $q) { ref quantity expectedOn position { ref } } }""",
        {
            "p": {
                "ref": "SKU-Z:LOC-0001:DEFAULT",
                "catalogue": cat,
                "type": "DEFAULT",
                "productRef": "SKU-Z",
                "locationRef": "LOC-0001",
                "onHand": 4,
            },
            "q": {
                "ref": "SKU-Z:LOC-0001:DEFAULT:EXPECTED",
                "catalogue": cat,
                "type": "EXPECTED",
                "quantity": 9,
                "expectedOn": "2024-07-01T10:00:00Z",
                "position": {"ref": "SKU-Z:LOC-0001:DEFAULT", "catalogue": cat},
            },
        },
    )
    assert made["p"] == {"ref": "SKU-Z:LOC-0001:DEFAULT", "onHand": 4, "status": "CREATED"}
    assert made["q"] == {
        "ref": "SKU-Z:LOC-0001:DEFAULT:EXPECTED",
        "quantity": 9,
        "expectedOn": "2024-07-01T10:00:00.000Z",
        "position": {"ref": "SKU-Z:LOC-0001:DEFAULT"},
    }
    upd = api.data(
        """mutation($p: UpdateInventoryPositionInput, $q: UpdateInventoryQuantityInput) {
        p: updateInventoryPosition(input: $p) { onHand status }
        q: updateInventoryQuantity(input: $q) { quantity } }""",
        {
            "p": {"ref": "SKU-Z:LOC-0001:DEFAULT", "catalogue": cat, "onHand": 8, "status": "ACTIVE"},
            "q": {"ref": "SKU-Z:LOC-0001:DEFAULT:EXPECTED", "catalogue": cat, "quantity": 2},
        },
    )
    assert upd == {"p": {"onHand": 8, "status": "ACTIVE"}, "q": {"quantity": 2}}
    pos = api.data(
        '{ inventoryPosition(ref: "SKU-Z:LOC-0001:DEFAULT", catalogue: {ref: "DEFAULT:1"}) '
        "{ quantities { edges { node { type quantity } } } } }"
    )
    assert pos["inventoryPosition"]["quantities"]["edges"] == [{"node": {"type": "EXPECTED", "quantity": 2}}]
    bad = api.gql(
        'mutation { createInventoryPosition(input: {ref: "x", catalogue: {ref: "NOPE"}, type: "D", '
        'productRef: "p", locationRef: "l"}) { id } }'
    )
    assert bad["errors"][0]["extensions"]["code"] == "C0120E"
