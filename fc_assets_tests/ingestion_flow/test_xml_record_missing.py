"""An XML inventory file whose records are not under the feed's `xml_record` (a typo, another system's export)
with `send_disappeared` on, through the whole feed: S3 → sensor → run → sandbox.

Before: read as a file of 0 rows and accepted — a snapshot of nothing, so every row sent before became a
delete (qty 0 for all the stock at the sandbox). Now the file is unreadable: it goes to `error/` with the
reason (the element expected, the ones found) and nothing is sent. A root without child elements is still a
file without records (the empty snapshot the feed asked for)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from fc_assets.ingestion.feeds import inventory_feed
from fc_assets.ingestion.spec import FormatOptions
from fc_assets_tests.ingestion_flow.flow import failure_metadata, metadata, on_hand

ROWS = [(f"XR-{i:03d}", f"LOC{i % 2}", i + 1) for i in range(6)]
SKUS = [sku for sku, _, _ in ROWS]


def _xml(record: str, rows=ROWS) -> bytes:
    items = "".join(
        f"  <{record}><sku>{s}</sku><location>{loc}</location><qty>{q}</qty></{record}>\n"
        for s, loc, q in rows
    )
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<inventory>\n{items}</inventory>\n'.encode()


def _sent_first(make_flow):
    flow = make_flow(
        feed=inventory_feed(format_options=FormatOptions(xml_record="item")),
        glob="*.xml",
        FC_SEND_DISAPPEARED="inventory",
    )
    flow.put_s3("stock-1.xml", _xml("item"))
    (req,) = flow.tick("s3")
    result = flow.execute(req)
    assert result.success, failure_metadata(result).get("error", "")[-2000:]
    assert (metadata(result)["accepted"], metadata(result)["sent"]) == (6, 6)
    stock = {(s, loc): q for s, loc, q in ROWS}
    assert on_hand(flow.resources["fluent"], SKUS) == stock
    return flow, stock


def test_records_under_another_name_go_to_error_and_delete_nothing(make_flow):
    """Before: the run succeeded, 0 rows, and 6 deletes (qty 0) reached the sandbox."""
    flow, stock = _sent_first(make_flow)
    batches = len(flow.received.batches())
    flow.put_s3("stock-2.xml", _xml("Item"))  # the other system's spelling
    (req,) = flow.tick("s3")
    result = flow.execute(req)
    md = metadata(result)
    assert [c.passed for c in result.get_asset_check_evaluations()] == [False]
    assert (md["outcome"], md["rows"], md["sent"]) == ("error", 0, 0), md
    assert md["archived_to"].startswith("inventory/error/"), md
    assert len(flow.received.batches()) == batches  # nothing sent: no deletes
    assert on_hand(flow.resources["fluent"], SKUS) == stock
    listed = [o["Key"] for o in flow.s3.list_objects_v2(Bucket=flow.bucket)["Contents"]]
    assert md["archived_to"] in listed and "inventory/stock-2.xml" not in listed, listed
    entry = json.loads(flow.lake.read_bytes(md["ledger"].removeprefix(flow.lake.uri + "/")))
    assert entry["error"].startswith("unreadable: the feed's xml_record <item> matches no element"), entry
    rejects = flow.lake.read_bytes(f"rejects/inventory/{req.partition_key}.csv").decode()
    ((_, field, _, reason),) = list(csv.reader(io.StringIO(rejects)))[1:]
    assert field == "_file"
    assert "xml_record <item> matches no element" in reason and "<Item>" in reason, reason


@pytest.mark.parametrize(
    "body",
    [
        b"<inventory/>",
        b"<inventory>\n  <!-- none today -->\n</inventory>",
        b"<inventory>\n  <Header/>\n  <Items>\n  </Items>\n</inventory>",  # (refused before rev3x)
    ],
    ids=["self_closing", "comment", "empty_wrapper"],
)
def test_a_root_without_children_is_still_an_empty_snapshot(make_flow, body):
    """The feed's own empty file: 0 rows, accepted, and with send_disappeared every row sent is a delete."""
    flow, _ = _sent_first(make_flow)
    flow.put_s3("stock-2.xml", body)
    (req,) = flow.tick("s3")
    result = flow.execute(req)
    assert result.success, failure_metadata(result).get("error", "")[-2000:]
    md = metadata(result)
    assert (md["outcome"], md["rows"]) == ("processed", 0)
    assert on_hand(flow.resources["fluent"], SKUS) == {(s, loc): 0 for s, loc, _ in ROWS}


def test_the_next_good_file_is_processed_against_the_snapshot_before_the_refused_one(make_flow):
    """A refused file does not block the feed: the good file put with it (in the same listing) is read and
    its delta is taken against the last good snapshot (the refused file changed nothing: a row missing
    from the good file is one delete, not six)."""
    flow, stock = _sent_first(make_flow)
    batches = len(flow.received.batches())
    changed = [(s, loc, q + 100 if s == "XR-001" else q) for s, loc, q in ROWS[:-1]]  # one changed, one gone
    flow.put_s3("stock-2.xml", _xml("Item"))
    flow.put_s3("stock-3.xml", _xml("item", changed))
    results = flow.drain("s3")
    outcomes = sorted((metadata(r).get("outcome"), metadata(r).get("rows")) for r in results)
    assert outcomes == [("error", 0), ("processed", 5)], outcomes
    good = next(r for r in results if metadata(r).get("outcome") == "processed")
    assert good.success, failure_metadata(good).get("error", "")[-2000:]
    assert metadata(good)["sent"] == 2, metadata(good)  # XR-001 changed, XR-005 deleted
    assert len(flow.received.batches()) > batches
    expected = {**stock, ("XR-001", "LOC1"): 102, ("XR-005", "LOC1"): 0}
    assert on_hand(flow.resources["fluent"], SKUS) == expected
