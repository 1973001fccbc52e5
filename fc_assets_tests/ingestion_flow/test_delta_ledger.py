"""Delta strategies over DuckDB and the ledger, on a local lake and on moto's S3 server."""

from __future__ import annotations

import itertools
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fc_assets.ingestion.deliver.delta import (
    DeltaSpec,
    commit_delta,
    commit_snapshot,
    compute_delta,
    snapshot_rel,
)
from fc_assets.ingestion.deliver.files import FileRef
from fc_assets.ingestion.deliver.ledger import FeedBusyError, Ledger, LedgerEntry
from fc_assets.resources.storage import Lake

COLS = ["sku_ref", "location_ref", "qty", "status"]
KEYS = ("sku_ref", "location_ref")


@pytest.fixture
def file_lake(tmp_path) -> Lake:
    return Lake(f"file://{tmp_path}/lake")


def write_rows(lake: Lake, rel: str, rows: list[tuple]) -> None:
    t = pa.table({c: [r[i] for r in rows] for i, c in enumerate(COLS)})
    t = t.append_column("_row", pa.array(range(len(rows)), pa.int64()))
    with lake.atomic_write(rel) as out:
        pq.write_table(t, out)


def delta_rows(lake: Lake, rel: str) -> list[tuple]:
    t = pq.read_table(lake.path(rel), filesystem=lake.fs).sort_by(
        [("_op", "descending"), ("sku_ref", "ascending")]
    )
    return [(r["_op"], r["sku_ref"], r["qty"]) for r in t.to_pylist()]


_steps = itertools.count()


def step(lake, rows, spec=None, failed=(), watermark=None):
    spec, n = spec or DeltaSpec(KEYS), next(_steps)
    write_rows(lake, f"w/{n}/acc.parquet", rows)
    res = compute_delta(
        lake,
        "inv",
        spec,
        accepted_rel=f"w/{n}/acc.parquet",
        delta_rel=f"w/{n}/d.parquet",
        columns=COLS,
        watermark=watermark,
    )
    got = delta_rows(lake, f"w/{n}/d.parquet")
    commit_snapshot(lake, "inv", spec, delta_rel=f"w/{n}/d.parquet", columns=COLS, failed_rows=failed)
    return res, got


def test_hash_delta_sends_only_changes_and_is_idempotent(file_lake):
    base = [(f"S{i}", "L1", i, "AVAILABLE") for i in range(100)]
    res, got = step(file_lake, base)
    assert res.upserts == 100 and res.unchanged == 0
    res, got = step(file_lake, base)
    assert got == [] and res.unchanged == 100
    changed = [(s, loc, q + 1 if i % 10 == 0 else q, st) for i, (s, loc, q, st) in enumerate(base)]
    res, got = step(file_lake, changed)
    assert sorted(g[1] for g in got) == sorted(f"S{i}" for i in range(0, 100, 10)) and res.upserts == 10
    # NULL and "" are different values; the last row of a duplicated key wins
    res, got = step(file_lake, changed + [("S1", "L1", 1, None), ("S1", "L1", 99, "AVAILABLE")])
    assert got == [("upsert", "S1", 99)] and res.duplicates == 2


def test_disappeared_rows_become_deletes_once(file_lake):
    spec = DeltaSpec(KEYS, send_disappeared=True)
    rows = [(f"S{i}", "L1", 5, "AVAILABLE") for i in range(5)]
    step(file_lake, rows, spec)
    res, got = step(file_lake, rows[:3], spec)
    assert got == [("delete", "S3", 5), ("delete", "S4", 5)] and res.deletes == 2
    res, got = step(file_lake, rows[:3], spec)
    assert got == []


def test_duplicate_keys_with_deletes_rejected_keys_and_a_first_run(file_lake):
    """The path for files with a repeated key (unique keys skip the dedupe): the last row of a key wins,
    also on a first run without a snapshot, beside deletes and the keys of rejected rows."""
    spec = DeltaSpec(KEYS, send_disappeared=True)
    rows = [(f"S{i}", "L1", i, "A") for i in range(5)]
    write_rows(file_lake, "d/0/acc.parquet", [*rows, ("S1", "L1", 9, "A")])
    kw = {"columns": COLS}
    res = compute_delta(
        file_lake, "dup", spec, accepted_rel="d/0/acc.parquet", delta_rel="d/0/d.parquet", **kw
    )
    got = file_lake.read_parquet("d/0/d.parquet").to_pylist()
    assert (res.rows, res.duplicates, res.upserts, res.inserts, res.deletes) == (5, 1, 5, 5, 0)
    s1 = next(r for r in got if r["sku_ref"] == "S1")
    assert (s1["qty"], s1["_row"]) == (9, 5)  # the later row, with its own position in the file
    commit_snapshot(file_lake, "dup", spec, delta_rel="d/0/d.parquet", **kw)
    # S1 repeated (changed, then back to the snapshot's value), S2 changed, S3 gone, S4 gone but rejected
    again = [rows[0], ("S1", "L1", 7, "A"), ("S2", "L1", 5, "A"), ("S1", "L1", 9, "A")]
    write_rows(file_lake, "d/1/acc.parquet", again)
    pq.write_table(pa.table({"sku_ref": ["S4"], "location_ref": ["L1"]}), file_lake.path("d/1/rej.parquet"))
    res = compute_delta(
        file_lake,
        "dup",
        spec,
        accepted_rel="d/1/acc.parquet",
        delta_rel="d/1/d.parquet",
        rejected_keys_rel="d/1/rej.parquet",
        **kw,
    )
    assert delta_rows(file_lake, "d/1/d.parquet") == [("upsert", "S2", 5), ("delete", "S3", 3)]
    assert (res.rows, res.duplicates, res.unchanged, res.updates) == (3, 1, 2, 1)
    assert (res.deletes, res.rejected_rows_kept) == (1, 1)
    # a NULL key part groups like a value: (S9, NULL) twice is one key, its last row kept
    write_rows(
        file_lake, "d/2/acc.parquet", [("S9", None, 1, "A"), ("S9", None, 2, "A"), ("S8", None, 3, "A")]
    )
    res = compute_delta(
        file_lake, "nul", DeltaSpec(KEYS), accepted_rel="d/2/acc.parquet", delta_rel="d/2/d.parquet", **kw
    )
    assert delta_rows(file_lake, "d/2/d.parquet") == [("upsert", "S8", 3), ("upsert", "S9", 2)]
    assert (res.rows, res.duplicates) == (2, 1)


def _snapshot_mark(lake: Lake, feed: str) -> bytes | None:
    meta = pq.read_metadata(lake.path(snapshot_rel(feed)), filesystem=lake.fs).metadata or {}
    return meta.get(b"fc_assets_hash")


def test_columns_are_compared_only_where_the_snapshot_hashes_are_known_to_match(file_lake):
    """A snapshot marked by the commit is compared column by column (no hashing); one without the mark
    (older code, other hash columns) is compared by its stored hashes, then re-hashed and marked by the commit."""
    rows = [(f"S{i}", "L1", i, "A") for i in range(6)]
    step(file_lake, rows)
    assert _snapshot_mark(file_lake, "inv")  # written by commit_snapshot
    # an unmarked snapshot whose stored hash of S0 is stale: the hash comparison sends S0 (as before)
    snap = file_lake.read_parquet(snapshot_rel("inv"))
    stale = snap.set_column(
        4,
        "_h",
        pa.array(
            [
                "0" * 32 if s == "S0" else h
                for s, h in zip(
                    snap.column("sku_ref").to_pylist(), snap.column("_h").to_pylist(), strict=True
                )
            ]
        ),
    )
    pq.write_table(stale.replace_schema_metadata(None), file_lake.path(snapshot_rel("inv")))
    assert _snapshot_mark(file_lake, "inv") is None
    res, got = step(file_lake, rows)
    assert got == [("upsert", "S0", 0)] and res.unchanged == 5
    assert _snapshot_mark(file_lake, "inv")  # re-hashed and marked by that commit
    res, got = step(file_lake, rows)
    assert got == [] and res.unchanged == 6
    # marked, compared by columns: a changed value, NULL against "", and a new key
    res, got = step(file_lake, [*rows[:4], ("S4", "L1", 40, "A"), ("S5", "L1", 5, None), ("S6", "L1", 6, "")])
    assert got == [("upsert", "S4", 40), ("upsert", "S5", 5), ("upsert", "S6", 6)]
    assert (res.updates, res.inserts, res.unchanged) == (2, 1, 4)
    # other hash columns: not the snapshot's mark, so all hashes differ and every row goes (as before)
    res, got = step(file_lake, rows, DeltaSpec(KEYS, hash_columns=("qty",)))
    assert len(got) == 7 - 1 and res.upserts == 6  # S6 is not in the file
    res, got = step(file_lake, [*rows[:5], ("S5", "L1", 6, "B")], DeltaSpec(KEYS, hash_columns=("qty",)))
    assert got == [("upsert", "S5", 6)]  # status is not hashed: only the qty change counts


def test_a_snapshot_put_back_by_reset_is_compared_by_its_hashes(file_lake, tmp_path):
    """`reset --to FILE` takes a snapshot that may have been edited (here: qty changed, `_h` kept, the
    file's metadata kept by pyarrow): its mark is dropped, so its stored hashes decide, as before marks."""
    from fc_assets.ingestion.deliver.state_ops import reset

    rows = [(f"S{i}", "L1", i, "A") for i in range(3)]
    step(file_lake, rows)
    snap = file_lake.read_parquet(snapshot_rel("inv"))
    assert _snapshot_mark(file_lake, "inv") and snap.schema.metadata.get(b"fc_assets_hash")
    edited = snap.set_column(2, "qty", pa.array([7, 1, 2], pa.int64()))  # S0's qty, its _h unchanged
    pq.write_table(edited, tmp_path / "edited.parquet")
    reset(file_lake, "inv", "test", to=str(tmp_path / "edited.parquet"))
    assert _snapshot_mark(file_lake, "inv") is None
    res, got = step(file_lake, [("S0", "L1", 7, "A"), *rows[1:]])
    assert got == [("upsert", "S0", 7)]


def test_a_float_column_is_compared_by_its_hash(tmp_path):
    """-0.0 equals 0.0 but its text differs: a float column keeps the hash comparison (sent, as before)."""
    lake = Lake(f"file://{tmp_path}/lake")
    cols = ["k", "x"]

    def go(n, x):
        t = pa.table({"k": ["A"], "x": pa.array([x], pa.float64()), "_row": pa.array([0], pa.int64())})
        (tmp_path / "lake" / "f").mkdir(parents=True, exist_ok=True)
        pq.write_table(t, lake.path(f"f/{n}.parquet"))
        kw = {"accepted_rel": f"f/{n}.parquet", "delta_rel": f"f/{n}d.parquet", "columns": cols}
        res = compute_delta(lake, "fl", DeltaSpec(("k",)), **kw)
        commit_snapshot(lake, "fl", DeltaSpec(("k",)), delta_rel=kw["delta_rel"], columns=cols)
        return res.upserts

    assert go(0, 0.0) == 1 and go(1, 0.0) == 0
    assert _snapshot_mark(lake, "fl")
    assert go(2, -0.0) == 1


def test_rows_fluent_rejected_stay_out_of_the_snapshot_and_go_again(file_lake):
    rows = [(f"S{i}", "L1", 1, "A") for i in range(4)]
    step(file_lake, rows, failed=[2])  # Fluent rejected the row at position 2
    res, got = step(file_lake, rows)
    assert got == [("upsert", "S2", 1)]


def test_commit_twice_is_harmless(file_lake):
    rows = [(f"S{i}", "L1", 1, "A") for i in range(4)]
    step(file_lake, rows)
    write_rows(file_lake, "x/acc.parquet", [("S0", "L1", 7, "A")])
    spec = DeltaSpec(KEYS)
    compute_delta(file_lake, "inv", spec, accepted_rel="x/acc.parquet", delta_rel="x/d.parquet", columns=COLS)
    for _ in range(2):
        commit_snapshot(file_lake, "inv", spec, delta_rel="x/d.parquet", columns=COLS)
    snap = file_lake.read_parquet(snapshot_rel("inv")).to_pylist()
    assert len(snap) == 4 and next(r for r in snap if r["sku_ref"] == "S0")["qty"] == 7


def test_change_column_and_full_and_timestamp(tmp_path):
    global COLS
    saved = COLS
    try:
        COLS = ["sku_ref", "location_ref", "qty", "status"]
        lake = Lake(f"file://{tmp_path}/a")
        spec = DeltaSpec(KEYS, strategy="change_column", change_column="status")
        res, got = step(lake, [("S1", "L", 1, "I"), ("S2", "L", 2, "D"), ("S3", "L", 3, "U")], spec)
        assert got == [("upsert", "S1", 1), ("upsert", "S3", 3), ("delete", "S2", 2)]
        lake = Lake(f"file://{tmp_path}/b")
        spec = DeltaSpec(KEYS, strategy="full")
        step(lake, [("S1", "L", 1, "A")], spec)
        assert step(lake, [("S1", "L", 1, "A")], spec)[1] == [("upsert", "S1", 1)]
        lake = Lake(f"file://{tmp_path}/c")
        spec = DeltaSpec(KEYS, strategy="timestamp", timestamp_column="status")  # ISO text compares in order
        res, got = step(lake, [("S1", "L", 1, "2025-01-01"), ("S2", "L", 1, "2025-01-03")], spec)
        assert len(got) == 2 and res.watermark == "2025-01-03"
        res, got = step(
            lake, [("S1", "L", 2, "2025-01-02"), ("S3", "L", 1, "2025-01-04")], spec, watermark=res.watermark
        )
        assert got == [("upsert", "S3", 1)] and res.watermark == "2025-01-04"
    finally:
        COLS = saved


def test_delta_on_s3_lake_200k_rows(lake):
    rows = [(f"SKU{i:07d}", f"L{i % 50}", i % 97, "AVAILABLE") for i in range(200_000)]
    t0 = time.perf_counter()
    res, _ = step(lake, rows)
    changed = [(s, loc, q + 1 if i % 100 == 0 else q, st) for i, (s, loc, q, st) in enumerate(rows)]
    res, got = step(lake, changed)
    assert res.upserts == 2000 and len(got) == 2000
    assert time.perf_counter() - t0 < 30


def test_ledger_entries_stages_and_busy_guard(file_lake):
    ledger = Ledger(file_lake, "inv")
    a = FileRef("inv", "s3", "in/a.csv", "e1", 10, 1.0, "e1")
    b = FileRef("inv", "s3", "in/b.csv", "e2", 10, 2.0, "e2")
    ea = LedgerEntry.new(a)
    ledger.advance(ea, "claimed", run_id="r1")
    ledger.advance(ea, "sending", run_id="r1", send_summary={"batch_ids": ["7"]})
    state = ledger.state()
    state.inflight = {"file_id": a.file_id}
    ledger.save_state(state)
    with pytest.raises(FeedBusyError, match="in/a.csv"):
        ledger.check_not_busy(b.file_id)
    ledger.check_not_busy(a.file_id)  # the file itself may resume
    ledger.advance(ea, "claimed", run_id="r2")  # never moves backwards
    assert ledger.get(a.file_id).stage == "sending" and ledger.get(a.file_id).send_summary == {
        "batch_ids": ["7"]
    }
    ledger.advance(ea, "committed")
    ledger.check_not_busy(b.file_id)
    assert [e.key for e in ledger.entries()] == ["in/a.csv"]


# ------------------------------------------------------------------------- timestamp / hybrid watermark

TS_COLS = ["sku_ref", "location_ref", "qty", "ts"]


def ts_step(lake, rows, spec, watermark, failed=()):
    """One file through compute_delta + commit_delta; returns (result, sent skus, new mark)."""
    from datetime import datetime

    n = next(_steps)
    t = pa.table(
        {
            "sku_ref": [r[0] for r in rows],
            "location_ref": ["L1"] * len(rows),
            "qty": pa.array([r[1] for r in rows], pa.int64()),
            "ts": pa.array(
                [datetime.fromisoformat(r[2]) if r[2] else None for r in rows], pa.timestamp("us", "UTC")
            ),
            "_row": pa.array(range(len(rows)), pa.int64()),
        }
    )
    with lake.atomic_write(f"w/{n}/acc.parquet") as out:
        pq.write_table(t, out)
    kw = {"delta_rel": f"w/{n}/d.parquet", "columns": TS_COLS}
    res = compute_delta(lake, "tsf", spec, accepted_rel=f"w/{n}/acc.parquet", watermark=watermark, **kw)
    sent = sorted(r["sku_ref"] for r in lake.read_parquet(kw["delta_rel"]).to_pylist())
    rows_failed = [i for i, r in enumerate(rows) if r[0] in failed]
    mark = None
    for _ in range(2):  # a commit applied twice (crash before it was recorded) gives the same state
        mark = commit_delta(
            lake,
            "tsf",
            spec,
            failed_rows=rows_failed,
            watermark=watermark,
            file_watermark=res.watermark,
            **kw,
        )
    return res, sent, mark


def test_timestamp_ties_compare_key_and_hash_and_mark_stops_at_rejected(file_lake):
    spec = DeltaSpec(KEYS, strategy="timestamp", timestamp_column="ts")
    t10, t12 = "2025-01-01T10:00:00+00:00", "2025-01-01T12:00:00+00:00"
    _, sent, mark = ts_step(file_lake, [("A", 1, t10), ("B", 2, t12)], spec, None)
    assert sent == ["A", "B"] and mark == "2025-01-01 12:00:00+00"
    # at the mark: B unchanged (a tie), B2 new key, and the mark stays with both as ties
    res, sent, mark = ts_step(file_lake, [("B", 2, t12), ("B2", 5, t12), ("N", 1, None)], spec, mark)
    assert sent == ["B2", "N"] and res.no_timestamp == 1 and mark == "2025-01-01 12:00:00+00"
    # B changed at the same timestamp: its hash is not a tie, so it goes
    _, sent, mark = ts_step(file_lake, [("B", 3, t12), ("B2", 5, t12)], spec, mark)
    assert sent == ["B"]
    # Fluent rejects C (13:00): the mark stops at C, D (14:00) is above it and goes again too
    t13, t14 = "2025-01-01T13:00:00+00:00", "2025-01-01T14:00:00+00:00"
    _, sent, mark = ts_step(file_lake, [("C", 1, t13), ("D", 1, t14)], spec, mark, failed=("C",))
    assert sent == ["C", "D"] and mark == "2025-01-01 13:00:00+00"
    _, sent, mark = ts_step(file_lake, [("C", 1, t13), ("D", 1, t14)], spec, mark)
    assert sent == ["C", "D"] and mark == "2025-01-01 14:00:00+00"
    _, sent, _ = ts_step(file_lake, [("C", 1, t13), ("D", 1, t14)], spec, mark)
    assert sent == []


def test_hybrid_compares_hashes_without_the_timestamp(file_lake):
    spec = DeltaSpec(KEYS, strategy="hybrid", timestamp_column="ts")
    t1, t2, t0 = "2025-01-01T10:00:00+00:00", "2025-01-02T10:00:00+00:00", "2024-12-01T10:00:00+00:00"
    res, sent, mark = ts_step(file_lake, [("A", 1, t1), ("B", 1, t1)], spec, None)
    assert sent == ["A", "B"] and res.inserts == 2
    # A touched (newer, same qty), B changed, C older than the mark (not compared), N new without timestamp
    res, sent, mark = ts_step(
        file_lake, [("A", 1, t2), ("B", 2, t2), ("C", 9, t0), ("N", 1, None)], spec, mark
    )
    assert sent == ["B", "N"] and (res.inserts, res.updates, res.no_timestamp) == (1, 1, 1)


def test_watermark_text_does_not_depend_on_the_machine_zone(tmp_path):
    """compute_delta in a process under TZ=Asia/Tokyo writes the mark in UTC."""
    import os
    import subprocess
    import sys

    code = f"""
import pyarrow as pa, pyarrow.parquet as pq
from datetime import datetime, timezone
from fc_assets.ingestion.deliver.delta import DeltaSpec, compute_delta, connect
from fc_assets.resources.storage import Lake
lake = Lake("file://{tmp_path}/lake")
t = pa.table({{"k": ["A"], "ts": pa.array([datetime(2025, 1, 1, 12, tzinfo=timezone.utc)], pa.timestamp("us", "UTC")),
               "_row": pa.array([0], pa.int64())}})
with lake.atomic_write("acc.parquet") as out:
    pq.write_table(t, out)
spec = DeltaSpec(("k",), strategy="timestamp", timestamp_column="ts")
res = compute_delta(lake, "z", spec, accepted_rel="acc.parquet", delta_rel="d.parquet", columns=["k", "ts"])
print(res.watermark)
"""
    env = {**os.environ, "TZ": "Asia/Tokyo"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2025-01-01 12:00:00+00"


def test_validation_hands_over_the_keys_of_rejected_rows(tmp_path):
    """What the delta gets to tell a rejected row from a disappeared one: typed keys, null when unknown."""
    from fc_assets.ingestion.feeds import inventory_feed
    from fc_assets.ingestion.read.validate import validate_file

    path = tmp_path / "stock.jsonl"
    path.write_text(
        '{"sku_ref": "A", "location_ref": "L1", "qty": 1}\n'
        '{"sku_ref": "B", "location_ref": "L1", "qty": "12abc"}\n'
        '{"sku_ref": "C", "location_ref": "L1", "qty": \n'  # a malformed line: no key can be read
        '{"location_ref": "L2", "qty": 3}\n'
    )
    got: list[pa.Table] = []
    run = validate_file(inventory_feed(), path, rejected_keys_sink=got.append)
    accepted = pa.Table.from_batches(list(run))
    keys = pa.concat_tables(got)
    assert accepted.column("sku_ref").to_pylist() == ["A"]
    assert sorted(keys.to_pylist(), key=str) == sorted(
        [
            {"sku_ref": "B", "location_ref": "L1"},
            {"sku_ref": None, "location_ref": None},
            {"sku_ref": None, "location_ref": "L2"},
        ],
        key=str,
    )


def test_values_holding_the_hash_separator_or_its_null_are_not_taken_for_another_row(tmp_path):
    """A value holding U+001F (between the columns' texts in the hash) or U+0000 (NULL's text) once hashed
    like another row ('x␟y','z' like 'x','y␟z'; '\\0' like NULL): that change was lost wherever the hashes
    decide (here: a float column, so the hashes are compared)."""
    lake = Lake(f"file://{tmp_path}/lake")
    cols = ["k", "a", "b", "x"]

    def go(n, a, b):
        s = pa.string()
        schema = pa.schema([("k", s), ("a", s), ("b", s), ("x", pa.float64()), ("_row", pa.int64())])
        t = pa.table({"k": ["A"], "a": [a], "b": [b], "x": [1.5], "_row": [0]}, schema=schema)
        (tmp_path / "lake" / "f").mkdir(parents=True, exist_ok=True)
        pq.write_table(t, lake.path(f"f/{n}.parquet"))
        kw = {"accepted_rel": f"f/{n}.parquet", "delta_rel": f"f/{n}d.parquet", "columns": cols}
        res = compute_delta(lake, "sep", DeltaSpec(("k",)), **kw)
        commit_snapshot(lake, "sep", DeltaSpec(("k",)), delta_rel=kw["delta_rel"], columns=cols)
        return res.upserts

    assert go(0, "x\x1fy", "z") == 1
    assert go(1, "x", "y\x1fz") == 1  # lost before
    assert go(2, "x", "y\x1fz") == 0
    assert go(3, None, "z") == 1
    assert go(4, "\x00", "z") == 1  # lost before
    assert go(5, "\x1b", "\x1f") == 1 and go(6, "\x1b\x1f", None) == 1 and go(7, "\x1b\x1f", None) == 0
