"""Production instance under load: the test of fc_assets_tests/production/ with 200 files instead of 30 —
deploy/dagster.yaml on a throwaway PostgreSQL, code server and daemon as processes, files dropped at once
across the three feeds on S3 and SFTP. Passes when every file was sent exactly once, no two runs of a feed
overlapped and none was left queued; prints the wall time and the runs per minute.

    python bench/production_bench.py             # 200 files
    python bench/production_bench.py --files 60
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import table_rows

ROOT = Path(__file__).resolve().parents[1]
TEST = "fc_assets_tests/production/test_postgres_instance.py"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=200)
    table_rows.add_argument(ap)
    args = ap.parse_args()
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-n", "0", "-p", "no:cacheprovider", "-rs", TEST],
        cwd=ROOT,
        env={**os.environ, "FC_TEST_PRODUCTION_FILES": str(args.files)},
    )
    wall = time.monotonic() - t0
    print(
        f"production instance: {args.files} files, {'passed' if proc.returncode == 0 else 'FAILED'} "
        f"in {wall:.0f} s ({args.files / wall * 60:.1f} files/min, start-up included)"
    )
    table_rows.emit(
        args.rows_json,
        [
            table_rows.row(
                f"production instance (PostgreSQL, daemon), {args.files} files sent exactly once",
                wall,
                None,
                "passes",
                proc.returncode == 0,
                note=f"{args.files / wall * 60:.1f} files/min",
            )
        ],
    )
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
