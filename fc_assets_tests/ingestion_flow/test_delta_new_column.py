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


def test_a_locations_file_in_flight_across_the_upgrade_commits(make_flow, monkeypatch):
    """The same through the flow: the old locations feed (no attributes) sends a file and stops after
    `confirmed` (a deploy); the new feed's run resumes the file at its commit. Failed before the fix: the
    step failed with 'Referenced column "attributes" not found' and the file stayed in flight."""
    import dataclasses

    from fc_assets.ingestion.deliver.crashpoints import CRASH_ENV
    from fc_assets.ingestion.feeds import locations_feed
    from fc_assets_tests.ingestion_flow.flow import metadata
    from fc_assets_tests.ingestion_flow.test_location_attributes import CSV, _attributes
    from fc_assets_tests.ingestion_flow.test_master_data import run_file

    old = make_flow(dataclasses.replace(locations_feed(), attributes=None), glob="*", FC_FEED_MAX_RETRIES=0)
    body = CSV.format(s="-inflight")
    assert run_file(old, "inflight-1.csv", body.encode())["sent"] == 2
    monkeypatch.setenv(CRASH_ENV, "after_confirm")
    old.put_s3("inflight-2.csv", body.replace("Store One", "Store 1").encode())
    (req,) = old.tick("s3")
    assert not old.execute(req).success
    new = make_flow(locations_feed(), glob="*")  # (no crash injected)
    result = new.execute(req)  # the failed run re-executed by the new code
    assert result.success, [e.message for e in result.all_events if e.is_failure][:3]
    assert metadata(result)["resumed_from_stage"] == "confirmed"
    # the next file sends each location once more, with its attributes; then nothing
    assert run_file(new, "inflight-3.csv", body.replace("Store One", "Store 1").encode())["sent"] == 2
    assert run_file(new, "inflight-4.csv", body.replace("Store One", "Store 1").encode())["sent"] == 0
    assert _attributes(new, ["LA-1-inflight"])["LA-1-inflight"] == [
        {"name": "floor_space", "type": "STRING", "value": "420"},
        {"name": "region", "type": "STRING", "value": "NSW"},
    ]


def test_reset_to_a_snapshot_from_before_the_feed_gained_a_column(lake, tmp_path):
    """`fc-assets state reset --to` a backup from before the upgrade (no `attributes`): the delta reads such a
    snapshot (snapshot_rows), yet reset refused it ('the snapshot lacks columns ['attributes']'), so an
    operator could not put back the pre-upgrade state of the locations feed."""
    from fc_assets.ingestion.deliver.state_ops import reset

    assert _delta(lake, 1, [("L1", "a"), ("L2", "b")], OLD) == 2
    commit_snapshot(lake, "loc", SPEC, delta_rel="w/1/d.parquet", columns=OLD)
    backup = tmp_path / "before-upgrade.parquet"
    backup.write_bytes(lake.read_bytes(snapshot_rel("loc")))
    assert _delta(lake, 2, [("L1", "a", []), ("L2", "b", [])], NEW) == 2
    commit_snapshot(lake, "loc", SPEC, delta_rel="w/2/d.parquet", columns=NEW)
    with pytest.raises(ValueError, match=r"lacks columns \['attributes'\]"):  # (without the feed's keys)
        reset(lake, "loc", "reviewer", to=str(backup))
    reset(lake, "loc", "reviewer", to=str(backup), keys=SPEC.keys)  # (as `fc-assets state reset` passes them)
    assert _delta(lake, 3, [("L1", "a", []), ("L2", "b", [])], NEW) == 2  # against the old state: sent again
    # a snapshot without the feed's key column is still refused
    keyless = tmp_path / "keyless.parquet"
    pq.write_table(pa.table({"name": ["a"], "_h": pa.array([1], pa.uint64())}), keyless)
    with pytest.raises(ValueError, match=r"lacks key columns \['ref'\]"):
        reset(lake, "loc", "reviewer", to=str(keyless), keys=SPEC.keys)
