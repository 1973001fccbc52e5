"""Fluent's own attribute list in JSON and JSONL records, `"attributes": [{"name", "type", "value"}]`
(read/attribute_list.py): the same attributes `attr_*` keys give, its types kept, and a list not in that
shape a rejected row naming the element — never a traceback, never attributes silently dropped.

Before, the list was an unknown key: a product exported from Fluent and imported again lost every attribute
(fc_assets_tests/ingestion_flow/test_product_attribute_lists.py sends them to the sandbox)."""

from __future__ import annotations

import io
import json

import pytest

from fc_assets.ingestion.feeds import Feed, products_feed
from fc_assets.ingestion.read import jsonl_fast, readers
from fc_assets.ingestion.read.source_keys import SourceKeys
from fc_assets.ingestion.spec import AttributeColumns, Field
from fc_assets_tests.ingestion_files.helpers import run
from fc_assets_tests.ingestion_files.test_attribute_folding import MIXED, SAME, Record, _csv

PREFIXES = ("attr_", "attribute_", "attributes.")


def _listed(record: Record) -> dict:
    """The record with its attribute keys as Fluent's list (in their order, where the first one was)."""
    out: dict = {}
    for key, value in record:
        prefix = next((p for p in PREFIXES if key.lower().startswith(p)), None)
        if prefix is None:
            out[key] = value
        else:
            out.setdefault("attributes", []).append({"name": key[len(prefix) :], "value": value})
    return out


def _file(records: list[dict], fmt: str) -> tuple[bytes, str]:
    if fmt == "json":
        return json.dumps(records).encode(), "p.json"
    return "".join(json.dumps(r) + "\n" for r in records).encode(), "p.jsonl"


def _attributes(outcome) -> list[list[tuple[str, str, str]]]:
    return [[(a["name"], a["type"], a["value"]) for a in row] for row in outcome.column("attributes")]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
@pytest.mark.parametrize("records", [MIXED, SAME], ids=["mixed", "same_keys"])
def test_the_same_products_as_csv_columns_and_as_fluents_list_give_the_same_rows(records, fmt):
    reference = run(products_feed(), io.BytesIO(_csv(records)), name="p.csv")  # a column per key
    data, name = _file([_listed(r) for r in records], fmt)
    assert b'"attributes": [' in data
    outcome = run(products_feed(), io.BytesIO(data), name=name)
    assert outcome.accepted.equals(reference.accepted), (
        outcome.accepted.to_pylist(),
        reference.accepted.to_pylist(),
    )
    assert outcome.rejects == reference.rejects == []
    assert (outcome.report.rows, outcome.report.accepted) == (len(records), len(records))
    assert outcome.report.unknown_keys is None
    assert any(_attributes(outcome))


TYPED = [
    {"ref": "P1", "name": "Plain", "attr_colour": "red"},  # before any type in the chunk: the feed's
    {
        "ref": "P2",
        "name": "Typed",
        "attributes": [
            {"name": "weight", "type": "INTEGER", "value": 250},
            {"name": "colour", "value": "blue"},
            {"name": "care", "type": " JSON ", "value": {"wash": 30, "iron": False, "notes": None}},
            {"name": "sizes", "type": "JSON", "value": ["S", "M", 3]},
            {"name": "organic", "type": "BOOLEAN", "value": True},
            {"name": "ratio", "type": "", "value": 0.25},
        ],
    },
    {
        "ref": "P3",
        "name": "After",
        "attr_size": "M",
        "attributes": [{"name": "fit", "type": None, "value": "slim"}],
    },
    {"ref": "P4", "name": "Untyped", "attributes": [{"name": "weight", "value": "300"}]},
]
TYPED_ATTRIBUTES = [  # within a record by name (mapping.folded_attribute_lists)
    [("colour", "STRING", "red")],
    [
        ("care", "JSON", '{"wash":30,"iron":false,"notes":null}'),
        ("colour", "STRING", "blue"),
        ("organic", "BOOLEAN", "true"),
        ("ratio", "STRING", "0.25"),
        ("sizes", "JSON", '["S","M",3]'),
        ("weight", "INTEGER", "250"),
    ],
    [("fit", "STRING", "slim"), ("size", "STRING", "M")],
    [
        ("weight", "STRING", "300")
    ],  # (a key typed in an earlier record of the chunk: this one's is the feed's)
]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
@pytest.mark.parametrize("chunk_rows", [1, 2, 65_536])
def test_a_lists_types_are_kept_and_its_values_are_text_as_an_attribute_keys_are(fmt, chunk_rows):
    """A type given is sent; none (absent, null, empty) is the feed's. Objects and arrays in `value` are JSON
    text, as an array under an `attr_*` key is; numbers and booleans their text. Within a record, by name (then by
    key: `attr_colour` and the list's `colour` are two keys)."""
    data, name = _file(TYPED, fmt)
    outcome = run(products_feed(), io.BytesIO(data), name=name, chunk_rows=chunk_rows)
    assert outcome.rejects == []
    assert _attributes(outcome) == TYPED_ATTRIBUTES


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_a_value_that_is_an_array_is_the_text_an_attribute_keys_array_is(fmt):
    keyed = [{"ref": "P1", "name": "N", "attr_dims": [1, 2, {"d": 3}], "attr_on": True, "attr_n": 7}]
    listed = [
        {
            "ref": "P1",
            "name": "N",
            "attributes": [
                {"name": "dims", "value": [1, 2, {"d": 3}]},
                {"name": "on", "value": True},
                {"name": "n", "value": 7},
            ],
        }
    ]
    a = run(products_feed(), io.BytesIO(_file(keyed, fmt)[0]), name=_file(keyed, fmt)[1])
    b = run(products_feed(), io.BytesIO(_file(listed, fmt)[0]), name=_file(listed, fmt)[1])
    assert (
        _attributes(a)
        == _attributes(b)
        == [[("dims", "STRING", '[1,2,{"d":3}]'), ("n", "STRING", "7"), ("on", "STRING", "true")]]
    )


BAD = [
    (
        "red",
        "attribute list not in Fluent's shape: attributes is text, not a list of objects with name and value",
    ),
    (
        7,
        "attribute list not in Fluent's shape: attributes is a number, not a list of objects with name and value",
    ),
    (
        [{"name": "a", "value": "1"}, {"name": "b", "value": "2"}, "c"],
        "attribute list not in Fluent's shape: attributes[2] is text, not an object with name and value",
    ),
    (
        [{"name": "a"}, [1]],
        "attribute list not in Fluent's shape: attributes[1] is a list, not an object with name and value",
    ),
    ([{"value": "x"}], "attribute list not in Fluent's shape: attributes[0].name is missing"),
    ([{"name": None, "value": "x"}], "attribute list not in Fluent's shape: attributes[0].name is missing"),
    (
        [{"name": 5, "value": "x"}],
        "attribute list not in Fluent's shape: attributes[0].name is a number, not text",
    ),
    (
        [{"name": {"en": "x"}, "value": "x"}],
        "attribute list not in Fluent's shape: attributes[0].name is an object, not text",
    ),
    ([{"name": "  ", "value": "x"}], "attribute list not in Fluent's shape: attributes[0].name is empty"),
    (
        [{"name": "a", "type": 1, "value": "x"}],
        "attribute list not in Fluent's shape: attributes[0].type is a number, not text",
    ),
    (
        [{"name": "a", "value": "1"}, {"name": "a", "value": "2"}],
        "attribute given twice with different values: attributes[0] '1', attributes[1] '2'",
    ),
    (
        [{"name": "a", "type": "STRING", "value": "1"}, {"name": "a", "type": "INTEGER", "value": "1"}],
        "attribute given twice with different values: attributes[0] of type 'STRING', attributes[1] of type 'INTEGER'",
    ),
]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
@pytest.mark.parametrize(("attributes", "reason"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_a_list_not_in_fluents_shape_rejects_its_row_naming_the_element(attributes, reason, fmt):
    records = [
        {"ref": "P1", "name": "Good", "attributes": [{"name": "colour", "value": "red"}]},
        {"ref": "P2", "name": "Bad", "attributes": attributes},
        {"ref": "P3", "name": "Good too", "attr_size": "M"},
    ]
    data, name = _file(records, fmt)
    outcome = run(products_feed(), io.BytesIO(data), name=name)
    assert outcome.accepted.column("ref").to_pylist() == ["P1", "P3"]
    assert _attributes(outcome) == [[("colour", "STRING", "red")], [("size", "STRING", "M")]]
    ((row, field, value, why),) = outcome.rejects
    assert (row, field, why) == (2, "_record", reason)
    assert '"P2"' in value
    assert outcome.report.reasons == {f"_record: {reason.split(':')[0]}": 1}


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_one_name_in_the_list_and_as_an_attribute_key(fmt):
    """Different values: the row is rejected naming both; the same value (trimmed), or one of them empty: one
    attribute, the list's (it may carry a type)."""
    records = [
        {"ref": "P1", "name": "N", "attr_colour": "red", "attributes": [{"name": "colour", "value": "blue"}]},
        {
            "ref": "P2",
            "name": "N",
            "attributes": [{"name": "colour", "type": "COLOUR", "value": "red"}],
            "attr_colour": " red ",
        },
        {"ref": "P3", "name": "N", "attributes": [{"name": "colour", "value": ""}], "attr_colour": "green"},
        {"ref": "P4", "name": "N", "attributes": [{"name": "colour", "value": "teal"}], "attr_colour": ""},
        {
            "ref": "P5",
            "name": "N",
            "attributes": [{"name": "a", "value": "1"}, {"name": "a", "type": "T", "value": " 1"}],
        },
        {"ref": "P6", "name": "N", "attributes": [{"name": "a", "value": None}, {"name": "a", "value": "2"}]},
        {
            "ref": "P7",
            "name": "N",
            "attributes": {"colour": "red"},
            "ATTR_colour": "red",
        },  # keys only: as before
        {"ref": "P8", "name": "N", "attributes": [{"name": "Colour", "value": "red"}], "attr_colour": "blue"},
        {
            "ref": "P9",
            "name": "N",
            "attributes": [{"name": "colour", "value": "red"}],
            "attributes.colour": "pink",
        },
    ]
    data, name = _file(records, fmt)
    outcome = run(products_feed(), io.BytesIO(data), name=name)
    assert [(r[0], r[3]) for r in outcome.rejects] == [
        (1, "attribute given twice with different values: attributes[0] 'blue', attr_colour 'red'"),
        (9, "attribute given twice with different values: attributes[0] 'red', attributes.colour 'pink'"),
    ]
    assert outcome.accepted.column("ref").to_pylist() == [f"P{i}" for i in range(2, 9)]
    got = [sorted(row) for row in _attributes(outcome)]
    assert got == [
        [("colour", "COLOUR", "red")],
        [("colour", "STRING", "green")],
        [("colour", "STRING", "teal")],
        [("a", "T", "1")],
        [("a", "STRING", "2")],
        [("colour", "STRING", "red"), ("colour", "STRING", "red")],  # (two keys, no list: two entries)
        [("Colour", "STRING", "red"), ("colour", "STRING", "blue")],  # (names are case-sensitive)
    ]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_the_lists_key_is_matched_as_attribute_prefixes_are_and_null_or_empty_is_no_attribute(fmt):
    records = [
        {"ref": "P1", "name": "N", "Attributes": [{"name": "colour", "value": "red"}]},
        {"ref": "P2", "name": "N", "attributes": None},
        {"ref": "P3", "name": "N", "attributes": []},
        {"ref": "P4", "name": "N", "attributes": [{"name": "colour"}, {"name": "size", "value": "  "}]},
    ]
    data, name = _file(records, fmt)
    outcome = run(products_feed(), io.BytesIO(data), name=name)
    assert outcome.rejects == []
    assert _attributes(outcome) == [[("colour", "STRING", "red")], [], [], []]
    assert outcome.report.unknown_keys is None


def test_a_feed_without_the_object_forms_prefix_reads_no_list():
    """The list stands for the object form's keys (`attributes.<name>`): a feed that does not read those does
    not read the list either — it stays an unknown key, as `"attributes": {...}` is."""
    feed = Feed(
        "attr_only",
        fields=(Field("ref", required=True),),
        keys=("ref",),
        sender="event_product",
        attributes=AttributeColumns(prefixes=("attr_",)),
    )
    records = [{"ref": "P1", "attr_a": "1", "attributes": [{"name": "colour", "value": "red"}]}]
    outcome = run(feed, io.BytesIO(_file(records, "jsonl")[0]), name="p.jsonl")
    assert _attributes(outcome) == [[("a", "STRING", "1")]]
    assert outcome.report.unknown_keys == {"distinct": 1, "names": ["attributes"]}


def test_records_without_a_list_keep_the_fast_path_and_untyped_chunks(monkeypatch):
    """A JSONL file of flat string values is still read by `jsonl_fast` alone; a chunk whose records have no
    typed list has folded entries without a type field (read/folded.py)."""

    def fail(*args, **kwargs):
        raise AssertionError("the line reader was not to be used")

    monkeypatch.setattr(readers, "_read_jsonl_lines", fail)
    data = "".join(json.dumps({"ref": f"P{i}", "name": "N", "attr_colour": "red"}) + "\n" for i in range(50))
    outcome = run(products_feed(), io.BytesIO(data.encode()), name="p.jsonl")
    assert outcome.report.accepted == 50
    monkeypatch.undo()
    keys = SourceKeys.for_feed(products_feed())
    untyped = [{"ref": "P1", "name": "N", "attributes": [{"name": "a", "value": "1"}]}]
    from fc_assets.ingestion.read.streams import ByteSource

    (batch,) = readers._read_jsonl(ByteSource(io.BytesIO(_file(untyped, "jsonl")[0]), "p.jsonl"), 10, keys)
    assert batch.column("_attributes").type.value_type.names == ["name", "value"]
    assert jsonl_fast is not None


# ------------------------------------------------------------------------------------------------- XML


def _xml(records: list[dict]) -> bytes:
    """Records as our XML exports write them (extraction/export_files.py): a list as repeated singular
    elements, `<attributes><attribute><name>…</name><value>…</value></attribute>…</attributes>`."""
    import pyarrow as pa

    from fc_assets.extraction.export_files import xml_writer

    out = io.BytesIO()
    keys = list(dict.fromkeys(k for r in records for k in r))
    table = pa.Table.from_pylist([{k: r.get(k) for k in keys} for r in records])
    xml_writer("products")(iter(table.to_batches()), table.schema, out)
    return out.getvalue()


@pytest.mark.parametrize("records", [MIXED, SAME], ids=["mixed", "same_keys"])
def test_our_xml_export_of_fluents_list_gives_the_rows_csv_columns_give(records, monkeypatch):
    """(The fast XML path leaves such a file to the full parser, which reads the list.)"""
    listed = []
    for r in records:
        rec = _listed(r)
        rec["attributes"] = [{**a, "value": a["value"] or None} for a in rec.get("attributes", [])] or None
        listed.append(rec)
    data = _xml(listed)
    assert b"<attributes><attribute><name>" in data
    reference = run(products_feed(), io.BytesIO(_csv(records)), name="p.csv")
    outcome = run(products_feed(), io.BytesIO(data), name="p.xml")
    assert outcome.accepted.equals(reference.accepted), (
        outcome.accepted.to_pylist(),
        reference.accepted.to_pylist(),
    )
    assert outcome.rejects == []
    assert outcome.report.unknown_keys is None


def test_xml_attribute_lists_types_shapes_and_rejects():
    body = (
        "<products>"
        "<product><ref>P1</ref><name>N</name><attr_x>1</attr_x></product>"  # (the fast path's block, then not)
        "<product><ref>P2</ref><name>N</name><attributes>"
        "<attribute><name>weight</name><type>INTEGER</type><value>250</value></attribute>"
        "<attribute name='colour' type='COLOUR'>red</attribute>"
        "<attribute><name>care</name><type>JSON</type><value><wash>30</wash></value></attribute>"
        "</attributes></product>"
        "<product><ref>P3</ref><name>N</name><attributes><attribute><value>x</value></attribute></attributes></product>"
        "<product><ref>P4</ref><name>N</name><attributes>red</attributes></product>"
        "<product><ref>P5</ref><name>N</name><attributes><attribute><name>a</name><value>1</value></attribute>"
        "<colour>red</colour></attributes></product>"
        "<product><ref>P6</ref><name>N</name><attr_a>2</attr_a><attributes><attribute><name>a</name>"
        "<value>1</value></attribute></attributes></product>"
        "<product><ref>P7</ref><name>N</name><attributes><colour>red</colour></attributes><attributes/></product>"
        "<product><ref>P8</ref><name>N</name><attributes/></product>"
        "</products>"
    )
    outcome = run(products_feed(), io.BytesIO(body.encode()), name="p.xml")
    assert [(r[0], r[3]) for r in outcome.rejects] == [
        (3, "attribute list not in Fluent's shape: attributes[0].name is missing"),
        (
            4,
            "attribute list not in Fluent's shape: attributes is text, not a list of objects with name and value",
        ),
        (5, "attribute list not in Fluent's shape: attributes[1] is text, not an object with name and value"),
        (6, "attribute given twice with different values: attributes[0] '1', attr_a '2'"),
    ]
    assert outcome.rejects[0][2].startswith("<product><ref>P3</ref>")
    assert outcome.accepted.column("ref").to_pylist() == ["P1", "P2", "P7", "P8"]
    assert _attributes(outcome) == [
        [("x", "STRING", "1")],
        [("care", "JSON", '{"wash":"30"}'), ("colour", "COLOUR", "red"), ("weight", "INTEGER", "250")],
        [("colour", "STRING", "red")],  # (the object form, beside an empty list)
        [],
    ]
    assert outcome.report.unknown_keys is None


def test_the_fast_xml_path_leaves_attribute_lists_to_the_parser(monkeypatch):
    from fc_assets.ingestion.read import xml_fast, xml_records

    seen = []
    real = xml_records.read_xml_full

    def spy(*args, **kwargs):
        seen.append(kwargs.get("skip", 0))
        return real(*args, **kwargs)

    monkeypatch.setattr(xml_records, "read_xml_full", spy)
    monkeypatch.setattr(xml_fast, "BLOCK_BYTES", 300)
    plain = [{"ref": f"P{i}", "name": "N", "attr_colour": "red"} for i in range(40)]
    listed = [{"ref": "Q1", "name": "N", "attributes": [{"name": "colour", "value": "red"}]}]
    outcome = run(products_feed(), io.BytesIO(_xml(plain + listed)), name="p.xml", chunk_rows=8)
    assert seen and seen[0] > 0  # the fast path read the first chunks, the parser the rest
    assert outcome.report.accepted == 41
    assert _attributes(outcome) == [[("colour", "STRING", "red")]] * 41
    seen.clear()
    assert run(products_feed(), io.BytesIO(_xml(plain)), name="p.xml").report.accepted == 40
    assert seen == []
