"""Run a file through validation and return what a user would look at: totals, accepted rows, rejects."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from fc_assets.ingestion.feeds import Feed
from fc_assets.ingestion.read.rejects import RejectsWriter
from fc_assets.ingestion.read.validate import ValidationReport, validate_file


@dataclass
class Outcome:
    report: ValidationReport
    accepted: pa.Table
    rejects: list[tuple[int, str, str, str]]

    def column(self, name: str) -> list[Any]:
        return self.accepted.column(name).to_pylist()


def parse_rejects(data: bytes) -> list[tuple[int, str, str, str]]:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows[0] == ["row", "field", "value", "reason"]
    return [(int(r[0]), r[1], r[2], r[3]) for r in rows[1:]]


def run(feed: Feed, source: Any, **kwargs: Any) -> Outcome:
    sink = io.BytesIO()
    writer = RejectsWriter(sink)
    batches = validate_file(feed, source, rejects_sink=writer, **kwargs)
    table = pa.Table.from_batches(list(batches), schema=feed.arrow_schema)
    writer.close()
    assert batches.report.complete
    return Outcome(batches.report, table, parse_rejects(sink.getvalue()))


FC_ASSETS = str(Path(sys.executable).parent / "fc-assets")

# The command runs as the grandchild of a small Python process that caps its address space and reports its
# peak RSS: a process exec'd straight from this (pytest, often 400+ MB under xdist) starts with the parent's
# RSS high-water mark in its own ru_maxrss (Linux carries it over fork and exec), which hid the command's.
MEASURE = """
import json, resource, subprocess, sys
limit, result = int(sys.argv[1]), sys.argv[2]
cap = lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
code = subprocess.run(sys.argv[3:], preexec_fn=cap).returncode
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
open(result, "w").write(json.dumps({"code": code, "peak_mb": peak_kb / 1024}))
"""


def check_files_measured(feed: str, paths: dict[str, Path], address_space: int) -> dict[str, tuple]:
    """`fc-assets check-file FEED PATH` on each file, in parallel, each in an address space capped at
    `address_space` bytes: per name (exit code, stdout, stderr, peak RSS in MB)."""
    commands = {name: [FC_ASSETS, "check-file", feed, str(path)] for name, path in paths.items()}
    return run_measured(
        commands, address_space, {name: path.with_name(path.name) for name, path in paths.items()}
    )


def run_measured(
    commands: dict[str, list[str]], address_space: int, outputs: dict[str, Path]
) -> dict[str, tuple]:
    """Each command, in parallel, under MEASURE: per name (exit code, stdout, stderr, peak RSS in MB); its
    output files are `outputs[name]` + `.out`, `.err`, `.rss.json`."""
    procs = {}
    for name, argv in commands.items():
        base = outputs[name]
        out = open(base.with_name(f"{base.name}.out"), "w+")  # noqa: SIM115
        err = open(base.with_name(f"{base.name}.err"), "w+")  # noqa: SIM115
        measured = base.with_name(f"{base.name}.rss.json")
        cmd = [sys.executable, "-c", MEASURE, str(address_space), str(measured)]
        proc = subprocess.Popen(
            [*cmd, *argv], stdout=out, stderr=err, env={**os.environ, "PYTHONWARNINGS": "ignore"}
        )
        procs[name] = (proc, out, err, measured)
    results = {}
    for name, (proc, out, err, measured) in procs.items():
        proc.wait()
        assert proc.returncode == 0, f"{name}: the measuring process failed ({proc.returncode})"
        child = json.loads(measured.read_text())
        out.seek(0), err.seek(0)
        results[name] = (child["code"], out.read(), err.read(), child["peak_mb"])
        out.close(), err.close()
    return results
