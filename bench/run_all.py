"""`make bench`: every benchmark side by side in one run, one table, one results file.

    python bench/run_all.py                 # the sizes below (under 30 minutes on 2 cores)
    python bench/run_all.py --only sdk,dlt  # some benchmarks
    python bench/run_all.py --smoke         # tiny sizes, new benchmarks only, run at once (the test suite's)

Each benchmark runs as its own process (its own imports, peak RSS and CPU) with `--rows-json`, and keeps
printing its detail; its rows (work, ours, the baseline measured in the same run, ratio, target, met) are
collected into one table, printed at the end and written with the machine load to
`bench/results/<YYYY-MM-DD>.json`. A benchmark that fails or runs past its time budget gets a NOT MET row
saying so: nothing is hidden.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import table_rows

BENCH = Path(__file__).resolve().parent

# name, script, arguments for `make bench`, arguments for --smoke (None: not run in smoke), time budget (s).
# Sizes are chosen so the whole run fits in 30 minutes on this 2-core machine; they are in each row's text.
BENCHES: list[tuple[str, str, list[str], list[str] | None, int]] = [
    ("startup", "startup_bench.py", ["--runs", "3"], None, 240),
    (
        "sdk",
        "sdk_bench.py",
        ["--orders", "20000"],
        ["--orders", "300", "--repeat", "1", "--latencies", "0", "--no-dagster", "--no-warmup"],
        480,
    ),
    (
        "dlt",
        "dlt_bench.py",
        ["--rows", "2000000", "--rows", "10000000"],
        ["--rows", "300", "--repeat", "1", "--no-install"],
        420,
    ),
    ("sandbox", "sandbox_bench.py", ["--quick"], None, 180),
    (
        "extraction",
        "extraction_bench.py",
        ["--orders", "10000", "--latency", "50,200", "--memory-orders", "10000,100000"],
        None,
        420,
    ),
    ("check_file", "check_file_bench.py", ["--rows", "10000000", "--repeat", "2"], None, 300),
    ("sending", "sending_bench.py", ["--rows", "100000", "--rows", "1000000"], None, 300),
    ("sensor_scale", "sensor_scale_bench.py", ["--ticks", "2"], None, 300),
    (
        "file_size",
        "file_size_bench.py",
        ["--small-mb", "100", "--big-mb", "3072"],
        ["--small-mb", "0.5", "--big-mb", "1"],
        600,
    ),
    ("delta", "delta_bench.py", ["--rows", "10000000"], ["--rows", "100000"], 300),
    ("crash_soak", "crash_soak.py", ["--kills", "10"], ["--kills", "1"], 300),
    ("production", "production_bench.py", ["--files", "30"], None, 420),
]


def run_one(name: str, script: str, args: list[str], budget: int) -> tuple[list[dict], dict]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix=f"fc-bench-{name}-") as tmp:
        out = Path(tmp) / "rows.json"
        cmd = [sys.executable, str(BENCH / script), *args, "--rows-json", str(out)]
        print(f"\n=== {name}: {' '.join(cmd[1:])}  (load {os.getloadavg()[0]:.1f})", flush=True)
        started = time.monotonic()
        # its own process group, so a benchmark cut at its budget takes its sandbox/servers with it
        proc = subprocess.Popen(cmd, env=env, start_new_session=True)
        try:
            rc = proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            rc = "timeout"
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        seconds = time.monotonic() - started
        rows = json.loads(out.read_text()) if out.exists() else []
    info = {"bench": name, "args": args, "rc": rc, "seconds": round(seconds, 1)}
    if rc != 0:
        why = f"ran past its {budget} s budget" if rc == "timeout" else f"exited with {rc}"
        rows.append(table_rows.row(f"{name} benchmark {why}", None, None, "completes", False))
    for r in rows:
        r["bench"] = name
    return rows, info


def merged(old: dict, new: dict) -> dict:
    """Today's results with the re-run benchmarks' rows replaced, in table order; each run keeps its own
    timestamp and load in `benches` (`reruns` lists when and which)."""
    again = {b["bench"] for b in new["benches"]}
    order = {b[0]: i for i, b in enumerate(BENCHES)}
    rows = [r for r in old["rows"] if r["bench"] not in again] + new["rows"]
    benches = [b for b in old["benches"] if b["bench"] not in again]
    benches += [
        {**b, "started": new["started"], "load_avg_start": new["load_avg_start"]} for b in new["benches"]
    ]
    return {
        **old,
        "rows": sorted(rows, key=lambda r: order.get(r["bench"], len(order))),
        "benches": sorted(benches, key=lambda b: order.get(b["bench"], len(order))),
        "reruns": old.get("reruns", []) + [{"started": new["started"], "benches": sorted(again)}],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, quick benchmarks only")
    ap.add_argument("--only", help="comma-separated benchmark names: " + ",".join(b[0] for b in BENCHES))
    ap.add_argument("--results-dir", type=Path, default=BENCH / "results")
    ap.add_argument(
        "--update",
        action="store_true",
        help="replace only these benchmarks' rows in today's results file (re-running one after a fix)",
    )
    ap.add_argument("--max-minutes", type=float, default=29.0, help="whole-run cap: later benchmarks are cut")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    started, t0 = datetime.now(UTC), time.monotonic()
    load_start = os.getloadavg()
    rows, runs = [], []
    chosen = [b for b in BENCHES if (not only or b[0] in only) and (not args.smoke or b[3] is not None)]
    if args.smoke:
        # smoke sizes measure nothing worth isolating: run the benchmarks at once, rows kept in table order
        with ThreadPoolExecutor(len(chosen) or 1) as pool:
            done = list(pool.map(lambda b: run_one(b[0], b[1], b[3], b[4]), chosen))
        for r, info in done:
            rows += r
            runs.append(info)
        chosen = []
    for name, script, full, _smoke, budget in chosen:
        left = args.max_minutes * 60 - (time.monotonic() - t0)
        if left < 30:
            rows.append(
                {
                    **table_rows.row(
                        f"{name} benchmark not run: the {args.max_minutes:g}-minute run was used up",
                        None,
                        None,
                        "runs",
                        False,
                    ),
                    "bench": name,
                }
            )
            continue
        r, info = run_one(name, script, full, int(min(budget, left)))
        rows += r
        runs.append(info)
    wall = time.monotonic() - t0
    load_end = os.getloadavg()
    results = {
        "date": started.date().isoformat(),
        "started": started.isoformat(timespec="seconds"),
        "wall_s": round(wall, 1),
        "smoke": args.smoke,
        "cores": os.cpu_count(),
        "load_avg_start": [round(x, 1) for x in load_start],
        "load_avg_end": [round(x, 1) for x in load_end],
        "benches": runs,
        "rows": rows,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    path = args.results_dir / f"{results['date']}{'-smoke' if args.smoke else ''}.json"
    header = (
        f"`make bench` {started:%Y-%m-%d %H:%M} UTC, {wall / 60:.1f} min, {os.cpu_count()} cores, load average "
        f"{load_start[0]:.1f} at start, {load_end[0]:.1f} at end (other processes share the machine)"
    )
    if args.update and path.exists():
        results, header = merged(json.loads(path.read_text()), results), f"{header}; merged into {path.name}"
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\n{header}\n")
    print(table_rows.table(results["rows"]))
    print(f"\nwritten to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
