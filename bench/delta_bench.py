"""The inventory feed's delta step at scale: a 10M-row file against a 10M-row snapshot, 1 % of rows changed.

    python bench/delta_bench.py                    # 10M rows (~1.5 minutes with the set-up)
    python bench/delta_bench.py --rows 300000      # smoke size

Set-up (not timed): the previous file's accepted rows are written as Parquet in the shape validation writes
them (`check-file --write-parquet`: sku_ref, location_ref, qty int64, status, expected_on timestamp,
condition, `_row`), and the feed's snapshot from them by the pipeline's own first load (`compute_delta`
without a snapshot, then `commit_snapshot`, which marks it: see `hash_mark` in delta.py); the new file is
the same rows with every 100th row's `qty` changed. Timed: a fresh child process running `compute_delta` (fc_assets/ingestion/deliver/delta.py) for the inventory feed
on a `file://` lake, imports excluded from its time, its peak RSS (ru_maxrss) reported. It must find exactly
the changed rows as upserts.

Target (issue 16): under 20 s and 4 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import table_rows

GENERATE = r"""
import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq
n, out, changed_every = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
schema = pa.schema([("sku_ref", pa.string()), ("location_ref", pa.string()), ("qty", pa.int64()),
                    ("status", pa.string()), ("expected_on", pa.timestamp("us", tz="UTC")),
                    ("condition", pa.string()), ("_row", pa.int64())])
statuses = np.array(["AVAILABLE", "RESERVED", "ON_ORDER", "AVAILABLE"])
with pq.ParquetWriter(out, schema, compression="zstd") as w:
    for start in range(0, n, 1_000_000):
        m = min(1_000_000, n - start)
        idx = np.arange(start, start + m)
        rng = np.random.default_rng(start)  # the same rows in both files, whatever the chunking
        qty = rng.integers(0, 100_000, m)
        if changed_every:
            qty = np.where(idx % changed_every == 0, qty + 1, qty)
        eta = np.where(rng.random(m) < 0.7, np.datetime64("NaT"), np.datetime64("2025-03-01T00:00:00", "us"))
        cols = [np.char.add("SKU-", np.char.zfill((idx // 10).astype(str), 9)),
                np.char.add("LOC-", np.char.zfill((idx % 10).astype(str), 3)),
                qty, statuses[rng.integers(0, 4, m)], eta, None, idx + 1]
        arrays = [pa.array(c, type=f.type) if c is not None else pa.nulls(m, f.type) for c, f in zip(cols, schema)]
        w.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=250_000)
"""

SNAPSHOT = r"""
import sys
from fc_assets.ingestion.deliver.delta import commit_snapshot, compute_delta
from fc_assets.ingestion.deliver.plans import delta_spec
from fc_assets.ingestion.feeds import FEEDS
from fc_assets.resources.storage import Lake
lake, rel = Lake(sys.argv[1]), sys.argv[2]
feed = FEEDS["inventory"]
spec, cols = delta_spec(feed), list(feed.columns)
# the previous file as a first load (no snapshot yet: every row sent), then committed as the pipeline does
compute_delta(lake, "inventory", spec, accepted_rel=rel, delta_rel="work/first.parquet", columns=cols)
commit_snapshot(lake, "inventory", spec, delta_rel="work/first.parquet", columns=cols)
lake.delete("work/first.parquet")
"""

DELTA = r"""
import json, resource, sys, time
from fc_assets.ingestion.deliver.delta import compute_delta
from fc_assets.ingestion.deliver.plans import delta_spec
from fc_assets.ingestion.feeds import FEEDS
from fc_assets.resources.storage import Lake
lake, rel = Lake(sys.argv[1]), sys.argv[2]
feed = FEEDS["inventory"]
def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime
t, c = time.perf_counter(), cpu()
r = compute_delta(lake, "inventory", delta_spec(feed), accepted_rel=rel, delta_rel="work/delta.parquet",
                  columns=list(feed.columns))
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": cpu() - c, "rows": r.rows, "upserts": r.upserts,
                  "updates": r.updates, "deletes": r.deletes, "unchanged": r.unchanged,
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(code: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, env=env
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]  # not DuckDB's progress bar
    return json.loads(lines[-1]) if lines else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--changed-every", type=int, default=100, help="every Nth row changed (100: 1 %%)")
    table_rows.add_argument(ap)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="fc-delta-bench-") as tmp:
        lake = f"file://{tmp}/lake"
        Path(tmp, "lake", "work").mkdir(parents=True)
        previous, current = "work/previous.parquet", "work/accepted.parquet"
        print(f"generating 2 x {args.rows:,} rows …", flush=True)
        child(GENERATE, str(args.rows), str(Path(tmp, "lake", previous)), "0")
        child(GENERATE, str(args.rows), str(Path(tmp, "lake", current)), str(args.changed_every))
        child(SNAPSHOT, lake, previous)
        r = child(DELTA, lake, current)
    expected = (args.rows + args.changed_every - 1) // args.changed_every
    assert r["rows"] == args.rows and r["upserts"] == r["updates"] == expected and r["deletes"] == 0, r
    print(
        f"delta {args.rows:,} vs {args.rows:,} rows: {r['seconds']:.2f} s ({r['cpu']:.1f} s CPU), "
        f"{r['upserts']:,} changed rows found, "
        f"peak RSS {r['maxrss_mb']:.0f} MB (load {os.getloadavg()[0]:.1f})",
        flush=True,
    )
    size = f"{args.rows:,} vs {args.rows:,} rows, {100 / args.changed_every:g} % changed"
    table_rows.emit(
        args.rows_json,
        [
            table_rows.row(
                f"inventory delta (compute_delta, in a child), {size}",
                r["seconds"],
                None,
                "< 20 s",
                r["seconds"] < 20,
                note=f"{r['upserts']:,} upserts found; CPU {r['cpu']:.1f} s",
            ),
            table_rows.row(
                f"inventory delta peak RSS, {size}",
                r["maxrss_mb"],
                None,
                "< 4096 MB",
                r["maxrss_mb"] < 4096,
                unit="MB",
            ),
        ],
    )


if __name__ == "__main__":
    main()
