"""An XML inventory file with one record longer than FC_MAX_VALUE_BYTES, through the whole feed: S3 → sensor
→ run → sandbox. The long record is a rejected row (its row, field `_record`) in the rejects file; the records
around it are sent, with their own rows."""

from __future__ import annotations

import csv
import io

from fc_assets.ingestion.feeds import inventory_feed
from fc_assets_tests.ingestion_flow.flow import failure_metadata, metadata, on_hand

LIMIT = 2048
ROWS = [(f"XL-{i:03d}", f"LOC{i % 2}", i + 1) for i in range(30)]


def _item(sku: str, loc: str, qty: int, pad: int = 0) -> str:
    return f"  <item><sku>{sku}</sku><location>{loc}</location><qty>{qty}</qty><p>{'x' * pad}</p></item>\n"


def test_a_record_too_long_is_a_rejected_row_and_the_rest_is_sent(make_flow):
    flow = make_flow(feed=inventory_feed(), glob="*.xml", FC_MAX_VALUE_BYTES=str(LIMIT))
    items = [_item(*row) for row in ROWS]
    items.insert(3, _item("XL-LONG", "LOC0", 5, pad=LIMIT + 3 * 32 * 1024))  # row 4
    body = ("<inventory>\n" + "".join(items) + "</inventory>\n").encode()
    flow.put_s3("stock-1.xml", body)
    (req,) = flow.tick("s3")
    result = flow.execute(req)
    assert result.success, failure_metadata(result).get("error", "")[-2000:]
    md = metadata(result)
    assert (md["rows"], md["accepted"], md["rejected"], md["sent"]) == (31, 30, 1, 30), md
    assert on_hand(flow.resources["fluent"], [s for s, _, _ in ROWS]) == {(s, loc): q for s, loc, q in ROWS}
    rejects = flow.lake.read_bytes(f"rejects/inventory/{req.partition_key}.csv").decode()
    ((row, field, _, reason),) = list(csv.reader(io.StringIO(rejects)))[1:]
    assert (row, field, reason) == (
        "4",
        "_record",
        f"record longer than {LIMIT:,} bytes (FC_MAX_VALUE_BYTES)",
    )
