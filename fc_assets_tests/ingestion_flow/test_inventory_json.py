"""Differential test: the Batch API bodies the inventory sender builds with Arrow (inventory_json.py) are byte
for byte what `orjson.dumps` writes for the entities `inventory_entities` builds, on random hostile values."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pyarrow as pa
import pytest

from fc_assets.ingestion.deliver.inventory_json import arrow_entities_json
from fc_assets.ingestion.deliver.senders import entities_json, inventory_entities
from fc_assets.resources.fluent import FluentClient, SerializedEntities

# characters JSON escapes, and some it must not: DEL, non-ASCII, line/paragraph separators, astral plane
ALPHABET = [
    '"',
    "\\",
    "/",
    "\x00",
    "\x01",
    "\x08",
    "\t",
    "\n",
    "\x0c",
    "\r",
    "\x1f",
    "\x7f",
    " ",
    "a",
    "Z",
    "0",
]
ALPHABET += [
    "é",
    "ß",
    "\u2028",
    "\u2029",
    "\ufeff",
    "日本",
    "🙂",
    "\U0010ffff",
    "\\u0041",
    "'",
    "{",
    "]",
    ",",
]


def hostile_text(rng: random.Random) -> str | None:
    kind = rng.random()
    if kind < 0.15:
        return None
    if kind < 0.2:
        return ""
    if kind < 0.5:  # plain, as most real values are
        return f"SKU-{rng.randrange(10**9):09d}"
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(1, 12)))


def hostile_table(rng: random.Random, n: int, *, qty_type: pa.DataType) -> pa.Table:
    big = [0, 1, -1, 2**31, -(2**31) - 1, 2**53 + 1, 2**63 - 1, -(2**63)]
    if qty_type == pa.uint64():
        big = [0, 1, 2**63, 2**64 - 1]
    elif qty_type == pa.int32():
        big = [0, 1, -1, 2**31 - 1, -(2**31)]
    ops = [rng.choice(["upsert", "upsert", "delete", None]) for _ in range(n)]
    qty = [
        None if op == "delete" and rng.random() < 0.5 else rng.choice([*big, rng.randrange(100_000)])
        for op in ops
    ]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    eta = [
        None if rng.random() < 0.4 else epoch + timedelta(microseconds=rng.randrange(-(10**16), 10**17))
        for _ in range(n)
    ]
    return pa.table(
        {
            "sku_ref": pa.array([hostile_text(rng) for _ in range(n)], pa.string()),
            "location_ref": pa.array([hostile_text(rng) for _ in range(n)], pa.string()),
            "qty": pa.array(qty, qty_type),
            "status": pa.array(
                [rng.choice([None, "", "AVAILABLE", "RESERVED", hostile_text(rng)]) for _ in range(n)],
                pa.string(),
            ),
            "expected_on": pa.array(eta, pa.timestamp("us", "UTC")),
            "condition": pa.array(
                [rng.choice([None, "", "NEW", hostile_text(rng)]) for _ in range(n)], pa.string()
            ),
            "_row": pa.array(range(1, n + 1), pa.int64()),
            "_op": pa.array(ops, pa.string()),
        }
    )


def expected(table: pa.Table, rid: str = "7") -> bytes:
    return orjson.dumps(inventory_entities(table, rid))


@pytest.mark.parametrize("seed", range(24))
def test_arrow_bodies_equal_orjson_of_the_entities_on_hostile_values(seed):
    rng = random.Random(seed)
    table = hostile_table(
        rng, rng.choice([1, 7, 300]), qty_type=rng.choice([pa.int64(), pa.int32(), pa.uint64()])
    )
    fast = arrow_entities_json(table, "7")
    assert fast is not None  # the Arrow path, not the fallback, is what is compared
    assert fast == expected(table)
    # in pieces (a chunk as DeltaFile.chunks cuts it), large strings, fewer columns, an odd retailer id
    pieces = pa.concat_tables([table.slice(0, len(table) // 2), table.slice(len(table) // 2)])
    assert arrow_entities_json(pieces, "7") == expected(table)
    large = table.cast(
        pa.schema([f.with_type(pa.large_string()) if f.type == pa.string() else f for f in table.schema])
    )
    assert arrow_entities_json(large, 'r"\\1\n') == expected(table, 'r"\\1\n')
    for drop in (["_op"], ["expected_on"], ["condition"], ["status", "condition", "expected_on"]):
        part = table.drop_columns(drop)
        if "_op" in drop:  # every row an upsert: a qty each
            part = part.filter(pa.array([q is not None for q in part.column("qty").to_pylist()]))
        if part.num_rows:
            assert arrow_entities_json(part, "7") == expected(part), drop


def test_text_dates_and_all_null_columns():
    table = pa.table(
        {
            "sku_ref": ["A", "B\u0000", "C"],
            "location_ref": ["L", "L", None],
            "qty": [1, 2, 3],
            "status": pa.nulls(3, pa.string()),
            "expected_on": ["2025-01-01", None, 'x"y'],
            "condition": pa.nulls(3),
            "_op": pa.nulls(3),
        }
    )
    assert arrow_entities_json(table, "7") == expected(table)
    assert entities_json(table.slice(0, 0), "7") == b"[]" == expected(table.slice(0, 0))


@pytest.mark.parametrize(
    "column,values",
    [
        ("qty", pa.array([1.0, 2.5], pa.float64())),  # float qty: int() truncates, as before
        ("sku_ref", pa.array([1, 2], pa.int64())),  # refs that are not text
        ("expected_on", pa.array([datetime(2025, 1, 1, tzinfo=UTC), None], pa.timestamp("ms", "UTC"))),
        ("expected_on", pa.array([datetime(2025, 1, 1).date(), None], pa.date32())),
    ],
)
def test_other_column_types_fall_back_to_the_entities(column, values):
    table = pa.table({"sku_ref": ["A", "B"], "location_ref": ["L", "L"], "qty": [1, 2]})
    table = (
        table.set_column(table.column_names.index(column), column, values)
        if column in table.column_names
        else table.append_column(column, values)
    )
    assert arrow_entities_json(table, "7") is None
    assert entities_json(table, "7") == expected(table)


def test_a_missing_quantity_on_an_upsert_fails_as_before():
    table = pa.table({"sku_ref": ["A"], "location_ref": ["L"], "qty": pa.array([None], pa.int64())})
    with pytest.raises(TypeError):
        entities_json(table, "7")
    with_op = table.append_column("_op", pa.array(["upsert"]))
    with pytest.raises(TypeError):
        entities_json(with_op, "7")


def test_invalid_utf8_is_not_sent_as_is():
    bad = pa.Array.from_buffers(
        pa.string(), 1, [None, pa.py_buffer(b"\x00\x00\x00\x00\x02\x00\x00\x00"), pa.py_buffer(b"\xff\xfe")]
    )
    table = pa.table({"sku_ref": bad, "location_ref": ["L"], "qty": [1]})
    assert arrow_entities_json(table, "7") is None
    with pytest.raises(UnicodeDecodeError):
        entities_json(table, "7")


def test_send_batch_posts_the_serialised_entities_as_the_dicts_would_be():
    bodies: list[bytes] = []

    def api(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "token_type": "bearer", "expires_in": 3600})
        bodies.append(request.content)
        return httpx.Response(200, json={"id": "b1"})

    client = FluentClient("http://fake", "id", "secret", transport=httpx.MockTransport(api), max_retries=0)
    table = hostile_table(random.Random(99), 50, qty_type=pa.int64())
    entities = inventory_entities(table, "7")
    with client:
        assert client.send_batch("1", entities, catalogueRef="C:1") == "b1"
        serialised = SerializedEntities(entities_json(table, "7"), table.num_rows)
        assert client.send_batch("1", serialised, catalogueRef="C:1") == "b1"
    assert bodies[1] == bodies[0]
    assert orjson.loads(bodies[1])["entities"] == entities
