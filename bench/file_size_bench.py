"""`fc-assets check-file inventory` from a small to a large input in CSV, JSONL and XML: peak memory flat, and
XML's speed against CSV's.

    python bench/file_size_bench.py                                   # 100 MB and 3 GB per format
    python bench/file_size_bench.py --big-mb 300                      # a quicker look
    python bench/file_size_bench.py --small-mb 1 --big-mb 5           # smoke size

Per format, an inventory file of about `--small-mb` and one of about `--big-mb` are generated into a temp
dir (one block of up to 250k rows made by pyarrow string kernels, written again and again with its SKUs
renumbered in place: 3 GB in ~15 s; 0.5 % of quantities garbage so the rejects path runs), each is checked
by the console command `fc-assets check-file inventory PATH` as a whole process, and the files are deleted
before the next format. Peak RSS is the child's own ru_maxrss (`os.wait4`; this process stays small, as a
child starts from its parent's high-water mark), rows per second the command's reported seconds (its
imports excluded).

Targets (issue 16): peak RSS(big) <= 1.3x RSS(small) in each format, 100 MB to 3 GB (what `make bench`
runs); XML >= 25 % of CSV's rows per second (at the big size). The 3 GB point fits the 30-minute run since
generating is a block repeated (was 40-110 s per format) and JSONL is read by `jsonl_fast` (was ~0.1M rows/s
line by line, 30M rows: ~5 minutes).
Below ~100 MB the readers' buffers are not yet full (CSV: ~340 MB at 30 MB, ~560 MB from 120 MB on).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import table_rows

FC_ASSETS = Path(sys.executable).parent / "fc-assets"


def generate(fmt: str, megabytes: float, out: Path) -> tuple[float, dict]:
    """Generate in a child: a process started by this one inherits this one's peak RSS as its own starting
    ru_maxrss (Linux carries the high-water mark across fork and exec), so this one must stay small.
    Returns the seconds and what was written (rows, rows with a bad quantity)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--generate", fmt, str(megabytes), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - started, json.loads(proc.stdout.strip().splitlines()[-1])


def write_file(fmt: str, megabytes: float, out: Path) -> dict:
    """Write an inventory file of about `megabytes` in `fmt`: one block of up to 250k rows is made (pyarrow
    string kernels), then written again and again with its SKUs renumbered in place (the 4 leading digits
    of `SKU-rrrriiiiii` are the repeat, so every SKU stays distinct), whole rows up to the size. Writing
    3 GB then takes seconds, not the 40-110 s per format of making every row anew."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    target = int(megabytes * 2**20)
    rng = np.random.default_rng(7)
    statuses = pa.array(["AVAILABLE", "reserved", "On_Order", "AVAILABLE"])

    def text(x) -> pa.Array:
        return pa.array(np.asarray(x).astype(str))

    head, sku_at, tail = {
        "csv": (b"sku,location,quantity,status,expected_on\n", 0, b""),
        "jsonl": (b"", len('{"sku":"'), b""),
        "xml": (
            b'<?xml version="1.0" encoding="UTF-8"?>\n<inventory>\n',
            len("<item><sku>"),
            b"</inventory>\n",
        ),
    }[fmt]
    chunk = 250_000 if target > 50 * 2**20 else 10_000
    idx = np.arange(chunk)
    qty = rng.integers(0, 100_000, chunk).astype(str).astype(object)
    bad = rng.random(chunk) < 0.005
    qty[bad] = rng.choice(["N/A", "12abc", "-1"], int(bad.sum()))
    sku = pc.binary_join_element_wise("SKU-0000", pc.utf8_lpad(text(idx), 6, "0"), "")
    loc = pc.binary_join_element_wise("LOC-", pc.utf8_lpad(text(idx % 997), 4, "0"), "")
    status = pc.take(statuses, pa.array(rng.integers(0, 4, chunk)))
    eta = text(np.where(rng.random(chunk) < 0.7, "", "2025-03-01"))
    q = text(qty)
    if fmt == "csv":
        parts = [sku, ",", loc, ",", q, ",", status, ",", eta, "\n"]
    elif fmt == "jsonl":
        parts = ['{"sku":"', sku, '","location":"', loc, '","quantity":"', q, '","status":"']
        parts += [status, '","expected_on":"', eta, '"}\n']
    else:
        parts = ["<item><sku>", sku, "</sku><location>", loc, "</location><quantity>", q]
        parts += ["</quantity><status>", status, "</status><expected_on>", eta, "</expected_on></item>\n"]
    rows = pc.binary_join_element_wise(*parts, "")
    offsets = np.frombuffer(rows.buffers()[1], np.int32, len(rows) + 1, rows.offset * 4).astype(np.int64)
    block = np.frombuffer(rows.buffers()[2], np.uint8)[offsets[0] : offsets[-1]].copy()
    offsets -= offsets[0]
    digits = offsets[:-1] + sku_at + len("SKU-")  # where each row's 4 repeat digits are
    bad_before = np.concatenate([[0], np.cumsum(bad)])
    written, made, bad_rows, r = 0, 0, 0, 0
    with open(out, "wb") as f:
        written += f.write(head)
        while written < target:
            if r > 9999:
                raise SystemExit("file too large for 4 repeat digits")
            for j, d in enumerate(f"{r:04d}".encode()):
                block[digits + j] = d
            n = min(chunk, int(np.searchsorted(offsets, target - written)))  # whole rows up to the size
            n = max(n, 1)
            written += f.write(memoryview(block)[: offsets[n]])
            made, bad_rows, r = made + n, bad_rows + int(bad_before[n]), r + 1
        f.write(tail)
    return {"rows": made, "bad": bad_rows}


def check(path: Path) -> dict:
    """`fc-assets check-file inventory PATH` as a whole process: its JSON line, wall time and own peak RSS."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([str(FC_ASSETS), "check-file", "inventory", str(path)], stdout=out, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"check-file {path} exited {proc.returncode}: {text[-2000:]}")
    return {**json.loads(text.strip().splitlines()[-1]), "wall": wall, "maxrss_mb": usage.ru_maxrss / 1024}


def growth(small: dict, big: dict) -> str:
    """Peak RSS added per MB of input: near 0 when memory is bounded (the ratio alone can hide a slope)."""
    if big["mb"] <= small["mb"]:
        return "growth n/a (same file size)"
    return f"growth {(big['maxrss_mb'] - small['maxrss_mb']) / (big['mb'] - small['mb']):.2f} MB RSS per MB of input"


def main() -> None:
    if sys.argv[1:2] == ["--generate"]:
        print(json.dumps(write_file(sys.argv[2], float(sys.argv[3]), Path(sys.argv[4]))))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small-mb", type=float, default=100)
    ap.add_argument("--big-mb", type=float, default=3072)
    ap.add_argument("--formats", default="csv,jsonl,xml")
    table_rows.add_argument(ap)
    args = ap.parse_args()
    out: list[dict] = []
    rates: dict[str, tuple[float, int]] = {}

    def size(mb: float) -> str:
        return f"{mb / 1024:.3g} GB" if mb >= 1024 else f"{mb:.3g} MB"

    for fmt in args.formats.split(","):
        got = {}
        for label, mb in (("small", args.small_mb), ("big", args.big_mb)):
            with tempfile.TemporaryDirectory(prefix="fc-file-size-bench-") as tmp:
                path = Path(tmp) / f"inventory.{fmt}"
                gen, made = generate(fmt, mb, path)
                got[label] = r = {**check(path), "mb": path.stat().st_size / 2**20}
            # every record read, every bad quantity rejected: a reader that drops records is not faster
            if (r["rows"], r["rejected"]) != (made["rows"], made["bad"]):
                raise SystemExit(
                    f"{fmt} {mb} MB: check-file read {r['rows']:,} rows, rejected "
                    f"{r['rejected']:,}; the file has {made['rows']:,} rows, {made['bad']:,} bad"
                )
            print(
                f"{fmt} {r['mb']:,.0f} MB: {r['rows']:,} rows ({r['rejected']:,} rejected) in {r['seconds']:.2f} s "
                f"= {r['rows'] / r['seconds'] / 1e6:.2f} M rows/s, {r['wall']:.2f} s wall, peak RSS "
                f"{r['maxrss_mb']:.0f} MB (generated in {gen:.1f} s, load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
        small, big = got["small"], got["big"]
        rates[fmt] = (big["rows"] / big["seconds"], big["rows"])
        out.append(
            table_rows.row(
                f"check-file {fmt} peak RSS, {size(big['mb'])} ({big['rows']:,} rows) vs "
                f"{size(small['mb'])} ({small['rows']:,} rows)",
                big["maxrss_mb"],
                small["maxrss_mb"],
                "ratio <= 1.3",
                big["maxrss_mb"] <= 1.3 * small["maxrss_mb"],
                unit="MB",
                note=f"whole process; {rates[fmt][0] / 1e6:.2f} M rows/s; {growth(small, big)}",
            )
        )
        table_rows.emit(args.rows_json, out)  # a format done is kept if a later one runs past the budget
    if "csv" in rates and "xml" in rates:
        (xml, n), (csv, _) = rates["xml"], rates["csv"]
        out.append(
            table_rows.row(
                f"check-file XML rows/s vs CSV's, {size(args.big_mb)} each ({n:,} XML rows)",
                xml / 1e6,
                csv / 1e6,
                ">= 0.25 (XML >= 25 % of CSV's rate)",
                xml >= 0.25 * csv,
                unit="M rows/s",
            )
        )
    table_rows.emit(args.rows_json, out)


if __name__ == "__main__":
    main()
