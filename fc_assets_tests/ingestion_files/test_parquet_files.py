"""Parquet: any physical type that maps onto the canonical fields, row groups iterated, gzip and streams.

connector-pitfalls §2 item 18: the SDK's Parquet path inferred schemas from the first record, wrote
unreadable empty files and turned INT64 into strings."""

from __future__ import annotations

import datetime as dt
import gzip
import io
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fc_assets.ingestion.feeds import get_feed
from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets_tests.ingestion_files.corpus import ForwardOnly
from fc_assets_tests.ingestion_files.helpers import run

INVENTORY = get_feed("inventory")


def write(path, table: pa.Table, **kw) -> None:
    pq.write_table(table, path, **kw)


def stock(qty: pa.Array) -> pa.Table:
    n = len(qty)
    return pa.table(
        {
            "SKU": pa.array([f"{i:05d}" for i in range(n)]),
            "location": pa.array([{"ref": f"L{i % 2}"} for i in range(n)]),  # a struct: location.ref
            "qty": qty,
        }
    )


@pytest.mark.parametrize(
    ("qty", "accepted", "rejects"),
    [
        (
            pa.array([5, None, -1, 2**31], pa.int64()),
            [5],
            [
                (2, "qty", "", "required value is missing"),
                (3, "qty", "-1", "must be between 0 and 2147483647"),
                (4, "qty", "2147483648", "must be between 0 and 2147483647"),
            ],
        ),
        (
            pa.array([Decimal("5"), Decimal("12"), None, Decimal("7")], pa.decimal128(10, 0)),
            [5, 12, 7],
            [(3, "qty", "", "required value is missing")],
        ),
        (
            pa.array([Decimal("5.00"), Decimal("3.50"), Decimal("0.00"), None], pa.decimal128(12, 2)),
            [5, 0],
            [(2, "qty", "3.50", "not a whole number"), (4, "qty", "", "required value is missing")],
        ),
        (
            pa.array(["007", "12abc", "N/A", " 9 "]),
            [7, 9],
            [(2, "qty", "12abc", "not a whole number"), (3, "qty", "N/A", "not a whole number")],
        ),
        (
            pa.array([12.0, 3.5, float("nan"), 1e3], pa.float64()),
            [12, 1000],
            [(2, "qty", "3.5", "not a whole number"), (3, "qty", "nan", "not a whole number")],
        ),
        (pa.array([1, 2, 3, 4], pa.int8()).dictionary_encode(), [1, 2, 3, 4], []),
    ],
    ids=["int64", "decimal0", "decimal2", "string", "float64", "dictionary"],
)
def test_qty_of_any_physical_type(tmp_path, qty, accepted, rejects):
    path = tmp_path / "stock.parquet"
    write(path, stock(qty), row_group_size=2)  # two row groups
    out = run(INVENTORY, path, chunk_rows=3)
    assert out.report.format == "parquet"
    assert out.column("qty") == accepted
    assert out.rejects == rejects
    assert out.column("location_ref")[0] == "L0"  # flattened struct matched the alias


def test_dates_timestamps_and_round_trip_of_the_typed_output(tmp_path):
    table = pa.table(
        {
            "sku": ["00001", "00002", "00003"],
            "location_ref": ["L", "L", "L"],
            "qty": pa.array([1, 2, 3], pa.int32()),
            "expected_on": pa.array([dt.date(2025, 1, 15), None, dt.date(2025, 2, 28)], pa.date32()),
            "updated": pa.array([dt.datetime(2025, 1, 1, 12, tzinfo=dt.UTC)] * 3, pa.timestamp("ms", "UTC")),
        }
    )
    src = tmp_path / "in.parquet"
    write(src, table)
    out = run(INVENTORY, src)
    assert out.column("sku_ref") == ["00001", "00002", "00003"]
    assert [v.isoformat() if v else None for v in out.column("expected_on")] == [
        "2025-01-15T00:00:00+00:00",
        None,
        "2025-02-28T00:00:00+00:00",
    ]
    back = tmp_path / "accepted.parquet"
    pq.write_table(out.accepted, back)
    read = pq.read_table(back)  # from a path (design §6)
    assert read.schema.field("qty").type == pa.int64() and read.column("qty").to_pylist() == [1, 2, 3]


def test_timestamp_columns_as_dates(tmp_path):
    table = pa.table(
        {
            "sku": ["A"],
            "location": ["L"],
            "qty": [1],
            "expected_on": pa.array([dt.datetime(2025, 1, 15, 9, 30)], pa.timestamp("us", "Asia/Tokyo")),
        }
    )
    path = tmp_path / "t.parquet"
    write(path, table)
    assert run(INVENTORY, path).column("expected_on")[0].isoformat() == "2025-01-15T09:30:00+00:00"


def test_gzip_and_streams_and_empty_files(tmp_path):
    buf = io.BytesIO()
    pq.write_table(stock(pa.array([1, 2, 3], pa.int64())), buf)
    data = buf.getvalue()
    gz = tmp_path / "stock.parquet.gz"
    gz.write_bytes(gzip.compress(data))
    assert run(INVENTORY, gz).column("qty") == [1, 2, 3]
    assert run(INVENTORY, ForwardOnly(data), name="stock.parquet").column("qty") == [1, 2, 3]
    assert run(INVENTORY, io.BytesIO(data), name="stock.parquet").column("qty") == [1, 2, 3]
    empty = tmp_path / "empty.parquet"
    write(empty, stock(pa.array([], pa.int64())))
    out = run(INVENTORY, empty)
    assert (out.report.rows, out.report.accepted, out.report.failed) == (0, 0, False)


def test_not_parquet_and_missing_columns_are_unreadable(tmp_path):
    fake = tmp_path / "fake.parquet"
    fake.write_bytes(b"PAR1" + b"\0" * 8)  # the SDK's 12-byte stub for an empty file
    with pytest.raises(FileUnreadable, match="fake.parquet: not a readable Parquet file"):
        run(INVENTORY, fake)
    other = tmp_path / "other.parquet"
    write(other, pa.table({"sku": ["A"], "qty": [1]}))
    with pytest.raises(FileUnreadable, match="missing required column.*location_ref"):
        run(INVENTORY, other)


def test_an_empty_file_of_the_wrong_shape_is_still_refused(tmp_path):
    path = tmp_path / "empty-other.parquet"
    write(path, pa.table({"colour": pa.array([], pa.string())}))
    with pytest.raises(FileUnreadable, match="missing required column"):
        run(INVENTORY, path)
