"""Bounded memory: a validated row group is freed when the writer drops it, not at the next full GC."""

from __future__ import annotations

import dataclasses
import gc
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from fc_assets.extraction.entities import ORDERS
from fc_assets.extraction.extract import extract_periods
from fc_assets.extraction.node_batches import BatchBuilder
from fc_assets.extraction.parquet_writer import RowGroupWriter
from fc_assets.extraction.validation import ValidationReport
from fc_assets.extraction.windows import DAY, Window
from fc_assets.resources.storage import Lake
from fc_assets_tests.extraction.fake_fluent import FakeFluent, make_orders

D1 = datetime(2025, 3, 1, tzinfo=UTC)


def orders_batch(n: int, *, valid: bool = True) -> pa.RecordBatch:
    fake = FakeFluent({"orders": make_orders(D1, n, items=3)})
    nodes = [fake._shape(o, {"itemsFirst": 50}) for o in fake.nodes["orders"]]
    if not valid:
        for node in nodes[:5]:
            node["id"] = None  # not nullable: the failure path of the validation
    return BatchBuilder(ORDERS.columns).build(nodes)


@pytest.mark.parametrize("way", ["arrow", "pandera"])
def test_validated_row_groups_do_not_stay_alive_until_a_full_gc(way):
    def on_row_group(report):
        if way == "arrow":
            return lambda t: report.validate_rows(ORDERS, t)
        return lambda t: report.validate(ORDERS.pandera_schema, t, ORDERS.key)

    gc.collect()
    gc.disable()  # only reference counting: what a long run sees between rare full collections
    try:
        for valid in (True, False):
            report = ValidationReport()
            writer = RowGroupWriter(
                pa.BufferOutputStream(),
                ORDERS.arrow_schema,
                500,
                on_row_group(report),
            )
            batch = orders_batch(500, valid=valid)
            one_row_group = batch.get_total_buffer_size()
            base = pa.total_allocated_bytes()
            for _ in range(10):  # 10 row groups, each a fresh copy of the rows (as read from a spool)
                writer.write(pa.RecordBatch.from_pylist(batch.to_pylist(), schema=batch.schema))
            retained = pa.total_allocated_bytes() - base
            writer.close()
            assert report.rows == 5000
            assert report.passed is valid
            # one row group may still be referenced (writer buffers); ten would mean they are all kept
            assert retained < 2 * one_row_group, (retained, one_row_group)
    finally:
        gc.enable()


def test_a_run_with_many_row_groups_frees_them_as_it_goes(tmp_path):
    spec = dataclasses.replace(ORDERS, row_group_rows=200)
    lake = Lake(f"file://{tmp_path}/lake")
    fake = FakeFluent({"orders": make_orders(D1, 3000, items=2)})
    peak = 0
    real_validate = ValidationReport.validate_rows
    validated = 0

    def validate(self, spec, table):
        nonlocal peak, validated
        real_validate(self, spec, table)
        validated += 1
        peak = max(peak, pa.total_allocated_bytes())

    gc.collect()
    gc.disable()
    try:
        ValidationReport.validate_rows = validate
        base = pa.total_allocated_bytes()
        [result] = extract_periods(spec, [Window(D1, D1 + DAY)], client=fake, lake=lake, concurrency=2)
    finally:
        ValidationReport.validate_rows = real_validate
        gc.enable()
    assert result.row_groups == validated == 15
    row_group = orders_batch(200).get_total_buffer_size()
    assert peak - base < 4 * row_group, (peak - base, row_group)  # not 15 row groups
