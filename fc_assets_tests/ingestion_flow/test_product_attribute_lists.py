"""Products exported from Fluent carry their attributes as Fluent's own list, `"attributes": [{"name", "type",
"value"}]` (AttributeInput): re-imported as JSON or JSONL, every attribute reaches Fluent, with its type.

Before, the readers knew attribute keys only (`attr_colour`, `attributes.colour`): the list was an unknown key
and the products arrived in the sandbox without a single attribute."""

from __future__ import annotations

import json

import pytest

from fc_assets.ingestion.feeds import products_feed
from fc_assets_tests.ingestion_flow.flow import Flow, metadata

PRODUCTS = [
    {
        "ref": "AL-STD-1",
        "type": "STANDARD",
        "name": "Shirt",
        "attributes": [
            {"name": "colour", "type": "STRING", "value": "red"},
            {"name": "weight", "type": "INTEGER", "value": 250},
            {"name": "care", "type": "JSON", "value": {"wash": 30, "iron": False}},
        ],
    },
    {"ref": "AL-STD-2", "type": "STANDARD", "name": "Hat", "attributes": [{"name": "size", "value": "M"}]},
]
EXPECTED = {
    "AL-STD-1": [  # by name
        {"name": "care", "type": "JSON", "value": '{"wash":30,"iron":false}'},
        {"name": "colour", "type": "STRING", "value": "red"},
        {"name": "weight", "type": "INTEGER", "value": "250"},
    ],
    "AL-STD-2": [{"name": "size", "type": "STRING", "value": "M"}],  # no type given: the feed's (STRING)
}
QUERY = """query P($refs: [String!]) { standardProducts(ref: $refs, first: 10) { edges { node { ref
  attributes { name type value } } } } }"""


def _file(fmt: str, suffix: str) -> tuple[str, bytes]:
    products = [{**p, "ref": p["ref"] + suffix} for p in PRODUCTS]
    if fmt == "json":
        return "products.json", json.dumps(products).encode()
    return "products.jsonl", "".join(json.dumps(p) + "\n" for p in products).encode()


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_fluents_attribute_list_reaches_fluent_with_its_types(fmt, make_flow):
    flow: Flow = make_flow(products_feed(), glob=f"*.{fmt}")
    suffix = f"-{fmt}"
    name, body = _file(fmt, suffix)
    flow.put_s3(name, body)
    (req,) = flow.tick("s3")
    result = flow.execute(req)
    assert result.success, result.all_events
    md = metadata(result)
    assert md["sent"] == 2 and md["fluent_rejected"] == 0
    with flow.resources["fluent"].get_client() as client:
        data = client.graphql(QUERY, {"refs": [r + suffix for r in EXPECTED]})
    got = {e["node"]["ref"]: e["node"]["attributes"] for e in data["standardProducts"]["edges"]}
    assert got == {ref + suffix: attrs for ref, attrs in EXPECTED.items()}
    assert not md.get("unknown_keys"), md.get("unknown_keys")  # (was 1: `attributes`)


def test_a_product_sent_from_fluents_list_is_not_sent_again(make_flow):
    """(review) The same file again sends nothing; nor does the same product with its list in another order,
    as JSONL, or with its untyped attribute as an `attr_*` column."""
    from fc_assets_tests.ingestion_flow.test_master_data import run_file

    flow: Flow = make_flow(products_feed(), glob="*")
    name, body = _file("json", "-rerun")
    assert run_file(flow, "rerun-1.json", body)["sent"] == 2
    assert run_file(flow, "rerun-2.json", body)["sent"] == 0
    reordered = [{**p, "ref": p["ref"] + "-rerun", "attributes": p["attributes"][::-1]} for p in PRODUCTS]
    jsonl = "".join(json.dumps(p) + "\n" for p in reordered[::-1]).encode()
    assert run_file(flow, "rerun-3.jsonl", jsonl)["sent"] == 0
    csv = b"ref,type,name,attr_size\nAL-STD-2-rerun,STANDARD,Hat,M\n"
    assert run_file(flow, "rerun-4.csv", csv)["sent"] == 0
    assert len(flow.received.events()) == 2
