"""`check-file inventory` benchmark: speed against a bare pyarrow CSV read of the same file, and peak
memory for a 1M-row vs a 10M-row file.

    python bench/check_file_bench.py                 # 10M rows (the file, ~440 MB, is generated once)
    python bench/check_file_bench.py --rows 2000000  # quicker

The inventory CSV has 5 columns (sku, location, quantity, status, expected_on), ~44 bytes a row, with
0.5 % of quantities garbage (`N/A`, `12abc`, `-1`) so the rejects path is exercised. Every measurement
runs in a fresh child process on a warm page cache; speed is the best of `--repeat` runs.

- baseline: `pyarrow.csv.read_csv(path)` (all defaults: both cores, type inference), and Arrow's
  streaming reader with every column as text (what check-file parses with);
- check-file: `validate.check_file("inventory", path, rejects)` timed around the call (imports
  excluded), then the console command `fc-assets check-file` end to end (imports included);
- memory: ru_maxrss of a child that checks the 1M-row file vs one that checks the big file.

Targets (issue): >= 60M rows/min, >= 40 % of the bare read, RSS(10M) <= 1.3 x RSS(1M).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import table_rows

GENERATE = r"""
import sys, numpy as np, pyarrow as pa, pyarrow.csv as pcsv
n, out = int(sys.argv[1]), sys.argv[2]
rng = np.random.default_rng(7)
names = ["sku", "location", "quantity", "status", "expected_on"]
with pcsv.CSVWriter(out + ".tmp", pa.schema([(c, pa.string()) for c in names]),
                    write_options=pcsv.WriteOptions(quoting_style="none")) as w:
    for start in range(0, n, 1_000_000):
        m = min(1_000_000, n - start)
        idx = np.arange(start, start + m)
        qty = rng.integers(0, 100_000, m).astype(str).astype(object)
        bad = rng.random(m) < 0.005
        qty[bad] = rng.choice(["N/A", "12abc", "-1"], int(bad.sum()))
        cols = [np.char.add("SKU-", np.char.zfill(idx.astype(str), 10)),
                np.char.add("LOC-", np.char.zfill((idx % 997).astype(str), 4)),
                qty.astype(str),
                np.array(["AVAILABLE", "reserved", "On_Order", "AVAILABLE"])[rng.integers(0, 4, m)],
                np.where(rng.random(m) < 0.7, "", "2025-03-01")]
        w.write_batch(pa.record_batch([pa.array(c) for c in cols], names=names))
import os; os.replace(out + ".tmp", out)
"""

BARE = r"""
import json, sys, time, pyarrow as pa, pyarrow.csv as pcsv
path, mode = sys.argv[1], sys.argv[2]
t = time.perf_counter()
if mode == "read_csv":
    rows = pcsv.read_csv(path).num_rows
else:
    head = open(path).readline().strip().split(",")
    reader = pcsv.open_csv(path, convert_options=pcsv.ConvertOptions(column_types={c: pa.string() for c in head}))
    rows = sum(b.num_rows for b in reader)
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t}))
"""

CHECK = r"""
import json, resource, sys, time
from fc_assets.ingestion.read.validate import check_file
t = time.perf_counter()
r = check_file("inventory", sys.argv[1], sys.argv[2])
print(json.dumps({"rows": r.rows, "accepted": r.accepted, "rejected": r.rejected,
                  "seconds": time.perf_counter() - t, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ensure(path: Path, rows: int) -> Path:
    if not path.exists():
        print(f"generating {path} ({rows:,} rows) …", flush=True)
        subprocess.run([sys.executable, "-c", GENERATE, str(rows), str(path)], check=True)
    return path


def best(code: str, repeat: int, *args: str) -> dict:
    runs = [child(code, *args) for _ in range(repeat)]
    return min(runs, key=lambda r: r["seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--small-rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/fc-check-file-bench")
    table_rows.add_argument(ap)
    args = ap.parse_args()
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    big = ensure(d / f"inventory-{args.rows}.csv", args.rows)
    small = ensure(d / f"inventory-{args.small_rows}.csv", args.small_rows)
    rejects = str(d / "rejects.csv")
    os.sync()
    child(BARE, str(big), "read_csv")  # warm the page cache

    read_csv = best(BARE, args.repeat, str(big), "read_csv")
    streaming = best(BARE, args.repeat, str(big), "open_csv")
    check = best(CHECK, args.repeat, str(big), rejects)
    started = time.perf_counter()
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "fc-assets"), "check-file", "inventory", str(big)],
        check=True,
        capture_output=True,
        text=True,
    )
    cli_seconds = time.perf_counter() - started
    cli_out = json.loads(cli.stdout)
    rss_small = child(CHECK, str(small), rejects)["maxrss_mb"]
    rss_big = child(CHECK, str(big), rejects)["maxrss_mb"]

    rows = check["rows"]
    rate = rows / check["seconds"]
    bare_rate = read_csv["rows"] / read_csv["seconds"]
    result = {
        "rows": rows,
        "accepted": check["accepted"],
        "rejected": check["rejected"],
        "file_mb": round(big.stat().st_size / 2**20, 1),
        "check_file_seconds": round(check["seconds"], 3),
        "rows_per_s": round(rate),
        "rows_per_min": round(rate * 60),
        "bare_read_csv_seconds": round(read_csv["seconds"], 3),
        "bare_streaming_text_seconds": round(streaming["seconds"], 3),
        "ratio_to_read_csv": round(rate / bare_rate, 3),
        "ratio_to_streaming_text": round(rate / (streaming["rows"] / streaming["seconds"]), 3),
        "cli_wall_seconds": round(cli_seconds, 3),
        "cli_reported_seconds": cli_out["seconds"],
        "cli_rows_per_min_wall": round(rows / cli_seconds * 60),
        f"peak_rss_mb_{args.small_rows}": round(rss_small, 1),
        f"peak_rss_mb_{args.rows}": round(rss_big, 1),
        "rss_ratio": round(rss_big / rss_small, 3),
    }
    print(
        f"rows {rows:,} ({result['file_mb']} MB), accepted {check['accepted']:,}, rejected {check['rejected']:,}"
    )
    print(
        f"check-file: {check['seconds']:.2f} s = {rate / 1e6:.2f} M rows/s = {rate * 60 / 1e6:.0f} M rows/min "
        f"(target >= 60 M rows/min)"
    )
    print(
        f"bare pyarrow.csv.read_csv: {read_csv['seconds']:.2f} s; streaming text read: "
        f"{streaming['seconds']:.2f} s"
    )
    print(
        f"ratio to read_csv: {result['ratio_to_read_csv']:.0%} (target >= 40 %); "
        f"to the streaming text read: {result['ratio_to_streaming_text']:.0%}"
    )
    print(
        f"fc-assets check-file (console command, imports included): {cli_seconds:.2f} s wall, "
        f"{cli_out['seconds']:.2f} s reported"
    )
    print(
        f"peak RSS: {rss_small:.0f} MB ({args.small_rows:,} rows) vs {rss_big:.0f} MB ({args.rows:,} rows) "
        f"= {result['rss_ratio']:.2f}x (target <= 1.3x)"
    )
    print(json.dumps(result))
    size = f"{rows:,} rows"
    table_rows.emit(
        args.rows_json,
        [
            table_rows.row(
                f"check-file inventory (in process) vs bare pyarrow.csv.read_csv, {size}",
                check["seconds"],
                read_csv["seconds"],
                "time <= 2x (>= 0.5x its speed)",
                check["seconds"] <= 2 * read_csv["seconds"],
                note=f"best of {args.repeat}",
            ),
            table_rows.row(
                f"check-file inventory rate, {size}",
                rate * 60 / 1e6,
                None,
                ">= 60 M rows/min",
                rate * 60 >= 60e6,
                unit="M rows/min",
            ),
            table_rows.row(
                f"check-file peak RSS, {size} vs {args.small_rows:,} rows",
                rss_big,
                rss_small,
                "ratio <= 1.3",
                rss_big <= 1.3 * rss_small,
                unit="MB",
            ),
        ],
    )


if __name__ == "__main__":
    main()
