"""A feed declaring where a JSON file's records are (`FormatOptions.json_records`), through the whole feed:
S3 or SFTP → sensor → run → Batch API → processed/. Files a dotted path reads whole must not be refused (a
refused file goes to `error/` and nothing of it is sent)."""

from __future__ import annotations

import csv
import io
import json

from fc_assets.ingestion.feeds import inventory_feed
from fc_assets.ingestion.read.streams import HEAD_BYTES
from fc_assets.ingestion.spec import FormatOptions
from fc_assets_tests.ingestion_flow.flow import failure_metadata, metadata, on_hand

ROWS = [(f"JR{i:03d}", f"LOC{i % 3}", i % 40) for i in range(30)]


def _records(rows) -> list[dict]:
    return [{"sku": s, "location": loc, "qty": str(q)} for s, loc, q in rows]


def _processed(flow, result, rows) -> None:
    assert result.success, failure_metadata(result).get("error", "")[-2000:]
    md = metadata(result)
    assert (md["outcome"], md["rows"], md["accepted"], md["sent"]) == (
        "processed",
        len(rows),
        len(rows),
        len(rows),
    )
    assert on_hand(flow.resources["fluent"], [s for s, _, _ in rows]) == {(s, loc): q for s, loc, q in rows}


def test_a_paginated_export_read_through_its_pages_array(make_flow):
    """`pages.item.items.item`: the records of every page (ijson reads every array at that path). Failed at
    c88fc67: refused as "ambiguous" after the first page (the guard counted one page's records), to error/."""
    feed = inventory_feed(format_options=FormatOptions(json_records="pages.item.items.item"))
    flow = make_flow(feed, glob="*.json")
    pages = [{"page": n, "items": _records(ROWS[n * 10 : n * 10 + 10])} for n in range(3)]
    flow.put_s3("paged.json", json.dumps({"pages": pages}).encode())
    (req,) = flow.tick("s3")
    _processed(flow, flow.execute(req), ROWS)


def test_records_after_a_surrogate_pair_cut_by_the_head_end(make_flow):
    """Records after 256 KiB of metadata whose text has an emoji escaped as a surrogate pair (`\\ud83d\\ude00`,
    as `json.dumps` writes it) cut by the end of the head the path is first looked for in. Failed at c88fc67:
    "unpaired UTF-16 surrogate escape \\ud83d", the file to error/."""
    feed = inventory_feed(format_options=FormatOptions(json_records=["export", "rows"]))
    flow = make_flow(feed, glob="*.json")
    text = '{"export": {"notes": ['
    while len(text) < HEAD_BYTES - 200:
        text += json.dumps("note " + "x" * 60) + ", "
    text += '"' + "y" * (HEAD_BYTES - 6 - len(text) - 1) + '\\ud83d\\ude00"], "rows": '
    assert text.index("\\ud83d") == HEAD_BYTES - 6
    flow.put_sftp("late.json", (text + json.dumps(_records(ROWS)) + "}}").encode())
    (result,) = flow.drain("sftp")
    _processed(flow, result, ROWS)


def test_a_file_holding_both_spellings_goes_to_error_with_nothing_sent(make_flow):
    """Refused only at the end of the file (more records read than the records' array holds): what was read
    before is neither kept in the lake nor sent; the file goes to `error/` naming the path."""
    feed = inventory_feed(format_options=FormatOptions(json_records=["a", "b"]))
    flow = make_flow(feed, glob="*.json")
    body = {"a": {"b": _records(ROWS[:20])}, "a.b": _records(ROWS[20:])}
    flow.put_s3("both.json", json.dumps(body).encode())
    (req,) = flow.tick("s3")
    result = flow.execute(req)
    md = metadata(result)
    assert (md["outcome"], md["rows"], md["sent"]) == ("error", 0, 0), md
    assert md["archived_to"].startswith("inventory/error/") and "both" in md["archived_to"]
    rejects = flow.lake.read_bytes(f"rejects/inventory/{req.partition_key}.csv").decode()
    (_, (_, field, _, reason)) = csv.reader(io.StringIO(rejects))
    assert field == "_file" and 'json_records ["a", "b"] is ambiguous' in reason
    assert flow.received.batches() == []
    assert on_hand(flow.resources["fluent"], [s for s, _, _ in ROWS]) == {}
