"""`BatchBuilder`'s Arrow conversion gives the same batch as the column-wise Python path, nulls included."""

from __future__ import annotations

import pyarrow as pa
import pytest

from fc_assets.extraction import columns as C
from fc_assets.extraction import node_batches as B
from fc_assets.extraction.entities import ORDERS

ITEM = {
    "id": "1",
    "ref": "L1",
    "status": "NEW",
    "quantity": 2,
    "price": 1.5,
    "paidPrice": 1.5,
    "taxPrice": 0.1,
    "totalPrice": 3.0,
    "currency": "AUD",
    "createdOn": "2026-01-01T00:00:00.000Z",
    "updatedOn": "2026-01-02T10:11:12.345678Z",
    "product": {"ref": "P1", "name": "Scarf"},
}

NODES = [
    {
        "id": "1",
        "ref": "O1",
        "workflowVersion": 3,
        "updatedOn": "2026-01-02T00:00:00.000Z",
        "totalPrice": 10.0,
        "customer": {"id": "c", "firstName": "Mia"},
        "fulfilmentChoice": {"id": "f", "deliveryAddress": {"city": "Perth"}},
        "attributes": [{"name": "a", "type": "JSON", "value": {"x": [1, 2]}}, None],
        "items": {
            "edges": [{"cursor": "x", "node": ITEM}, {"node": None}, {"node": {**ITEM, "product": None}}]
        },
    },
    {"id": "2", "customer": None, "fulfilmentChoice": {"deliveryAddress": None}, "items": None},
    {"id": "3", "items": {"edges": None}, "attributes": None},
    {"id": "4", "items": {"edges": []}, "attributes": []},
    {"id": "5", "extra": {"ignored": True}},
]


def python_path(columns, nodes) -> pa.RecordBatch:
    cache: dict = {}
    return pa.RecordBatch.from_arrays(
        [B._array(c, nodes, cache) for c in columns], schema=C.arrow_schema(columns)
    )


@pytest.mark.parametrize("nodes", [NODES, NODES[1:2], []])
def test_arrow_conversion_matches_python_path(nodes):
    batch = B.BatchBuilder(ORDERS.columns).build(nodes)
    batch.validate(full=True)
    assert batch.equals(python_path(ORDERS.columns, nodes))


def test_json_and_overlapping_paths_stay_on_the_python_path():
    columns = [
        C.Column("a", "a", json=True),
        C.Column("a_b", "a.b"),
        C.Column("x", "x.y"),
        C.Column("x_again", "x.y", C.INT),
    ]
    native = B._native_columns(columns)
    assert [c.name for c in native] == ["a_b", "x"]
    nodes = [{"a": {"b": "1"}, "x": {"y": "2"}}, {"a": None, "x": None}]
    with pytest.raises(pa.ArrowInvalid):
        B.BatchBuilder(columns).build(nodes)  # "2" is not an int64, on either path
    ok = [{"a": {"b": "1"}, "x": {"y": None}}, {"a": None}]
    assert B.BatchBuilder(columns).build(ok).equals(python_path(columns, ok))
