"""A JSONL file through the whole feed (S3, then SFTP → sensor → run → Batch API → processed/): the fast path's
chunks (tables of per-block batches) validate, deliver and report rejects with physical line numbers, and a
hand-over to the line-by-line reader mid-file loses or repeats nothing."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from fc_assets.ingestion.read import jsonl_fast, readers
from fc_assets_tests.ingestion_files.helpers import parse_rejects
from fc_assets_tests.ingestion_flow.flow import failure_metadata, metadata, on_hand

ROWS = [(f"JL{i:04d}", f"LOC{i % 5}", i % 50) for i in range(500)]


def _lines() -> tuple[list[str], int, int]:
    """The file's lines, and the line numbers of its bad quantity and its malformed line."""
    lines = [
        json.dumps(
            {"sku_ref": s, "location_ref": loc, "qty": str(q), "status": "AVAILABLE"}, separators=(",", ":")
        )
        for s, loc, q in ROWS
    ]
    lines[10] = lines[10].replace('"qty":"10"', '"qty":"12abc"')
    lines[450] = lines[450].replace('"AVAILABLE"', '"AVAIL\\u0041BLE"')  # an escape: line by line from here
    lines.insert(2, "")  # a blank line: line numbers are physical
    lines.insert(401, '{"sku_ref": broken')
    return lines, 12, 402


@pytest.fixture
def flow(make_flow, monkeypatch):
    # blocks of 4 KiB and chunks of 128 rows: a chunk spans blocks (a table of them), as a 64k-row one does
    monkeypatch.setattr(jsonl_fast, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(readers, "DEFAULT_CHUNK_ROWS", 128)  # (the reader's default since 6b7a3aa)
    return make_flow(glob="*.jsonl")


def test_a_jsonl_file_end_to_end(flow, monkeypatch):
    chunks = []
    take = jsonl_fast._take

    def spy(pending, rows, *args):
        chunk, rest = take(pending, rows, *args)
        chunks.append(chunk)
        return chunk, rest

    monkeypatch.setattr(jsonl_fast, "_take", spy)
    lines, bad_qty, malformed = _lines()
    body = ("\n".join(lines) + "\n").encode()
    flow.put_s3("stock-1.jsonl", body)
    (req,) = flow.tick("s3")
    result = flow.execute(req)
    assert result.success, failure_metadata(result).get("error", "")[-2000:]
    # the fast path read the first chunks (each a table of blocks), then handed over before line 402
    assert len(chunks) >= 2 and [(type(c), c.num_rows) for c in chunks] == [(pa.Table, 128)] * len(chunks)
    assert len(chunks) * 128 < malformed
    assert all(len(c.to_batches()) > 1 for c in chunks)
    md = metadata(result)
    assert (md["outcome"], md["rows"], md["accepted"], md["rejected"], md["sent"]) == (
        "processed",
        501,
        499,
        2,
        499,
    )
    rejects = parse_rejects(flow.lake.read_bytes(f"rejects/inventory/{req.partition_key}.csv"))
    assert [(r[0], r[1]) for r in rejects] == [(bad_qty, "qty"), (malformed, "_record")]
    expected = {(s, loc): q for s, loc, q in ROWS if s != "JL0010"}
    assert on_hand(flow.resources["fluent"], [s for s, _, _ in ROWS]) == expected

    # the same content over SFTP (a forward-only stream): read the same, nothing to send
    flow.put_sftp("stock-2.jsonl", body)
    (r2,) = flow.drain("sftp")
    assert r2.success and metadata(r2)["accepted"] == 499 and metadata(r2)["sent"] == 0


def test_keys_the_feed_does_not_use_are_reported_once_per_file(flow):
    """A record's keys the feed has no field for (here a new one per line, and a nested object) are left
    out, not silently: their distinct count and the first names are in the run's metadata and logged once."""
    rows = [(f"UK{i:03d}", "LOC1", i) for i in range(300)]
    lines = [
        json.dumps(
            {"sku_ref": s, "location_ref": loc, "qty": str(q), f"batch_{i}": "x", "meta": {"by": "erp"}}
        )
        for i, (s, loc, q) in enumerate(rows)
    ]
    flow.put_s3("stock-keys.jsonl", ("\n".join(lines) + "\n").encode())
    (req,) = flow.tick("s3")
    result = flow.execute(req)
    assert result.success, failure_metadata(result).get("error", "")[-2000:]
    md = metadata(result)
    assert (md["outcome"], md["accepted"], md["sent"]) == ("processed", 300, 300)
    assert md["unknown_keys"] == 301
    names = ["batch_0", "meta", *(f"batch_{i}" for i in range(1, 9))]
    assert md["unknown_key_names"] == ", ".join(names)
    logged = [
        e.user_message
        for e in flow.instance.all_logs(result.run_id)
        if "distinct key(s) the feed does not use" in (e.user_message or "")
    ]
    assert logged == [
        f"inventory/stock-keys.jsonl: 301 distinct key(s) the feed does not use, ignored: {', '.join(names)}, …"
    ]
    assert on_hand(flow.resources["fluent"], [s for s, _, _ in rows]) == {(s, loc): q for s, loc, q in rows}
