"""POST /graphql as a client sees it: validation, Fluent's error codes and limits, Relay paging with
inclusive DateRange windows, lookups, `me`, introspection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

ORDERS = (
    "query($first: Int, $after: String, $range: DateRange) { orders(first: $first, after: $after, "
    "updatedOn: $range) { edges { cursor node { id updatedOn } } pageInfo { hasNextPage hasPreviousPage } } }"
)
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def iso(d: datetime) -> str:
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def test_unknown_fields_and_arguments_fail_validation(api):
    for query in (
        "{ orders { edges { node { id deliveryAddress { city } } } } }",
        '{ orders(updatedOn: {after: "2024-01-01"}) { edges { cursor } } }',
        "{ fulfillments { edges { cursor } } }",
        "{ products(first: 1) { edges { cursor } } }",
    ):
        body = api.gql(query)
        assert "data" not in body
        assert body["errors"] and body["errors"][0]["extensions"]["classification"] == "ValidationError"
    syntax = api.gql("{ orders { ")
    assert syntax["errors"][0]["extensions"]["classification"] == "InvalidSyntax"


def test_an_empty_date_range_is_C0101E_and_a_bad_date_is_C0100E(api):
    body = api.gql("{ orders(updatedOn: {}) { edges { cursor } } }")
    assert body["data"] == {"orders": None}
    err = body["errors"][0]
    assert err["extensions"]["code"] == "C0101E" and err["message"].startswith("C0101E")
    assert err["path"] == ["orders"]
    bad = api.gql(ORDERS, {"range": {"from": "yesterday"}})
    assert bad["errors"][0]["extensions"]["code"] == "C0100E"
    assert bad["errors"][0]["message"].startswith("C0100E")


def test_complexity_over_11111_is_C0001E_and_nothing_runs(api):
    over = api.gql(
        "{ orders(first: 200) { edges { node { items(first: 100) { edges { node { id } } } } } } }"
    )
    assert "data" not in over
    assert over["errors"][0]["extensions"]["code"] == "C0001E"
    assert over["errors"][0]["message"].startswith("C0001E")
    ok = api.gql(
        "query($n: Int) { orders(first: $n) { edges { node { items(first: 100) { edges { node { id } } } } } } }",
        {"n": 100},
    )
    assert "errors" not in ok and len(ok["data"]["orders"]["edges"]) == 100
    assert (
        api.gql("query($n: Int) { inventoryPositions(first: $n) { edges { cursor } } }", {"n": 11_112})[
            "errors"
        ][0]["extensions"]["code"]
        == "C0001E"
    )


def test_request_size_limit_and_malformed_bodies(api):
    huge = "{ me { ref } }" + " " * (2 * 1024 * 1024)
    assert api.post("/graphql", json={"query": huge}).status_code == 413
    assert (
        api.post("/graphql", content=b"{not json", headers={"content-type": "application/json"}).status_code
        == 400
    )
    assert api.post("/graphql", json={"variables": {}}).status_code == 400


def test_default_page_size_is_10_and_page_info_is_always_boolean(api):
    conn = api.data("{ orders { edges { cursor } pageInfo { hasNextPage hasPreviousPage } } }")["orders"]
    assert len(conn["edges"]) == 10
    assert conn["pageInfo"] == {"hasNextPage": True, "hasPreviousPage": False}
    empty = api.data(
        ORDERS, {"first": 5, "range": {"from": "2000-01-01T00:00:00Z", "to": "2000-01-02T00:00:00Z"}}
    )
    assert empty["orders"] == {"edges": [], "pageInfo": {"hasNextPage": False, "hasPreviousPage": False}}


def test_paging_a_window_has_no_duplicates_or_misses_and_both_bounds_are_inclusive(api, sandbox):
    """A day's window [D, D+1] inclusive = counts [D, D+1) plus the entities exactly at D+1 00:00:00.000Z."""
    checked_edge = False
    for days_ago in range(2, 12):
        day = TODAY - timedelta(days=days_ago)
        frm, to = iso(day), iso(day + timedelta(days=1))
        nodes = api.crawl(
            "orders",
            "id updatedOn",
            ", updatedOn: $range",
            {"range": {"from": frm, "to": to}},
            first=7,
            decl=", $range: DateRange",
        )
        ids = [n["id"] for n in nodes]
        assert len(ids) == len(set(ids))
        assert [n["updatedOn"] for n in nodes] == sorted(n["updatedOn"] for n in nodes)  # documented order
        inside = sandbox.admin.counts("orders", frm, to)["ids"]
        at_end = sandbox.admin.counts("orders", to, iso(day + timedelta(days=1, milliseconds=1)))["ids"]
        assert sorted(ids) == sorted(inside + at_end)
        assert all(n["updatedOn"] == to for n in nodes if n["id"] in at_end)
        checked_edge |= bool(at_end)
        if checked_edge and days_ago >= 4:
            break
    assert checked_edge, "the generated data has entities exactly at a UTC midnight"


def test_every_connection_pages_to_the_admin_count(api, sandbox):
    for field, entity, args, decl, extra in [
        ("inventoryPositions", "inventory_positions", "", "", {}),
        ("inventoryQuantities", "inventory_quantities", "", "", {}),
        ("locations", "locations", "", "", {}),
        ("fulfilments", "fulfilments", "", "", {}),
        (
            "virtualPositions",
            "virtual_positions",
            ", catalogue: $cat",
            ", $cat: VirtualCatalogueKey",
            {"cat": {"ref": "BASE:1"}},
        ),
    ]:
        nodes = api.crawl(field, "id", args, extra, first=500, decl=decl)
        ids = [n["id"] for n in nodes]
        assert len(ids) == len(set(ids))
        expected = sandbox.admin.counts(entity)["ids"]
        if field == "virtualPositions":
            assert set(ids) < set(expected)  # one of the two catalogues
        else:
            assert ids == expected  # same order too: updatedOn, then id


def test_backward_paging_with_last_and_before(api):
    forward = api.data("{ locations(first: 12) { edges { cursor node { id } } } }")["locations"]["edges"]
    back = api.data(
        "query($b: String) { locations(last: 5, before: $b) { edges { cursor node { id } } "
        "pageInfo { hasNextPage hasPreviousPage } } }",
        {"b": forward[10]["cursor"]},
    )["locations"]
    assert [e["node"]["id"] for e in back["edges"]] == [e["node"]["id"] for e in forward[5:10]]
    assert back["pageInfo"] == {"hasNextPage": True, "hasPreviousPage": True}


def test_a_write_during_a_crawl_does_not_shift_later_pages(api, sandbox_clean):
    before = [n["id"] for n in api.crawl("locations", "id")]
    page = api.data("{ locations(first: 10) { edges { cursor node { id } } } }")["locations"]["edges"]
    moved = page[0]["node"]["id"]  # updated now: it moves to the end of the order
    done = api.data(
        "mutation($i: UpdateLocationInput) { updateLocation(input: $i) { id updatedOn } }",
        {"i": {"id": moved, "name": "Moved"}},
    )
    assert done["updateLocation"]["id"] == moved
    seen = [e["node"]["id"] for e in page]
    after = page[-1]["cursor"]
    while True:
        conn = api.data(
            "query($a: String) { locations(first: 10, after: $a) { edges { cursor node { id } } "
            "pageInfo { hasNextPage } } }",
            {"a": after},
        )["locations"]
        seen += [e["node"]["id"] for e in conn["edges"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["edges"][-1]["cursor"]
    assert sorted(set(seen)) == sorted(before)  # nothing missed
    assert seen.count(moved) == 2 and seen[-1] == moved  # seen again at the end, like a real keyset crawl


def test_filters_on_ref_status_type_and_catalogue(api):
    some = api.data("{ orders(first: 3) { edges { node { ref status type } } } }")["orders"]["edges"]
    refs = [e["node"]["ref"] for e in some]
    by_ref = api.data(
        "query($r: [String]) { orders(ref: $r, first: 10) { edges { node { ref } } } }", {"r": refs}
    )
    assert sorted(e["node"]["ref"] for e in by_ref["orders"]["edges"]) == sorted(refs)
    done = api.crawl(
        "orders",
        "status type",
        ", status: $s, type: $t",
        {"s": ["COMPLETE"], "t": ["CC"]},
        first=200,
        decl=", $s: [String], $t: [String!]",
    )
    assert done and all(n == {"status": "COMPLETE", "type": "CC"} for n in done)
    vps = api.data(
        '{ virtualPositions(first: 20, catalogue: {ref: "ATS:1"}) { edges { node { catalogue { ref } } } } }'
    )
    assert {e["node"]["catalogue"]["ref"] for e in vps["virtualPositions"]["edges"]} == {"ATS:1"}


def test_lookups_nested_connections_me_and_introspection(api):
    order = api.data("{ orders(first: 1) { edges { node { id ref } } } }")["orders"]["edges"][0]["node"]
    same = api.data(
        "query($r: String, $i: ID!) { order(ref: $r) { id } orderById(id: $i) { ref "
        "items(first: 1) { edges { node { order { ref } product { ref } } } pageInfo { hasNextPage } } } }",
        {"r": order["ref"], "i": order["id"]},
    )
    assert same["order"]["id"] == order["id"] and same["orderById"]["ref"] == order["ref"]
    assert same["orderById"]["items"]["edges"][0]["node"]["order"]["ref"] == order["ref"]
    assert api.data('{ order(ref: "NOPE") { id } location(ref: "NOPE") { id } }') == {
        "order": None,
        "location": None,
    }
    pos = api.data("{ inventoryPositions(first: 1) { edges { node { ref productRef catalogue { ref } } } } }")
    node = pos["inventoryPositions"]["edges"][0]["node"]
    got = api.data(
        "query($r: String!, $c: String!) { inventoryPosition(ref: $r, catalogue: {ref: $c}) { ref "
        "product { ref } location { city } } }",
        {"r": node["ref"], "c": node["catalogue"]["ref"]},
    )
    assert got["inventoryPosition"]["product"]["ref"] == node["productRef"]
    me = api.data("{ me { ref type primaryRetailer { id ref } } }")["me"]
    assert me["primaryRetailer"]["id"] == "1"
    intro = api.data('{ __schema { queryType { name } } __type(name: "PageInfo") { fields { name } } }')
    assert intro["__schema"]["queryType"]["name"] == "Query"
    assert {f["name"] for f in intro["__type"]["fields"]} == {"hasNextPage", "hasPreviousPage"}


def test_graphql_needs_post(api):
    assert httpx.get(f"{api.base_url}/graphql", headers=api.headers).status_code == 405


def test_far_date_bounds_are_fine(api, sandbox):
    everything = api.data(
        ORDERS, {"first": 1, "range": {"from": "1900-01-01T00:00:00Z", "to": "3000-01-01T00:00:00Z"}}
    )
    assert everything["orders"]["pageInfo"]["hasNextPage"] is True
