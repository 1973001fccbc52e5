"""Products in the JSON shapes users send: one product as Fluent exports it (a document that is the record),
numbers in attribute values (the same text from a JSON and a JSONL file), and chunks whose every record is
rejected as it is read (rejected rows, not a traceback)."""

from __future__ import annotations

import io
import json

import pytest

from fc_assets.ingestion.feeds import products_feed
from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets_tests.ingestion_files.helpers import run


def _attributes(outcome) -> list[list[tuple[str, str, str]]]:
    return [[(a["name"], a["type"], a["value"]) for a in row] for row in outcome.column("attributes")]


def test_a_single_product_document_with_fluents_list_is_not_read_as_its_attributes():
    """A Fluent export of one product (`{"ref", "name", "attributes": [{name, type, value}]}`) has no array of
    records; the reader takes the first top-level array of objects for the records, which is now Fluent's
    attribute list: each attribute is read as a product, and the file is refused with "missing required
    column(s): ref ... columns found: ['name']; keys the feed does not use: ['value']", a reason about the
    wrong records. A document holding no array of records should be read as its one record or refused
    saying so (as `{"ref": .., "name": ..}` without a list is: "set the feed's json_records")."""
    product = {"ref": "ONE", "name": "Shirt", "attributes": [{"name": "colour", "value": "red"}]}
    outcome = run(products_feed(), io.BytesIO(json.dumps(product).encode()), name="product.json")
    assert outcome.column("ref") == ["ONE"]  # the document is the record
    assert _attributes(outcome) == [[("colour", "STRING", "red")]]
    # an object holding the records under another key is still read as before
    many = {"products": [product, {**product, "ref": "TWO"}]}
    outcome = run(products_feed(), io.BytesIO(json.dumps(many).encode()), name="products.json")
    assert outcome.column("ref") == ["ONE", "TWO"]


NUMBERS = [("plain", 250), ("trailing_zero", "1.50"), ("exponent", "1E2"), ("array", "[1.50, 1E2]")]


@pytest.mark.parametrize("form", ["list", "key"])
@pytest.mark.parametrize(("what", "number"), NUMBERS, ids=[n[0] for n in NUMBERS])
def test_a_number_is_the_same_attribute_text_in_json_and_jsonl(what, number, form):
    """The same product as a JSON array and as JSONL sends different attribute values: ijson keeps a number's
    text as a Decimal (`1.50`, `1E+2`), orjson reads a float (`1.5`, `100.0`). Fluent gets another value
    depending on the file's format, and a feed whose files move from JSONL to JSON (or a re-export) sends
    every such product again. Pre-existing for `attr_*` keys (22fd905: JSONL `1.5`, JSON `1.50`); the list
    form, meant to give what `attr_*` keys give, inherits it."""
    value = str(number)
    if form == "list":
        record = f'{{"ref":"A","name":"N","attributes":[{{"name":"w","value":{value}}}]}}'
    else:
        record = f'{{"ref":"A","name":"N","attr_w":{value}}}'
    as_json = run(products_feed(), io.BytesIO(f"[{record}]".encode()), name="p.json")
    as_jsonl = run(products_feed(), io.BytesIO(f"{record}\n".encode()), name="p.jsonl")
    assert _attributes(as_json) == _attributes(as_jsonl)


BAD_RECORDS = {
    "list_shape": b'{"ref":"X","name":"N","attributes":[{"value":"1"}]}',
    "list_twice": b'{"ref":"X","name":"N","attributes":[{"name":"a","value":"1"},{"name":"a","value":"2"}]}',
    "not_an_object": b"5",
}


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
@pytest.mark.parametrize("bad", list(BAD_RECORDS), ids=list(BAD_RECORDS))
def test_a_chunk_of_only_rejected_records_is_rejected_rows_not_a_traceback(bad, fmt):
    """A chunk whose every record is rejected as it is read (an attribute list not in Fluent's shape, one name
    twice, a record that is not an object; also a malformed JSONL line or a record too long) raised
    `ArrowNotImplementedError: Function 'any' has no kernel matching input types (null)` in
    `ChunkValidator.run`: a file of 65,536 good products and one such record after them (the last chunk is that
    one record) failed with a traceback instead of one rejected row. The reader's rejects only became this
    common with a49678e (22fd905 raised it too, for a non-object record or a malformed JSONL line)."""
    records = [b'{"ref":"G1","name":"N"}', b'{"ref":"G2","name":"N"}', BAD_RECORDS[bad]]
    data = b"[" + b",".join(records) + b"]" if fmt == "json" else b"\n".join(records) + b"\n"
    outcome = run(products_feed(), io.BytesIO(data), name=f"p.{fmt}", chunk_rows=2)
    assert outcome.column("ref") == ["G1", "G2"]
    assert [(r[0], r[1]) for r in outcome.rejects] == [(3, "_record")]


def test_65536_products_then_one_rejected_record():
    good = b"".join(b'{"ref":"G%d","name":"N"}\n' % i for i in range(65_536))
    outcome = run(products_feed(), io.BytesIO(good + BAD_RECORDS["list_shape"] + b"\n"), name="p.jsonl")
    assert (outcome.report.rows, outcome.report.accepted, len(outcome.rejects)) == (65_537, 65_536, 1)


XML_CONFLICTS = {
    "name": "<attribute name='colour'><name>size</name><value>M</value></attribute>",
    "type": "<attribute name='colour' type='STRING'><type>JSON</type><value>red</value></attribute>",
}


@pytest.mark.parametrize("part", list(XML_CONFLICTS), ids=list(XML_CONFLICTS))
def test_an_xml_attribute_giving_a_part_twice_rejects_its_row(part):
    """Both XML forms in one element (`<attribute name='colour'><name>size</name>…`): the element's child
    silently wins (the attribute `size`=M is sent, `colour` dropped; or the type JSON),
    where the same part given twice as children (`<name>a</name><name>b</name>`) rejects the row
    ("attributes[0].name is a list, not text") and two values for one name reject it too. A row whose element
    says two things should be rejected naming the element, not read as one of them."""
    body = (
        "<products><product><ref>G</ref><name>N</name></product>"
        f"<product><ref>A</ref><name>N</name><attributes>{XML_CONFLICTS[part]}</attributes></product></products>"
    )
    outcome = run(products_feed(), io.BytesIO(body.encode()), name="p.xml")
    assert outcome.column("ref") == ["G"], _attributes(outcome)
    assert [r[0] for r in outcome.rejects] == [2]
    assert "attributes[0]" in outcome.rejects[0][3]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_a_list_name_is_trimmed_as_its_value_is(fmt):
    """`" colour "` in Fluent's list is the attribute `colour` (it was sent with its spaces, a second attribute
    beside `colour`); the same name twice with different values then rejects the row."""
    one = {
        "ref": "T1",
        "name": "N",
        "attributes": [{"name": " colour ", "value": "red"}, {"name": "colour", "value": "red"}],
    }
    two = {
        "ref": "T2",
        "name": "N",
        "attributes": [{"name": "colour ", "value": "red"}, {"name": "colour", "value": "blue"}],
    }
    records = [one, two]
    data = (
        json.dumps(records).encode()
        if fmt == "json"
        else b"".join(json.dumps(r).encode() + b"\n" for r in records)
    )
    outcome = run(products_feed(), io.BytesIO(data), name=f"p.{fmt}")
    assert outcome.column("ref") == ["T1"]
    assert _attributes(outcome) == [[("colour", "STRING", "red")]]
    assert [(r[0], r[1]) for r in outcome.rejects] == [(2, "_record")]
    assert "given twice with different values" in outcome.rejects[0][3]


@pytest.mark.parametrize("fmt", ["jsonl", "json"])
def test_a_file_whose_records_are_all_unreadable_is_rejected_row_by_row(fmt, settings_env):
    """When no record of the first chunk could be read (malformed JSONL lines, JSON records over
    FC_MAX_VALUE_BYTES), each is a rejected row with its reason; the file was refused as "missing required
    column(s) … columns found: []", which names no real problem. A later chunk with records still needs the
    feed's columns."""
    if fmt == "jsonl":
        data = b'{"ref": \n{bad\n'
    else:
        settings_env(FC_MAX_VALUE_BYTES=40)
        wide = {f"k{i}": "v" for i in range(8)}  # (each value short: the record, not a value, is too long)
        data = json.dumps([{"ref": "R1", "name": "n", **wide}, {"ref": "R2", "name": "n", **wide}]).encode()
    outcome = run(products_feed(), io.BytesIO(data), name=f"p.{fmt}")
    assert outcome.accepted.num_rows == 0
    assert [(r[0], r[1]) for r in outcome.rejects] == [(1, "_record"), (2, "_record")], outcome.rejects
    reason = "malformed JSON" if fmt == "jsonl" else "record longer than 40 bytes"
    assert all(reason in r[3] for r in outcome.rejects), outcome.rejects
    # unreadable records first, then records without the feed's columns: still the file's wrong columns
    with pytest.raises(FileUnreadable, match="missing required column"):
        run(products_feed(), io.BytesIO(b'{bad\n{"sku": "A"}\n'), name="p.jsonl", chunk_rows=1)
