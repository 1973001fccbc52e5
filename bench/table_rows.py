"""The one row shape every benchmark reports, so `bench/run_all.py` can print a single table.

A row: the work measured (with its size), our figure, the baseline measured in the same run (or None when the
target is absolute), their ratio, the target in words and whether it was met. Benchmarks print their own
detail as before and, given `--rows-json PATH`, also write their rows there as a JSON list.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def row(
    work: str,
    ours: float | None,
    baseline: float | None,
    target: str,
    met: bool | None,
    *,
    unit: str = "s",
    ratio: float | None = None,
    note: str = "",
) -> dict:
    """One table row; `ratio` defaults to ours / baseline; `met=None` means not measured (e.g. tool missing)."""
    if ratio is None and ours is not None and baseline:
        ratio = ours / baseline
    return {
        "work": work,
        "ours": None if ours is None else round(ours, 3),
        "baseline": None if baseline is None else round(baseline, 3),
        "ratio": None if ratio is None else round(ratio, 4),
        "target": target,
        "met": met,
        "unit": unit,
        "note": note,
        "load_avg": round(os.getloadavg()[0], 1),
    }


def add_argument(parser) -> None:
    parser.add_argument("--rows-json", type=Path, help="also write the table rows here (JSON list)")


def emit(path: Path | None, rows: list[dict]) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(rows, indent=1) + "\n")


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit in ("B", "bytes"):
        return f"{value:,.0f} B"
    return f"{value:,.3g} {unit}".strip()


def table(rows: list[dict]) -> str:
    """Markdown table: work | ours | baseline | ratio | target | met."""
    lines = ["| work | ours | baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    for r in rows:
        met = {True: "met", False: "**NOT MET**", None: "not measured" if r["ours"] is None else "-"}[
            r["met"]
        ]
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3g}x"
        work = r["work"] + (f" ({r['note']})" if r.get("note") else "")
        lines.append(
            f"| {work} | {fmt(r['ours'], r['unit'])} | {fmt(r['baseline'], r['unit'])} | {ratio} "
            f"| {r['target']} | {met} |"
        )
    return "\n".join(lines)
