"""Run a file through validation and return what a user would look at: totals, accepted rows, rejects."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
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
