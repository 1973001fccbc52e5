"""The inventory sender builds a chunk's Batch API entities column by column: the same entities, byte for
byte in JSON, as `inventory_entity` builds from each row."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pyarrow as pa
import pytest

from fc_assets.ingestion.deliver.senders import inventory_entities, inventory_entity


def per_row(table: pa.Table) -> list[dict]:
    return [inventory_entity(r, "7") for r in table.to_pylist()]


def test_chunk_entities_equal_the_row_by_row_ones():
    eta = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
    table = pa.table(
        {
            "sku_ref": ["A", "B", "C", "D", "E"],
            "location_ref": ["L1", "L1", "L2", "L2", "L3"],
            "qty": pa.array([5, None, 0, 2_147_483_647, 3], pa.int64()),  # a delete needs no qty
            "status": ["RESERVED", None, "", "AVAILABLE", None],
            "expected_on": pa.array([eta, None, eta, None, None], pa.timestamp("us", "UTC")),
            "condition": [None, "NEW", "", "USED", None],
            "_row": pa.array([1, -1, 3, 4, 5], pa.int64()),
            "_op": ["upsert", "delete", "upsert", "upsert", "upsert"],
        }
    )
    got = inventory_entities(table, "7")
    assert orjson.dumps(got) == orjson.dumps(per_row(table))
    assert got[1]["qty"] == 0 and got[1]["attributes"] == {"condition": "NEW"}
    assert got[0]["attributes"] == {"expectedOn": "2025-03-01T12:30:00+00:00"} and "attributes" not in got[4]
    # only the required columns (no _op, status, dates): every row an upsert with the defaults
    bare = table.select(["sku_ref", "location_ref", "qty"]).filter(pa.array([True, False, True, True, True]))
    assert orjson.dumps(inventory_entities(bare, "7")) == orjson.dumps(per_row(bare))
    assert inventory_entities(bare.slice(0, 0), "7") == []


@pytest.mark.parametrize(
    "kind",
    [
        pa.timestamp("us", "UTC"),
        pa.timestamp("us", "+00:00"),
        pa.timestamp("ms", "UTC"),
        pa.timestamp("us", "Europe/Paris"),
        pa.date32(),
    ],
)
def test_dates_as_isoformat_whatever_their_type(kind):
    """UTC microsecond timestamps are formatted by Arrow, the rest by Python: the same text either way."""
    values = [
        datetime(2025, 3, 1, 12, 30, 0, 123_000, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        None,
        datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC),
    ]
    if kind == pa.timestamp("us", "Europe/Paris"):  # pyarrow cannot shift years 1 and 9999 to the zone
        values = [v if v is None or 1 < v.year < 9999 else datetime(2000, 1, 1, tzinfo=UTC) for v in values]
    if kind == pa.date32():
        values = [v.date() if v else None for v in values]
    elif kind.unit == "ms":
        values = [v.replace(microsecond=v.microsecond // 1000 * 1000) if v else None for v in values]
    n = len(values)
    table = pa.table(
        {
            "sku_ref": ["S"] * n,
            "location_ref": ["L"] * n,
            "qty": [1] * n,
            "expected_on": pa.array(values, kind),
        }
    )
    got = inventory_entities(table, "7")
    assert orjson.dumps(got) == orjson.dumps(per_row(table))
    assert [e.get("attributes", {}).get("expectedOn") for e in got][3] is None


def test_a_missing_quantity_on_an_upsert_fails_as_row_by_row():
    table = pa.table({"sku_ref": ["A"], "location_ref": ["L"], "qty": pa.array([None], pa.int64())})
    with pytest.raises(TypeError):
        per_row(table)
    with pytest.raises(TypeError):
        inventory_entities(table, "7")
