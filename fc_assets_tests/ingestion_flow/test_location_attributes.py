"""Locations carry attributes as products do (CreateLocationInput / UpdateLocationInput `attributes:
[AttributeInput]`): `attr_*` CSV columns, Fluent's own `"attributes": [{name, type, value}]` list in JSON and
JSONL (types kept), or XML's attribute list and object form reach the sandbox's location; the delta hashes them, so an unchanged file is not sent again and
a changed attribute is.

Before, the locations feed declared no attributes: they were unknown keys and never left the file."""

from __future__ import annotations

import json

import pytest

from fc_assets.ingestion.feeds import locations_feed
from fc_assets_tests.ingestion_flow.flow import Flow
from fc_assets_tests.ingestion_flow.test_master_data import run_file

CSV = (
    "ref,name,type,latitude,longitude,street,city,postcode,country,attr_region,attr_floor_space\n"
    "LA-1{s},Store One,STORE,-33.86,151.20,1 George St,Sydney,2000,AU,NSW,420\n"
    "LA-2{s},Warehouse,WAREHOUSE,-27.47,153.02,3 Queen St,Brisbane,4000,AU,QLD,\n"  # empty: no attribute
)
CSV_EXPECTED = {
    "LA-1": [  # by name
        {"name": "floor_space", "type": "STRING", "value": "420"},
        {"name": "region", "type": "STRING", "value": "NSW"},
    ],
    "LA-2": [{"name": "region", "type": "STRING", "value": "QLD"}],
}
JSON_LOCATIONS = [
    {
        "ref": "LA-1",
        "name": "Store One",
        "type": "STORE",
        "primaryAddress": {"street": "1 George St", "city": "Sydney", "latitude": -33.86, "longitude": 151.2},
        "attributes": [
            {"name": "region", "type": "STRING", "value": "NSW"},
            {"name": "floorSpace", "type": "INTEGER", "value": 420},
            {"name": "hours", "type": "JSON", "value": {"late": True}},
        ],
    },
    {
        "ref": "LA-2",
        "name": "Warehouse",
        "type": "WAREHOUSE",
        "primaryAddress": {
            "street": "3 Queen St",
            "city": "Brisbane",
            "latitude": -27.47,
            "longitude": 153.02,
        },
        "attributes": [{"name": "region", "value": "QLD"}],
    },
]
JSON_EXPECTED = {
    "LA-1": [
        {"name": "floorSpace", "type": "INTEGER", "value": "420"},
        {"name": "hours", "type": "JSON", "value": '{"late":true}'},
        {"name": "region", "type": "STRING", "value": "NSW"},
    ],
    "LA-2": [{"name": "region", "type": "STRING", "value": "QLD"}],  # no type given: the feed's (STRING)
}
XML = (
    "<locations>"
    "<location><ref>LA-1{s}</ref><name>Store One</name><type>STORE</type>"
    "<primaryAddress><latitude>-33.86</latitude><longitude>151.2</longitude></primaryAddress><attributes>"
    "<attribute><name>region</name><type>STRING</type><value>NSW</value></attribute>"
    "<attribute name='floorSpace' type='INTEGER'>420</attribute>"
    "<attribute><name>hours</name><type>JSON</type><value><late>true</late></value></attribute>"
    "</attributes></location>"
    "<location><ref>LA-2{s}</ref><name>Warehouse</name><type>WAREHOUSE</type><latitude>-27.47</latitude>"
    "<longitude>153.02</longitude><attributes><region>QLD</region></attributes></location>"
    "</locations>"
)
XML_EXPECTED = {
    "LA-1": [
        {"name": "floorSpace", "type": "INTEGER", "value": "420"},
        {"name": "hours", "type": "JSON", "value": '{"late":"true"}'},  # (XML children as text)
        {"name": "region", "type": "STRING", "value": "NSW"},
    ],
    "LA-2": [{"name": "region", "type": "STRING", "value": "QLD"}],  # the object form: the feed's type
}
QUERY = "query L($ref: String!) { location(ref: $ref) { ref name attributes { name type value } } }"


def _file(fmt: str, suffix: str) -> tuple[str, bytes]:
    if fmt == "csv":
        return "locations.csv", CSV.format(s=suffix).encode()
    if fmt == "xml":
        return "locations.xml", XML.format(s=suffix).encode()
    records = [{**loc, "ref": loc["ref"] + suffix} for loc in JSON_LOCATIONS]
    if fmt == "jsonl":
        return "locations.jsonl", "".join(json.dumps(r) + "\n" for r in records).encode()
    return "locations.json", json.dumps(records).encode()


def _attributes(flow: Flow, refs: list[str]) -> dict[str, list[dict]]:
    with flow.resources["fluent"].get_client() as client:
        return {ref: client.graphql(QUERY, {"ref": ref})["location"]["attributes"] for ref in refs}


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("csv", CSV_EXPECTED), ("json", JSON_EXPECTED), ("jsonl", JSON_EXPECTED), ("xml", XML_EXPECTED)],
)
def test_location_attributes_reach_fluent_with_their_types(fmt, expected, make_flow):
    flow: Flow = make_flow(locations_feed(), glob="*")
    suffix = f"-{fmt}"
    md = run_file(flow, *_file(fmt, suffix))
    assert md["sent"] == 2 and md["fluent_rejected"] == 0
    assert not md.get("unknown_keys"), md.get("unknown_keys")  # (was the attribute columns / `attributes`)
    muts = flow.received.mutations()
    assert [m["name"] for m in muts] == ["createLocation"] * 2 and all(m["ok"] for m in muts)
    got = _attributes(flow, [ref + suffix for ref in expected])
    assert got == {ref + suffix: attrs for ref, attrs in expected.items()}


def test_an_unchanged_location_is_not_resent_and_a_changed_attribute_is(make_flow):
    flow: Flow = make_flow(locations_feed(), glob="*")
    body = CSV.format(s="-delta")
    assert run_file(flow, "delta-1.csv", body.encode())["sent"] == 2
    assert run_file(flow, "delta-2.csv", body.encode())["sent"] == 0  # the same file: nothing
    assert len(flow.received.mutations()) == 2
    # the same locations as JSON with Fluent's list (untyped: the feed's STRING): still nothing
    same = [
        {**loc, "ref": loc["ref"] + "-delta", "attributes": attrs}
        for loc, attrs in zip(
            JSON_LOCATIONS,
            [
                [{"name": "region", "value": "NSW"}, {"name": "floor_space", "value": "420"}],
                [{"name": "region", "type": "STRING", "value": "QLD"}],
            ],
            strict=True,
        )
    ]
    csv_fields = {"postcode": ("2000", "4000"), "country": ("AU", "AU")}
    for i, loc in enumerate(same):  # (the CSV's other fields, so only the attributes could differ)
        loc.update({k: v[i] for k, v in csv_fields.items()})
    assert run_file(flow, "delta-3.json", json.dumps(same).encode())["sent"] == 0
    # one attribute changed: that location alone, as an update carrying its attributes
    md = run_file(flow, "delta-4.csv", body.replace("NSW,420", "NSW,450").encode())
    assert md["sent"] == 1 and md["fluent_rejected"] == 0
    (upd,) = flow.received.mutations()[2:]
    assert upd["name"] == "updateLocation" and upd["ok"]
    assert upd["input"]["attributes"] == [
        {"name": "floor_space", "type": "STRING", "value": "450"},
        {"name": "region", "type": "STRING", "value": "NSW"},
    ]
    got = _attributes(flow, ["LA-1-delta", "LA-2-delta"])
    assert got["LA-1-delta"] == [
        {"name": "floor_space", "type": "STRING", "value": "450"},
        {"name": "region", "type": "STRING", "value": "NSW"},
    ]
    assert got["LA-2-delta"] == CSV_EXPECTED["LA-2"]


def test_a_snapshot_from_before_location_attributes_still_works(make_flow):
    """A deployment's locations snapshot was written without the `attributes` column: the first file after
    the upgrade failed to commit (DuckDB: `Referenced column "attributes" not found`), and so would every
    file after it. Now its rows read as rows without attributes: each is sent once more, then not again."""
    import dataclasses

    old: Flow = make_flow(dataclasses.replace(locations_feed(), attributes=None), glob="*")
    body = CSV.format(s="-old")
    assert run_file(old, "old-1.csv", body.encode())["sent"] == 2
    assert _attributes(old, ["LA-1-old"]) == {"LA-1-old": []}
    new: Flow = make_flow(locations_feed(), glob="*")
    header, first, _ = body.splitlines(keepends=True)
    md = run_file(new, "old-2.csv", (header + first).encode())  # LA-2 stays in the snapshot as it was
    assert md["sent"] == 1 and md["fluent_rejected"] == 0
    assert run_file(new, "old-3.csv", body.encode())["sent"] == 1  # LA-2, with its attributes now
    assert run_file(new, "old-4.csv", body.encode())["sent"] == 0
    assert [m["name"] for m in new.received.mutations()] == ["updateLocation"] * 2
    got = _attributes(new, ["LA-1-old", "LA-2-old"])
    assert got == {ref + "-old": attrs for ref, attrs in CSV_EXPECTED.items()}
