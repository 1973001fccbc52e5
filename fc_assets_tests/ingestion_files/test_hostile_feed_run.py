"""Hostile input in a feed run (issue 14), on a real Dagster instance against moto's S3, the SFTP server and
the Fluent sandbox: an unreadable file goes to `error/` (never stuck in the inbox), a 250-character SFTP
name is archived, and a manual run config cannot make a feed process another feed's file."""

from __future__ import annotations

import orjson
import pytest

from fc_assets.ingestion.deliver.files import NAME_MAX, REJECTS_SUFFIX
from fc_assets_tests.ingestion_files.helpers import parse_rejects
from fc_assets_tests.ingestion_flow.flow import failure_metadata, metadata
from fc_assets_tests.ingestion_flow.helpers import inventory_csv

pytestmark = pytest.mark.timeout(900)
ROWS = [(f"HOST{i:03d}", "LOC1", i) for i in range(99)]


@pytest.fixture
def flow(make_flow):
    return make_flow()


def _keys(flow) -> list[str]:
    return [o["Key"] for o in flow.s3.list_objects_v2(Bucket=flow.bucket).get("Contents", [])]


def test_a_file_a_parser_chokes_on_goes_to_error(flow):
    """A header field over Python's csv limit (128 KiB) once escaped as `_csv.Error`: the run crashed, the
    file stayed in the inbox and the ledger at `claimed`, and every retry failed the same way."""
    flow.put_s3("huge-header.csv", b"sku_ref,location_ref,qty," + b"x" * 140_000 + b"\nA,L,1\n")
    (req,) = flow.tick("s3")
    result = flow.execute(req)
    # the file is handled (materialized, outcome error); only the blocking reject check fails the run
    assert [c.passed for c in result.get_asset_check_evaluations()] == [False]
    assert "_csv.Error" not in failure_metadata(result).get("error", "")
    md = metadata(result)
    assert md["outcome"] == "error" and md["sent"] == 0
    keys = _keys(flow)
    assert "inventory/huge-header.csv" not in keys
    archived = [k for k in keys if "/error/" in k and not k.endswith(REJECTS_SUFFIX)]
    assert len(archived) == 1 and archived[0].startswith("inventory/error/")
    rejects = flow.lake.read_bytes(f"rejects/inventory/{req.partition_key}.csv")  # the reason, for the user
    assert b"CSV header cannot be parsed: field larger than field limit" in rejects
    assert flow.received.batches() == []


def test_a_250_character_sftp_name_is_archived(flow):
    name = (
        "stock-" + "n" * 240 + ".csv"
    )  # 250 characters: the archive name and its rejects file grew past 255
    body = inventory_csv(ROWS) + b"BAD,LOC1,12abc,AVAILABLE\n"  # 1 % rejected: processed, with a rejects file
    flow.put_sftp(name, body)
    results = flow.drain("sftp")
    assert len(results) == 1 and results[0].success, failure_metadata(results[0]).get("error", "")[-2000:]
    md = metadata(results[0])
    assert (md["outcome"], md["accepted"], md["rejected"]) == ("processed", 99, 1)
    inbox = flow.sftp_root / flow.sftp_dir
    assert not (inbox / name).exists()
    (day,) = (inbox / "processed").iterdir()
    archived = sorted(p.name for p in day.iterdir())
    assert len(archived) == 2 and archived[1] == archived[0] + REJECTS_SUFFIX
    assert archived[0].startswith("stock-nnnn") and archived[0].endswith(".csv")
    assert all(len(a.encode()) <= NAME_MAX for a in archived)
    assert (day / archived[0]).read_bytes() == body
    assert md["archived_to"].endswith("/" + archived[0])


def test_a_manual_run_cannot_process_another_feeds_file(flow):
    flow.put_s3("stock.csv", inventory_csv(ROWS))
    flow.s3.put_object(Bucket=flow.bucket, Key="products/catalog.csv", Body=b"ref,name\nP1,x\n")
    (req,) = flow.tick("s3")
    head = flow.s3.head_object(Bucket=flow.bucket, Key="products/catalog.csv")
    etag = head["ETag"].strip('"')
    # a config naming the other file's exact version (so the version check cannot be what stops it)
    result = flow.execute(
        req, key="products/catalog.csv", etag=etag, version=etag, size=head["ContentLength"]
    )
    assert not result.success
    error = failure_metadata(result)["error"]
    assert "'products/catalog.csv' is not a file of location" in error and "refused" in error
    keys = _keys(flow)
    assert "products/catalog.csv" in keys and "inventory/stock.csv" in keys  # nothing moved
    assert not any("/processed/" in k or "/error/" in k for k in keys)
    assert flow.received.batches() == []


def test_a_json_record_over_the_value_limit_is_a_rejected_row_of_a_processed_file(make_flow):
    """A JSON array's record longer than FC_MAX_VALUE_BYTES (here 1,000) is rejected as its row, never built,
    and the records after it are sent; its text is not copied into the rejects file."""
    flow = make_flow(glob="*.json", FC_MAX_VALUE_BYTES=1000)
    rows = [{"sku": s, "location": loc, "qty": str(q)} for s, loc, q in ROWS]
    wide = {"sku": "WIDE", "location": "LOC1", "qty": "1"} | {f"k{i}": "[{x}]" for i in range(400)}
    body = orjson.dumps(rows[:40] + [wide] + rows[40:])
    flow.put_s3("stock.json", body)
    (req,) = flow.tick("s3")
    result = flow.execute(req)
    md = metadata(result)
    assert (md["outcome"], md["accepted"], md["rejected"]) == ("processed", 99, 1), md
    rejects = flow.lake.read_bytes(f"rejects/inventory/{req.partition_key}.csv")
    assert parse_rejects(rejects) == [
        (41, "_record", "", "record longer than 1,000 bytes (FC_MAX_VALUE_BYTES)")
    ]
    assert sorted(e["skuRef"] for e in flow.received.entities()) == [s for s, _, _ in ROWS]


def test_an_xml_file_cut_off_mid_record_goes_to_error_naming_the_cut_record(make_flow):
    """An XML export cut off in transfer: the file goes to `error/`, nothing is sent, and its reason names the
    record that was cut (lxml 6.2.0's pull parser closes the elements still open at the end of the input, so
    the cut record was read as complete and the error named the record after it)."""
    flow = make_flow(glob="*.xml")
    records = b"".join(
        b"<item><sku>%s</sku><location>%s</location><qty>%d</qty></item>\n" % (s.encode(), loc.encode(), q)
        for s, loc, q in ROWS
    )
    flow.put_s3("stock.xml", b"<stock>\n" + records + b"<item><sku>CUT</sku><location>LOC1</location><qty>12")
    (req,) = flow.tick("s3")
    result = flow.execute(req)
    md = metadata(result)
    assert (md["file"], md["outcome"], md["sent"]) == ("s3:inventory/stock.xml", "error", 0), md
    keys = _keys(flow)
    assert "inventory/stock.xml" not in keys
    (archived,) = [k for k in keys if "/error/" in k and not k.endswith(REJECTS_SUFFIX)]
    assert archived.startswith("inventory/error/") and archived.endswith(".xml") and "/stock." in archived
    ((row, field, _, reason),) = parse_rejects(
        flow.lake.read_bytes(f"rejects/inventory/{req.partition_key}.csv")
    )
    assert (row, field) == (len(ROWS) + 1, "_file") and reason.startswith("XML syntax error at line 101: "), (
        reason
    )
    assert flow.received.batches() == []
