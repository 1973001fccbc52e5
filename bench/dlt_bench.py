"""Our `check-file --write-parquet` against dlt's `read_csv_duckdb` -> filesystem/Parquet pipeline.

    python bench/dlt_bench.py                                    # 2M rows (dlt installed on first use)
    python bench/dlt_bench.py --rows 2000000 --rows 10000000
    python bench/dlt_bench.py --rows 300 --no-install            # smoke: skipped if dlt is not installed

The same job on both sides, whole processes on a warm page cache, best of `--repeat`: read the inventory CSV
(bench/check_file_bench.py's generator: 5 columns, ~44 B a row, 0.5 % bad quantities) and write Parquet.

- ours: `fc-assets check-file inventory FILE --write-parquet OUT` — parse, map, type and validate every row
  (rejects counted), the accepted rows streamed to one zstd Parquet file;
- dlt: `filesystem(file_glob=...) | read_csv_duckdb(use_pyarrow=True)` run by a pipeline into the
  `filesystem` destination with `loader_file_format="parquet"` (extract, normalize, load), no validation.
  `use_pyarrow=True` hands Arrow batches on; the reader's default (`False`) turns every row into a JSON dict
  first (2M rows: 118 s instead of 14 s on the loaded machine), which would be an unfair baseline; dlt is installed into its
  own virtualenv `bench/.venv-dlt` (`uv venv` + `uv pip install "dlt[filesystem,parquet,duckdb]" "duckdb<2"`),
  so its dependencies never touch ours.

Target (issue 16): ours at least as fast (ratio <= 1.0), with validation on and theirs absent.

Second row per size up to `--sdk-max-rows` (2M): the same CSV through Fluent's TypeScript SDK
(`@fluentcommerce/fc-connect-sdk` 0.1.56, installed in fc_assets_tests/sdk/ts as bench/sdk_bench.py does):
`node bench/sdk_csv.mjs FILE`, its `CSVParserService` (streamed, batches of 2,000) and `UniversalMapper` onto
the inventory fields (sku_ref, location_ref, qty, status, expected_on) with the SDK's resolvers, one whole node
process; against our same `check-file --write-parquet` run (which also validates and writes Parquet). Both sides
count the file's records (asserted equal). Target (issue 16): ours >= 10x faster (ratio <= 0.1).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import table_rows
from check_file_bench import ensure

BENCH = Path(__file__).resolve().parent
DLT_VENV = BENCH / ".venv-dlt"
DLT_PY = DLT_VENV / "bin" / "python"
FC_ASSETS = Path(sys.executable).parent / "fc-assets"
DUCKDB_PIN = "duckdb<2"
"""dlt 1.31's `read_csv_duckdb` pages with `DuckDBPyRelation.fetchmany`, which DuckDB 2.0 removed (the extract
step fails: "Relations no longer have fetchmany()"); the extra would otherwise pull DuckDB 2."""

DLT_PIPELINE = r"""
import glob, json, os, sys, time
t = time.perf_counter()
import dlt
import pyarrow.parquet as pq
from dlt.sources.filesystem import filesystem, read_csv_duckdb
csv, out, work = sys.argv[1], sys.argv[2], sys.argv[3]
files = filesystem(bucket_url="file://" + os.path.dirname(csv), file_glob=os.path.basename(csv))
pipeline = dlt.pipeline(
    pipeline_name="fc_bench", pipelines_dir=work, dataset_name="bench",
    destination=dlt.destinations.filesystem(bucket_url="file://" + out),
)
pipeline.run((files | read_csv_duckdb(use_pyarrow=True)).with_name("inventory"), loader_file_format="parquet")
parts = glob.glob(os.path.join(out, "bench", "inventory", "*.parquet"))
rows = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
print(json.dumps({"rows": rows, "files": len(parts), "seconds": time.perf_counter() - t, "dlt": dlt.__version__}))
"""


def install_dlt() -> str | None:
    """dlt in its own venv; returns why not when it cannot be installed."""
    if DLT_PY.is_file() and (DLT_VENV / ".installed").is_file():
        return None
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if uv is None:
        return "uv not found"
    try:
        subprocess.run([uv, "venv", "-q", "--allow-existing", str(DLT_VENV)], check=True, timeout=120)
        subprocess.run(
            [
                uv,
                "pip",
                "install",
                "-q",
                "--python",
                str(DLT_PY),
                "dlt[filesystem,parquet,duckdb]",
                DUCKDB_PIN,
            ],
            check=True,
            timeout=600,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        return f"dlt could not be installed: {exc}"
    (DLT_VENV / ".installed").touch()
    return None


def sdk_node() -> str | None:
    """`node` with the TypeScript SDK installed as bench/sdk_bench.py installs it (npm ci from the project's
    lock file; `--no-install` is about dlt's virtualenv only); None without node, npm or the SDK."""
    from sdk_bench import ensure_sdk

    try:
        return ensure_sdk()
    except (subprocess.SubprocessError, OSError):
        return None


def parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.read_metadata(path).num_rows


def whole(cmd: list[str]) -> tuple[float, dict]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**env, "PYTHONWARNINGS": "ignore"})
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    # the JSON object starting on the last line (DuckDB's progress bar shares dlt's stdout, no newline before it)
    last = proc.stdout.strip().splitlines()[-1]
    return wall, json.loads(last[last.index('{"') :])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, action="append", help="CSV sizes (default 2,000,000)")
    ap.add_argument("--repeat", type=int, default=2, help="paired runs per size (best of)")
    ap.add_argument("--dir", default="/tmp/fc-check-file-bench", help="where the CSVs are generated (shared)")
    ap.add_argument(
        "--no-install",
        action="store_true",
        help="do not install dlt (smoke); the SDK is installed as sdk_bench.py does",
    )
    ap.add_argument("--sdk-max-rows", type=int, default=2_000_000, help="the SDK row for sizes up to this")
    table_rows.add_argument(ap)
    args = ap.parse_args()
    sizes = args.rows or [2_000_000]
    out: list[dict] = []
    if args.no_install:
        why_not = None if DLT_PY.is_file() else "dlt not installed (make bench installs it)"
    else:
        why_not = install_dlt()
    node = sdk_node()
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    for rows in sizes:
        work = f"CSV -> validate (ours) -> Parquet, {rows:,} rows: check-file --write-parquet vs dlt read_csv_duckdb(use_pyarrow=True)"
        sdk_work = f"CSV -> mapped inventory records, {rows:,} rows: check-file --write-parquet vs the TypeScript SDK's CSVParserService + UniversalMapper (node)"
        with_sdk = rows <= args.sdk_max_rows
        if why_not:
            out.append(table_rows.row(work, None, None, "ratio <= 1.0", None, note=why_not))
        if with_sdk and node is None:
            out.append(
                table_rows.row(sdk_work, None, None, "ratio <= 0.1", None, note="node/npm or the SDK missing")
            )
        if why_not and (not with_sdk or node is None):
            continue
        csv = ensure(d / f"inventory-{rows}.csv", rows)
        ours, theirs, sdk = [], [], []
        with tempfile.TemporaryDirectory(prefix="fc-dlt-bench-") as tmp:
            for n in range(args.repeat):
                parquet = Path(tmp, f"ours-{n}.parquet")
                wall, o = whole(
                    [str(FC_ASSETS), "check-file", "inventory", str(csv), "--write-parquet", str(parquet)]
                )
                ours.append(wall)
                assert o["rows"] == rows, o
                assert parquet_rows(parquet) == o["accepted"] > 0, o
                if not why_not:
                    wall, t = whole(
                        [str(DLT_PY), "-c", DLT_PIPELINE, str(csv), f"{tmp}/dlt-{n}", f"{tmp}/work-{n}"]
                    )
                    theirs.append(wall)
                    assert t["rows"] == rows, t
                if with_sdk and node is not None:
                    wall, s = whole([node, str(BENCH / "sdk_csv.mjs"), str(csv)])
                    sdk.append(wall)
                    assert s["rows"] == o["rows"] == rows and s["mapped"] + s["failed"] == rows, (o, s)
        best_ours = min(ours)
        print(
            f"{rows:,} rows: ours {best_ours:.2f} s ({o['accepted']:,} accepted, {o['rejected']:,} rejected); "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        if theirs:
            best_dlt = min(theirs)
            print(f"  dlt {t['dlt']} {best_dlt:.2f} s ({t['rows']:,} rows, {t['files']} files)", flush=True)
            out.append(
                table_rows.row(
                    work,
                    best_ours,
                    best_dlt,
                    "ratio <= 1.0",
                    best_ours <= best_dlt,
                    note=f"whole processes, best of {args.repeat}; dlt {t['dlt']}, no validation",
                )
            )
        if sdk:
            best_sdk = min(sdk)
            print(
                f"  SDK {best_sdk:.2f} s ({s['rows']:,} records, {s['mapped']:,} mapped, {s['failed']:,} failed, "
                f"SDK load {s['load_s']:.2f} s)",
                flush=True,
            )
            out.append(
                table_rows.row(
                    sdk_work,
                    best_ours,
                    best_sdk,
                    "ratio <= 0.1",
                    best_ours <= 0.1 * best_sdk,
                    note=f"whole processes, best of {args.repeat}; SDK 0.1.56, no validation but required fields",
                )
            )
    table_rows.emit(args.rows_json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
