"""JSON arrays (streamed with ijson) and JSONL (a malformed line is a rejected row with its line number).

connector-pitfalls §2 item 15: the SDK parsed whole arrays first, threw on streams, and dropped bad JSONL
lines silently; item 18: the schema is declared, not inferred from the first record."""

from __future__ import annotations

import gzip
import io

import orjson
import pytest

from fc_assets.ingestion.feeds import get_feed, inventory_feed
from fc_assets.ingestion.read.readers import read_file
from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets.ingestion.spec import FormatOptions
from fc_assets_tests.ingestion_files.corpus import (
    INVENTORY_REJECTS,
    Endless,
    ForwardOnly,
    inventory_json,
    inventory_jsonl,
    numbered,
)
from fc_assets_tests.ingestion_files.helpers import run

INVENTORY = get_feed("inventory")


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_json_array_gives_the_corpus_rows_and_rejects(tmp_path, gz):
    path = tmp_path / ("stock.json.gz" if gz else "stock.json")
    path.write_bytes(inventory_json(gz))
    out = run(INVENTORY, path, chunk_rows=3)
    assert out.report.format == "json"
    assert (out.report.rows, out.report.accepted, out.report.rejected) == (11, 4, 7)
    assert out.rejects == INVENTORY_REJECTS  # row = position in the array
    assert out.column("sku_ref") == ["00123", "A,1", "H", 'J "quoted"']
    assert out.column("qty") == [5, 7, 12, 2147483647]


def test_json_values_keep_their_text_and_nested_objects_match_aliases():
    doc = {
        "inventory": {"header": {"feed": 1}},
        "items": [
            {"sku": "007", "location": {"ref": "L1"}, "qty": 5, "status": "Damaged", "flag": True},
            {"sku": 12, "location": {"ref": "L1"}, "qty": 3.5, "tags": ["a", "b"]},
            {"sku": "X", "location": {"ref": "L2"}, "qty": "00042", "expected_on": None},
            "not an object",
            {"sku": "Y", "location": {"ref": "L2"}, "qty": 1e3},
        ],
    }
    out = run(INVENTORY, io.BytesIO(orjson.dumps(doc)), name="wrapped.json")
    assert (out.report.rows, out.report.accepted, out.report.rejected) == (5, 2, 3)
    assert out.column("sku_ref") == ["007", "X"]
    assert out.column("qty") == [5, 42]
    assert out.column("status") == ["DAMAGED", None]
    assert out.rejects == [
        (2, "qty", "3.5", "not a whole number"),
        (4, "_record", "not an object", "record is not a JSON object"),
        (5, "qty", "1000.0", "not a whole number"),
    ]


def test_declared_records_path_and_late_columns():
    """Records under a declared path; a field absent from the first record but present later is mapped
    (the schema is the feed's, not the first record's: pitfall 18)."""
    doc = {
        "data": {
            "rows": [
                {"sku": "A", "location": "L", "qty": "1"},
                {"sku": "B", "location": "L", "qty": "2", "condition": "NEW"},
            ]
        }
    }
    feed = inventory_feed(format_options=FormatOptions(json_records="data.rows.item"))
    out = run(feed, io.BytesIO(orjson.dumps(doc)), name="x.json", chunk_rows=1)
    assert out.column("condition") == [None, "NEW"]
    assert out.column("_row") == [1, 2]


def test_json_syntax_error_midway_is_unreadable_with_the_record_number():
    data = b'[{"sku": "A", "location": "L", "qty": "1"}, {"sku": "B", "location": "L", "qty": 2,,}]'
    with pytest.raises(FileUnreadable) as e:
        run(INVENTORY, io.BytesIO(data), name="broken.json")
    assert str(e.value).startswith("broken.json: row 2:") and "invalid JSON" in str(e.value)


def test_first_records_without_a_required_field_mean_the_wrong_file():
    data = orjson.dumps([{"ean": "1", "location": "L", "qty": 1}])
    with pytest.raises(FileUnreadable, match="missing required column.*sku_ref"):
        run(INVENTORY, io.BytesIO(data), name="products.json")


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_jsonl_malformed_lines_are_rejected_with_their_line_numbers(tmp_path, gz):
    path = tmp_path / ("stock.ndjson.gz" if gz else "stock.jsonl")
    path.write_bytes(inventory_jsonl(gz))
    out = run(INVENTORY, path, chunk_rows=2)
    assert out.report.format == "jsonl"
    # lines: 1 ok, 2 ok, 3 blank, 4 qty 12abc, 5 malformed, 6 qty N/A, 7 qty 3.5, 8 not an object
    assert (out.report.rows, out.report.accepted, out.report.rejected) == (7, 2, 5)
    assert out.column("_row") == [1, 2]
    assert [r[:2] for r in out.rejects] == [
        (4, "qty"),
        (5, "_record"),
        (6, "qty"),
        (7, "qty"),
        (8, "_record"),
    ]
    assert out.rejects[1][2] == '{"SKU": "X1", "Location": "LOC-9", "QUANTITY": 4'
    assert out.rejects[1][3].startswith("malformed JSON: ")
    assert out.rejects[4] == (8, "_record", "[1, 2, 3]", "line is not a JSON object")
    assert out.report.reasons["_record: malformed JSON"] == 1


def test_jsonl_from_a_forward_only_stream_without_trailing_newline():
    data = b'\xef\xbb\xbf{"sku":"A","location":"L","qty":"1"}\n{"sku":"B","location":"L","qty":"x"}'
    out = run(INVENTORY, ForwardOnly(gzip.compress(data)), name="s3://bucket/inbox/stock.jsonl.gz")
    assert (out.report.rows, out.report.accepted) == (2, 1)
    assert out.rejects == [(2, "qty", "x", "not a whole number")]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_streaming_does_not_read_the_whole_document(fmt):
    head, row = (
        (b"[", '{{"sku": "S{0}", "location": "L", "qty": "{0}"}},')
        if fmt == "json"
        else (b"", '{{"sku": "S{0}", "location": "L", "qty": "{0}"}}\n')
    )
    stream = Endless(head, numbered(row), limit=1 << 30)
    first = next(read_file(INVENTORY, stream, name=f"big.{fmt}", chunk_rows=5_000))
    assert first.num_rows == 5_000
    assert stream.consumed < 8 << 20
