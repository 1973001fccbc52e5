"""Reading the delta back for sending (DeltaFile) and the send log (SendLog), on a local lake and on moto's
S3 server: chunk ordinals always mean the same rows, and a record write never rewrites the others."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fc_assets.ingestion.deliver.delta_chunks import DeltaFile
from fc_assets.ingestion.deliver.ledger import Ledger
from fc_assets.resources.storage import Lake


def write_delta(lake: Lake, rel: str, n: int, row_group: int) -> None:
    t = pa.table({"sku_ref": [f"S{i}" for i in range(n)], "_row": pa.array(range(1, n + 1), pa.int64())})
    with lake.atomic_write(rel) as out:
        pq.write_table(t, out, row_group_size=row_group)


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_chunks_are_exact_across_row_groups_and_rows_at_picks_by_position(kind, tmp_path, lake):
    lake = Lake(f"file://{tmp_path}/lake") if kind == "file" else lake
    write_delta(lake, "d/delta.parquet", 103, row_group=7)  # row groups of 7, chunks of 10
    delta = DeltaFile(lake, "d/delta.parquet")
    assert delta.num_rows == 103
    chunks = list(delta.chunks(10))
    assert [i for i, _ in chunks] == list(range(11))
    assert [t.num_rows for _, t in chunks] == [10] * 10 + [3]
    for i, t in chunks:
        assert t.column("_row").to_pylist() == list(range(i * 10 + 1, min(103, i * 10 + 10) + 1))
    picked = delta.rows_at([102, 0, 57])
    assert {p: r["sku_ref"] for p, r in picked.items()} == {0: "S0", 57: "S57", 102: "S102"}


def test_send_log_writes_one_small_record_per_put(tmp_path):
    lake = Lake(f"file://{tmp_path}/lake")
    ledger = Ledger(lake, "inventory")
    log = ledger.sends("f1")
    sizes = []
    for i in range(200):
        before = log.bytes_written
        log.put(f"b0-{i:06d}", {"attempt": 0, "chunk": i, "start": i * 5000, "entities": 5000})
        sizes.append(log.bytes_written - before)
    assert max(sizes) - min(sizes) <= 8  # O(1): the 200th write is as small as the first
    again = ledger.sends("f1")
    assert [k for k, _ in again.items("b0-")][:2] == ["b0-000000", "b0-000001"] and len(again.records) == 200
    assert ledger.entries() == []  # send logs are not ledger entries


def test_chunks_hold_a_few_row_groups_not_every_row_group_read(tmp_path):
    """A 10M-row send read the whole delta into Arrow's pool (ParquetFile pre-buffering keeps the row
    groups read until the file is closed): the sender's peak RSS grew with the delta. Here ~5 MB are held, 33 MB
    before the fix (the whole file of 20 row groups)."""
    lake = Lake(f"file://{tmp_path}/lake")
    n, group = 400_000, 20_000
    text = np.random.default_rng(5).bytes(32 * n).hex()  # incompressible: the file is as big as the column
    t = pa.table({"sku_ref": [text[i * 64 : i * 64 + 64] for i in range(n)], "_row": np.arange(1, n + 1)})
    with lake.atomic_write("d/delta.parquet") as out:
        pq.write_table(t, out, row_group_size=group)
    del t, text
    group_bytes = 64 * group
    base = pa.total_allocated_bytes()
    peak, rows = 0, 0
    for _, chunk in DeltaFile(lake, "d/delta.parquet").chunks(5_000):
        rows += chunk.num_rows
        peak = max(peak, pa.total_allocated_bytes() - base)
    assert rows == n
    assert peak < 10 * group_bytes, f"{peak:,} B held for row groups of {group_bytes:,} B (file {64 * n:,} B)"
