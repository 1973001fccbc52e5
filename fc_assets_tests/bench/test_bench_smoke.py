"""`make bench`'s new benchmarks at smoke size, through `bench/run_all.py --smoke`: the TypeScript SDK comparison
(300 orders, 0 ms, one run each side) and the dlt comparison (300 rows; measured only when `make bench` has
installed dlt into bench/.venv-dlt, else its row says so) with the same CSV through the SDK's CSV parser and mapper, check-file's peak RSS from a 0.5 MB to a 1 MB file in
CSV and XML and XML's rate against CSV's, the inventory delta on 100,000 rows, and the crash soak with one
kill. Proves the harness end to end: each benchmark runs
as a process, its rows reach the one table and the results file, and nothing is dropped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SDK_PACKAGE = (
    ROOT
    / "fc_assets_tests"
    / "sdk"
    / "ts"
    / "node_modules"
    / "@fluentcommerce"
    / "fc-connect-sdk"
    / "package.json"
)


def test_run_all_smoke_prints_one_table_with_every_row(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run_all.py"), "--smoke", "--results-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    [results_file] = tmp_path.glob("*-smoke.json")
    results = json.loads(results_file.read_text())
    assert [b["bench"] for b in results["benches"]] == ["sdk", "dlt", "file_size", "delta", "crash_soak"]
    assert all(b["rc"] == 0 for b in results["benches"]), results["benches"]
    rows = results["rows"]
    works = [r["work"] for r in rows]
    sdk = [r for r in rows if r["bench"] == "sdk"]
    dlt = [r for r in rows if r["bench"] == "dlt"]
    assert len(sdk) == 2 and len(dlt) == 2, works
    by_bench = {b: [r for r in rows if r["bench"] == b] for b in ("file_size", "delta", "crash_soak")}
    # both sizes measured in each format (RSS in MB, whole process), and XML's rate against CSV's
    sizes = by_bench["file_size"]
    assert [r["target"] for r in sizes] == [
        "ratio <= 1.3",
        "ratio <= 1.3",
        "ratio <= 1.3",
        ">= 0.25 (XML >= 25 % of CSV's rate)",
    ]
    assert all(r["ours"] > 0 and r["baseline"] > 0 and r["met"] in (True, False) for r in sizes), sizes
    assert [r["work"].split(",")[0] for r in sizes[:3]] == [
        "check-file csv peak RSS",
        "check-file jsonl peak RSS",
        "check-file xml peak RSS",
    ]
    # the delta found its changed rows (asserted inside the benchmark) and reports time and peak RSS
    delta = by_bench["delta"]
    assert [(r["target"], r["unit"]) for r in delta] == [("< 20 s", "s"), ("< 4096 MB", "MB")], delta
    assert all(r["ours"] > 0 for r in delta) and "1,000 upserts found" in delta[0]["note"], delta
    # a kill that hit a running child, re-executed with the right outcome
    [soak] = by_bench["crash_soak"]
    assert soak["ours"] == 0 and soak["met"] is True and soak["target"] == "0 wrong outcomes", soak
    if shutil.which("node") and shutil.which("npm"):
        # measured side by side: both sides' wall and CPU, a ratio and a verdict (whatever it is on a busy box)
        assert all(r["ours"] > 0 and r["baseline"] > 0 and r["met"] in (True, False) for r in sdk), sdk
        assert {r["target"] for r in sdk} == {"ratio <= 1.0", "ratio <= 1.5"}
    d, sdk_csv = dlt
    if (ROOT / "bench" / ".venv-dlt" / "bin" / "python").is_file():
        assert d["ours"] > 0 and d["baseline"] > 0 and d["met"] in (True, False), d
    else:
        assert d["met"] is None and "not installed" in d["note"], d
    # the same CSV through the TypeScript SDK's CSV parser + mapper (installed by the sdk benchmark above)
    assert sdk_csv["target"] == "ratio <= 0.1" and "CSVParserService" in sdk_csv["work"], sdk_csv
    if shutil.which("node") and (SDK_PACKAGE).is_file():
        assert sdk_csv["ours"] > 0 and sdk_csv["baseline"] > 0 and sdk_csv["met"] in (True, False), sdk_csv
    else:
        assert sdk_csv["met"] is None and "missing" in sdk_csv["note"], sdk_csv
    # one table, one line per row, in the order of the results file
    table = proc.stdout[proc.stdout.index("| work | ours | baseline | ratio | target | met |") :].splitlines()
    lines = [ln for ln in table[2:] if ln.startswith("| ")]
    assert len(lines) == len(works)
    assert all(ln.startswith(f"| {w}") for ln, w in zip(lines, works, strict=True)), lines
