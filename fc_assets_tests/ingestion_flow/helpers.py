"""Test helpers: a plain CSV inventory validator (stand-in for the feed validators in unit tests) and files."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from fc_assets.ingestion.deliver.delta import DeltaSpec
from fc_assets.ingestion.deliver.files import FileLocation
from fc_assets.ingestion.deliver.pipeline import FeedPlan, ValidationSummary
from fc_assets.resources.storage import Lake

INV_COLS = ("sku_ref", "location_ref", "qty", "status")
SCHEMA = pa.schema(
    [
        ("sku_ref", pa.string()),
        ("location_ref", pa.string()),
        ("qty", pa.int64()),
        ("status", pa.string()),
        ("_row", pa.int64()),
    ]
)


def simple_csv_validator(
    path: Path, name: str, lake: Lake, accepted_rel: str, rejects_rel: str, threshold: float = 0.05
) -> ValidationSummary:
    rows, bad = [], []
    with open(path, newline="") as f:
        for i, r in enumerate(csv.DictReader(f), start=1):
            try:
                rows.append(
                    (r["sku_ref"], r["location_ref"], int(r["qty"]), r.get("status") or "AVAILABLE", i)
                )
            except (ValueError, KeyError) as e:
                bad.append((i, "qty", r.get("qty"), f"not an integer: {e}"))
    t = pa.Table.from_pylist([dict(zip(SCHEMA.names, r, strict=True)) for r in rows], SCHEMA)
    with lake.atomic_write(accepted_rel) as out:
        pq.write_table(t, out)
    if bad:
        buf = io.StringIO()
        csv.writer(buf).writerows([("row", "field", "value", "reason"), *bad])
        lake.write_bytes(buf.getvalue().encode(), rejects_rel)
    total = len(rows) + len(bad)
    failed = total > 0 and len(bad) / total > threshold
    return ValidationSummary(
        total,
        len(rows),
        len(bad),
        failed,
        "too many rejects" if failed else None,
        rejects_rel if bad else None,
    )


def inventory_plan(locations: tuple[FileLocation, ...], **delta) -> FeedPlan:
    return FeedPlan(
        "inventory",
        locations,
        INV_COLS,
        DeltaSpec(("sku_ref", "location_ref"), **delta),
        "batch_inventory",
        simple_csv_validator,
    )


def inventory_csv(rows: list[tuple[str, str, int]]) -> bytes:
    lines = ["sku_ref,location_ref,qty,status"] + [f"{s},{loc},{q},AVAILABLE" for s, loc, q in rows]
    return ("\n".join(lines) + "\n").encode()
