"""A JSON inventory file saved as UTF-16 (PowerShell's `Out-File`, Excel's "Unicode text") through the whole
feed: S3 → sensor → run → Batch API → processed/, with the rejects its UTF-8 twin has; the same rows in
UTF-16BE over SFTP (a forward-only stream) are read the same and have nothing left to send."""

from __future__ import annotations

import codecs
import json

from fc_assets_tests.ingestion_files.helpers import parse_rejects
from fc_assets_tests.ingestion_flow.flow import failure_metadata, metadata, on_hand

# non-ASCII SKUs (two and three UTF-8 bytes, and a surrogate pair in UTF-16)
ROWS = [(f"{['Ä', '日本', '😀', 'U'][i % 4]}-{i:03d}", f"LOC{i % 3}", str(i % 30)) for i in range(120)]
BAD = {7: "12abc", 50: "-1"}  # array position (1-based) → its bad quantity


def _text() -> str:
    records = [
        {"sku": sku, "location": loc, "qty": BAD.get(n, qty)} for n, (sku, loc, qty) in enumerate(ROWS, 1)
    ]
    return json.dumps(records, indent=4, ensure_ascii=False).replace("\n", "\r\n")


def test_a_utf16_json_inventory_file_reaches_the_sandbox(make_flow):
    flow = make_flow(glob="*.json")
    flow.put_s3("stock-1.json", codecs.BOM_UTF16_LE + _text().encode("utf-16-le"))
    (req,) = flow.tick("s3")
    result = flow.execute(req)
    assert result.success, failure_metadata(result).get("error", "")[-2000:]
    md = metadata(result)
    assert (md["outcome"], md["rows"], md["accepted"], md["rejected"], md["sent"]) == (
        "processed",
        120,
        118,
        2,
        118,
    )
    rejects = parse_rejects(flow.lake.read_bytes(f"rejects/inventory/{req.partition_key}.csv"))
    assert [(r[0], r[1], r[2]) for r in rejects] == [(7, "qty", "12abc"), (50, "qty", "-1")]
    good = [(n, row) for n, row in enumerate(ROWS, 1) if n not in BAD]
    expected = {(sku, loc): int(qty) for _, (sku, loc, qty) in good}
    assert on_hand(flow.resources["fluent"], [s for s, _, _ in ROWS]) == expected

    flow.put_sftp("stock-2.json", codecs.BOM_UTF16_BE + _text().encode("utf-16-be"))
    (r2,) = flow.drain("sftp")
    assert r2.success, failure_metadata(r2).get("error", "")[-2000:]
    assert (metadata(r2)["accepted"], metadata(r2)["rejected"], metadata(r2)["sent"]) == (118, 2, 0)
