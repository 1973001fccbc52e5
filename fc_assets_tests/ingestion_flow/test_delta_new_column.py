"""A feed that gains a column (locations' `attributes`, d4a79b0) meets state written before it: the snapshot
(`delta.snapshot_rows`) and a delta prepared by the old code for a file still in flight across the upgrade
(its ledger entry resumes after `prepared`/`sending` and commits that delta, not a new one)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fc_assets.ingestion.deliver.delta import DeltaSpec, commit_snapshot, compute_delta, snapshot_rel
from fc_assets.resources.storage import Lake

OLD = ["ref", "name"]
NEW = [*OLD, "attributes"]
SPEC = DeltaSpec(("ref",))
ATTRS = pa.list_(pa.struct([("name", pa.string()), ("type", pa.string()), ("value", pa.string())]))


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(f"file://{tmp_path}/lake")


def _write(lake: Lake, rel: str, rows: list[tuple], columns: list[str]) -> None:
    t = pa.table({"ref": [r[0] for r in rows], "name": [r[1] for r in rows]})
    if "attributes" in columns:
        t = t.append_column("attributes", pa.array([r[2] for r in rows], ATTRS))
    t = t.append_column("_row", pa.array(range(len(rows)), pa.int64()))
    with lake.atomic_write(rel) as out:
        pq.write_table(t, out)


def _delta(lake: Lake, n: int, rows: list[tuple], columns: list[str]) -> int:
    _write(lake, f"w/{n}/acc.parquet", rows, columns)
    res = compute_delta(
        lake, "loc", SPEC, accepted_rel=f"w/{n}/acc.parquet", delta_rel=f"w/{n}/d.parquet", columns=columns
    )
    return res.upserts


def test_a_delta_prepared_before_the_feed_gained_a_column_still_commits(lake):
    """Old code committed file 1 and prepared file 2 (a delta without `attributes`); the new code resumes
    file 2 and commits it. Failed before the fix: DuckDB 'Referenced column "attributes" not found' in
    commit_snapshot, on every retry: the feed's in-flight slot never frees."""
    region = [{"name": "region", "type": "STRING", "value": "NSW"}]
    assert _delta(lake, 1, [("L1", "a"), ("L2", "b")], OLD) == 2
    commit_snapshot(lake, "loc", SPEC, delta_rel="w/1/d.parquet", columns=OLD)
    assert _delta(lake, 2, [("L1", "a2"), ("L2", "b")], OLD) == 1
    # the upgrade: file 2 resumes after `confirmed` and commits its old delta with the feed's new columns
    assert commit_snapshot(lake, "loc", SPEC, delta_rel="w/2/d.parquet", columns=NEW) == 2
    snap = pq.read_table(lake.path(snapshot_rel("loc")), filesystem=lake.fs).sort_by("ref").to_pylist()
    assert [(r["ref"], r["name"], r["attributes"]) for r in snap] == [("L1", "a2", None), ("L2", "b", None)]
    # each location is sent once more (now with its attributes), then only when it changes
    rows = [("L1", "a2", region), ("L2", "b", [])]
    assert _delta(lake, 3, rows, NEW) == 2
    commit_snapshot(lake, "loc", SPEC, delta_rel="w/3/d.parquet", columns=NEW)
    assert _delta(lake, 4, rows, NEW) == 0
