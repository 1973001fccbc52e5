"""The rules run two ways from one declaration: field rules (rules.py) and row rules (`RowRule.failing`) as
Arrow masks, which validate every chunk without pandas, and the same rules as the feed's pandera schema.
On the corpus and on generated rows (most of them good, many with one bad value or a broken row rule),
pandera must reach exactly the verdicts of the masks, and a chunk validated either way gives the same
accepted rows, rejects file rows, reasons and rejected keys."""

from __future__ import annotations

import dataclasses
import io
import random

import numpy as np
import pandas as pd
import pandera.pandas as pdv
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from fc_assets.ingestion.feeds import FEEDS, get_feed
from fc_assets.ingestion.read.conversions import convert
from fc_assets.ingestion.read.readers import read_file
from fc_assets.ingestion.read.rules import MISSING, column_rules
from fc_assets.ingestion.read.validate import ChunkValidator, schema_for
from fc_assets_tests.ingestion_files.corpus import inventory_csv
from fc_assets_tests.ingestion_files.test_products_locations import LOCATIONS_CSV, PRODUCTS_CSV

EXTRA_INVENTORY = (
    b"sku,location,qty,status,condition\n"
    + b"\n".join(
        [
            b"A,L,1,bogus,NEW",
            b"," + b"x" * 300 + b",2,,",
            b"B,L,3,DAMAGED," + b"c" * 256,
            b"C,,,,",
        ]
    )
    + b"\n"
)


# per kind, values that pass its conversion and the usual rules, and values that break one of them
GOOD = {
    "text": ["A1", "Shirt", "ünïcode", "P1"],
    "code": ["X", "ab"],
    "int": ["0", "5", "2147483647", "007"],
    "decimal": ["0", "19.90", "45.5", "-0.5"],
    "time": ["0", "0800", "0900", "1730", "18:00", "2359"],
    "bool": ["yes", "no", "true", "0"],
    "datetime": ["2025-03-01", "2025-03-01T10:00:00Z", "2025-03-01 10:00+02:00"],
    "list": ["A|B", "X", '["a"]'],
}
BAD = {
    "text": ["x" * 256, "é" * 256],
    "code": ["x" * 256],
    "int": ["-1", "12abc", "N/A", "2147483648", "1e3"],
    "decimal": ["abc", "-181", "91", "1e3", "-1"],
    "time": ["25:00", "1860", "2400", "ab"],
    "bool": ["maybe"],
    "datetime": ["2025-02-31", "31/02/2025", "soon"],
    "list": [],
}
FIELD_GOOD = {  # fields whose good values are narrower than their kind's
    "status": ["AVAILABLE", "reserved", "On_Order", ""],
    "type": ["STANDARD", "variant", "VARIANT", ""],
    "gtin": ["00012345678905", "12345678", ""],
    "parent_ref": ["", "P1"],
    "price": ["", "19.90", "0"],
    "special_price": ["", "14.50"],
    "currency": ["", "EUR", "gbp"],
    "special_currency": ["", "USD"],
    "tax_country": ["", "GB"],
    "email": ["", "a@b.co"],
    "time_zone": ["", "Europe/London", "UTC"],
    "latitude": ["51.5", "-90", "0"],
    "longitude": ["-0.12", "180", "10"],
    "country": ["GB", ""],
}
FIELD_BAD = {
    "status": ["bogus"],
    "type": ["BUNDLE"],
    "gtin": ["123", "12345678901234567"],
    "currency": ["EURO", "E1"],
    "special_currency": ["US"],
    "tax_country": ["GBR"],
    "email": ["nope", "a@b"],
    "time_zone": ["Mars/Base"],
}


def generated_csv(feed_name: str, rows: int, seed: int) -> bytes:
    """`rows` random rows of the feed's canonical columns, of good values (which may still break a row rule)
    except, in about half the rows, one to three values that break a field rule (or are missing); about
    one row in twenty with a wrong field count."""
    feed, rng = get_feed(feed_name), random.Random(seed)
    names = [f.name for f in feed.fields] + (["attr_colour"] if feed.attributes else [])
    lines = [",".join(names)]
    for _ in range(rows):
        broken = set(rng.sample(range(len(feed.fields)), rng.choice([0, 0, 0, 1, 1, 2, 3])))
        values = []
        for i, f in enumerate(feed.fields):
            good = FIELD_GOOD.get(f.name) or GOOD[f.kind] + ([] if f.required else [""])
            if f.kind == "time":  # a day that closes before it opens in about one row of three
                good = (
                    ["", "0", "0800", "0900"]
                    if f.name.endswith("_start")
                    else ["", "18:00", "2359", "0700", "08:00"]
                )
            bad = FIELD_BAD.get(f.name, []) + BAD[f.kind] + ([""] if f.required else [])
            values.append(rng.choice(bad if i in broken and bad else good))
        if feed.attributes:
            values.append(rng.choice(["", "Blue"]))
        if rng.random() < 0.05:
            values.append("extra")
        lines.append(
            ",".join('"' + v.replace('"', '""') + '"' if "," in v or '"' in v else v for v in values)
        )
    return ("\n".join(lines) + "\n").encode()


CASES = [
    ("inventory", inventory_csv(",")),
    ("inventory", EXTRA_INVENTORY),
    ("products", PRODUCTS_CSV),
    ("locations", LOCATIONS_CSV),
    *((name, generated_csv(name, 1500, seed)) for name in sorted(FEEDS) for seed in (1, 2)),
]
CASE_IDS = [
    "inventory-corpus",
    "inventory-extra",
    "products",
    "locations",
    *(f"{name}-generated-{seed}" for name in sorted(FEEDS) for seed in (1, 2)),
]


def _mapped(feed, data: bytes) -> pa.RecordBatch:
    mapped = pa.Table.from_batches(list(read_file(feed, io.BytesIO(data), name="x.csv"))).combine_chunks()
    return mapped.to_batches()[0]


@pytest.mark.parametrize(("feed_name", "data"), CASES, ids=CASE_IDS)
def test_pandera_alone_agrees_with_the_arrow_masks(feed_name, data):
    feed = get_feed(feed_name)
    mapped = _mapped(feed, data)
    by_masks, unconverted, typed = set(), set(), []
    for f in feed.fields:
        result = convert(f, mapped.column(f.name), feed.timezone)
        typed.append(result.values)
        failed = np.zeros(mapped.num_rows, bool)
        for mask, _ in result.failures:
            failed |= mask
        unconverted |= {(int(i), f.name) for i in np.flatnonzero(failed)}
        for rule in column_rules(f):
            mask = pc.fill_null(rule.failing(result.values), False).to_numpy(zero_copy_only=False) & ~failed
            by_masks |= {(int(i), f.name, rule.reason) for i in np.flatnonzero(mask)}
    if feed.attributes:
        typed.append(mapped.column(feed.attributes.field))
    frame = pa.RecordBatch.from_arrays(typed, schema=ChunkValidator(feed).typed_schema).to_pandas(
        types_mapper=pd.ArrowDtype
    )
    column_only = pdv.DataFrameSchema(schema_for(feed).columns, strict=True)  # without the row rules
    try:
        column_only.validate(frame, lazy=True)
        cases = pd.DataFrame(columns=["index", "column", "check"])
    except pdv.errors.SchemaErrors as e:
        cases = e.failure_cases
    by_pandera = {
        (int(i), c, MISSING if k == "not_nullable" else k)
        for i, c, k in zip(cases["index"], cases["column"], cases["check"], strict=True)
        if (int(i), c) not in unconverted
    }
    assert by_masks  # each case has rejects to agree on
    assert by_pandera == by_masks


@pytest.mark.parametrize(("feed_name", "data"), CASES, ids=CASE_IDS)
def test_a_chunk_validated_without_pandera_is_the_same(feed_name, data):
    """The masks path (row rules as `RowRule.failing`, no pandas) against every row rule through pandera."""
    feed = get_feed(feed_name)
    mapped = _mapped(feed, data)
    masks, pandera = ChunkValidator(feed), ChunkValidator(feed, pandera=True)
    assert masks.schema is None  # every built-in row rule has its mask: pandera is not used at all
    ours, theirs = masks.run(mapped), pandera.run(mapped)
    assert ours.rows == theirs.rows and ours.rejected == theirs.rejected
    assert ours.accepted.equals(theirs.accepted)
    assert ours.rejects.equals(theirs.rejects)
    assert ours.reasons == theirs.reasons  # (row rules are counted in the feed's order, pandera's is its own)
    assert (ours.rejected_keys is None) == (theirs.rejected_keys is None)
    if ours.rejected_keys is not None:
        assert ours.rejected_keys.equals(theirs.rejected_keys)
    if len(data) > 20_000:  # a generated file: it breaks every row rule, and rows pass
        assert {f"{r.field}: {r.reason}" for r in feed.rules} <= set(ours.reasons)
        assert ours.rows / 10 < ours.accepted.num_rows < ours.rows


@pytest.mark.parametrize(("feed_name", "data"), CASES, ids=CASE_IDS)
def test_reject_lines_are_in_the_order_arrows_sort_gives(feed_name, data):
    """A chunk's reject lines are ordered with numpy (by row, the feed's field order, reason) unless records
    could not be parsed (then by Arrow's stable sort, `_sorted`): on chunks without those, Arrow's sort must
    not move a line."""
    validator = ChunkValidator(get_feed(feed_name))
    mapped = _mapped(validator.feed, data)
    parsed = mapped.filter(pc.is_null(mapped.column("_error")))
    rejects = validator.run(parsed).rejects
    assert len(set(rejects.column("reason").to_pylist())) > 1  # several reasons (and fields) to order
    assert validator._sorted(rejects).equals(rejects)


@pytest.mark.parametrize(
    ("feed_name", "data"),
    [*CASES, *((name, generated_csv(name, 6000, 3)) for name in sorted(FEEDS))],
    ids=[*CASE_IDS, *(f"{name}-generated-6000" for name in sorted(FEEDS))],
)
def test_a_chunk_checked_without_building_its_accepted_rows_has_the_same_verdicts(feed_name, data):
    """`run(keep=False)` (check-file without a Parquet file) only counts the accepted rows (and leaves the
    typed values of fields without rules, deduplicated ones from 4,096 rows, unspread): the counts, rejects,
    reasons and rejected keys are those of a chunk whose accepted rows are built."""
    validator = ChunkValidator(get_feed(feed_name))
    mapped = _mapped(validator.feed, data)
    built, counted = validator.run(mapped), validator.run(mapped, keep=False)
    assert counted.accepted is None
    assert counted.rows == built.rows and counted.rejected == built.rejected
    assert built.rejected == built.rows - built.accepted.num_rows > 0
    assert counted.rejects.equals(built.rejects) and counted.reasons == built.reasons
    assert counted.rejected_keys.equals(built.rejected_keys)


def test_a_row_rule_without_a_mask_goes_through_pandera_and_the_rest_stay_masks():
    feed = get_feed("products")
    no_mask = dataclasses.replace(feed.rules[0], failing=None)  # as a feed's own pandas-only rule would be
    mixed = dataclasses.replace(feed, rules=(no_mask, *feed.rules[1:]))
    mapped = _mapped(mixed, generated_csv("products", 1500, 4))
    validator = ChunkValidator(mixed)
    assert validator.row_masks == feed.rules[1:] and validator.schema is not None
    ours, masks_only = validator.run(mapped), ChunkValidator(feed).run(mapped)
    assert f"{no_mask.field}: {no_mask.reason}" in ours.reasons  # the pandera rule found its rows
    assert ours.accepted.equals(masks_only.accepted)
    assert ours.rejects.equals(masks_only.rejects)
    assert ours.reasons == masks_only.reasons
