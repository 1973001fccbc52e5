"""Products (Event API) and locations (GraphQL mutations) end to end against the sandbox: sent once, visible
in Fluent, a re-run is an update or nothing — never a storm of "already exists" errors."""

from __future__ import annotations

import pytest

from fc_assets.ingestion.deliver.senders import CRASH_ENV
from fc_assets.ingestion.feeds import locations_feed, products_feed
from fc_assets_tests.ingestion_flow.flow import Flow, metadata


def run_file(flow: Flow, name: str, body: bytes) -> dict:
    flow.put_s3(name, body)
    reqs = flow.tick("s3")
    assert len(reqs) == 1, flow.skip
    (req,) = reqs
    result = flow.execute(req)
    assert result.success, result.all_events
    return metadata(result)


PRODUCTS = (
    "ref,type,name,parent_ref,price,currency,gtin,attr_colour\n"
    "MD-STD-1,STANDARD,Shirt,,19.99,AUD,12345678,\n"
    "MD-VAR-1,VARIANT,Shirt red,MD-STD-1,21.50,AUD,12345679,red\n"  # variant listed before its sibling standard
    "MD-STD-2,STANDARD,Trousers,,49.00,AUD,12345680,\n"
)

PRODUCT_QUERY = """query P($refs: [String!]) { standardProducts(ref: $refs, first: 10) { edges { node { ref name
  prices { type currency value } } } } variantProducts(ref: $refs, first: 10) { edges { node { ref name } } } }"""


def test_products_as_upsert_events(make_flow):
    flow = make_flow(products_feed())
    md = run_file(flow, "products-1.csv", PRODUCTS.encode())
    assert md["sent"] == 3 and md["fluent_rejected"] == 0
    events = flow.received.events()
    assert [e["name"] for e in events] == ["UPSERT_PRODUCT"] * 3
    assert all(e["eventStatus"] == "COMPLETE" for e in events)
    with flow.resources["fluent"].get_client() as client:
        data = client.graphql(PRODUCT_QUERY, {"refs": ["MD-STD-1", "MD-STD-2", "MD-VAR-1"]})
    assert {e["node"]["ref"] for e in data["standardProducts"]["edges"]} == {"MD-STD-1", "MD-STD-2"}
    assert [e["node"]["ref"] for e in data["variantProducts"]["edges"]] == ["MD-VAR-1"]
    # the same file again: nothing; one product renamed: one event, an update
    assert run_file(flow, "products-2.csv", PRODUCTS.encode())["sent"] == 0
    md3 = run_file(flow, "products-3.csv", PRODUCTS.replace("Trousers", "Chinos").encode())
    assert md3["sent"] == 1 and len(flow.received.events()) == 4


LOCATIONS = (
    "ref,name,type,latitude,longitude,street,city,postcode,country,mon_open,mon_close\n"
    "MD-LOC-1,Store One,STORE,-33.86,151.20,1 George St,Sydney,2000,AU,900,1700\n"
    "MD-LOC-2,Store Two,STORE,-37.81,144.96,2 Collins St,Melbourne,3000,AU,800,1800\n"
    "MD-LOC-3,Warehouse,WAREHOUSE,-27.47,153.02,3 Queen St,Brisbane,4000,AU,,\n"
)


def test_locations_upserted_with_alias_batched_mutations(make_flow):
    flow = make_flow(locations_feed())
    md = run_file(flow, "locations-1.csv", LOCATIONS.encode())
    assert (
        md["sent"] == 3 and md["fluent_rejected"] == 0 and md["fluent_requests"] == 1
    )  # one aliased request
    muts = flow.received.mutations()
    assert [m["name"] for m in muts] == ["createLocation"] * 3 and all(m["ok"] for m in muts)

    md2 = run_file(flow, "locations-2.csv", LOCATIONS.replace("Store Two", "Store 2").encode())
    assert md2["sent"] == 1 and [m["name"] for m in flow.received.mutations()[3:]] == ["updateLocation"]

    # the feed's snapshot is lost: the whole file goes again — as updates, without a single error
    flow.lake.delete("state/locations/snapshot.parquet")
    md3 = run_file(flow, "locations-3.csv", LOCATIONS.encode())
    again = flow.received.mutations()[4:]
    assert md3["sent"] == 3 and md3["fluent_rejected"] == 0
    assert [m["name"] for m in again] == ["updateLocation"] * 3 and all(m["ok"] for m in again)
    with flow.resources["fluent"].get_client() as client:
        loc = client.graphql(
            'query { location(ref: "MD-LOC-2") { name primaryAddress { ... on StoreAddress { city } } } }'
        )
    assert loc["location"]["name"] == "Store Two"


@pytest.mark.parametrize("stage", ["after_send"])
def test_crash_while_sending_locations_never_creates_twice(stage, make_flow, monkeypatch):
    flow = make_flow(locations_feed())
    flow.put_s3("locations.csv", LOCATIONS.encode())
    reqs = flow.tick("s3")
    assert len(reqs) == 1, flow.skip
    (req,) = reqs
    monkeypatch.setenv(CRASH_ENV, stage)
    assert not flow.execute(req).success
    monkeypatch.delenv(CRASH_ENV)
    assert flow.execute(req).success
    muts = flow.received.mutations()
    assert [m["name"] for m in muts].count("createLocation") == 3 and all(m["ok"] for m in muts)


def test_an_unchanged_product_is_not_sent_again_whatever_its_neighbours_attributes(make_flow):
    """A record's attributes do not take their order from the other records of its chunk: the same product
    next to a product whose attribute keys come in another order (or in a CSV with another column order) is
    unchanged for the delta, so it is not sent again."""
    flow = make_flow(products_feed(), glob="*")
    p1 = b'{"ref":"AO-1","type":"STANDARD","name":"Shirt","attr_size":"M","attr_colour":"red"}\n'
    p0 = b'{"ref":"AO-0","type":"STANDARD","name":"Hat","attr_colour":"blue","attr_size":"L"}\n'
    assert run_file(flow, "products-ao-1.jsonl", p1)["sent"] == 1
    md = run_file(flow, "products-ao-2.jsonl", p0 + p1)  # AO-0's keys first: colour before size
    assert md["sent"] == 1, md  # AO-0 only
    csv = b"ref,type,name,attr_colour,attr_size\nAO-1,STANDARD,Shirt,red,M\nAO-0,STANDARD,Hat,blue,L\n"
    assert run_file(flow, "products-ao-3.csv", csv)["sent"] == 0
    assert len(flow.received.events()) == 2


COLOUR_QUERY = """query P($refs: [String!]) { standardProducts(ref: $refs, first: 10) { edges { node { ref
  attributes { name value } } } } }"""


def test_a_name_given_by_two_keys_keeps_its_value_from_the_same_key_whatever_the_values(make_flow):
    """`attr_colour` and `attribute_colour` both give the attribute `colour`, and Fluent keeps one attribute
    per name (the last of the event's list). Which key's value that is must not depend on the values: at
    9ee9d55 the two are listed by value, so a change of `attribute_colour` from "sky" to "amber" is sent,
    yet Fluent then holds `attr_colour`'s "red" (22fd905's CSV path listed them in column order)."""
    flow = make_flow(products_feed(), glob="*")
    head = b"ref,type,name,attr_colour,attribute_colour\n"

    def colour_after(name: str, other: bytes) -> list[str]:
        assert run_file(flow, name, head + b"TK-1,STANDARD,Shirt,red," + other + b"\n")["sent"] == 1
        with flow.resources["fluent"].get_client() as client:
            data = client.graphql(COLOUR_QUERY, {"refs": ["TK-1"]})
        (edge,) = data["standardProducts"]["edges"]
        return [a["value"] for a in edge["node"]["attributes"] if a["name"] == "colour"]

    first = colour_after("products-tk-1.csv", b"sky")
    second = colour_after("products-tk-2.csv", b"amber")
    assert (first, second) in ((["red"], ["red"]), (["sky"], ["amber"])), (first, second)
