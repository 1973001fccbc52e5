"""The field rules run twice from one declaration (rules.py): as Arrow masks that find a chunk's rejects,
and as the pandera schema. On the corpus, pandera alone must reach exactly the verdicts of the masks."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pandera.pandas as pdv
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from fc_assets.ingestion.feeds import get_feed
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


@pytest.mark.parametrize(
    ("feed_name", "data"),
    [
        ("inventory", inventory_csv(",")),
        ("inventory", EXTRA_INVENTORY),
        ("products", PRODUCTS_CSV),
        ("locations", LOCATIONS_CSV),
    ],
    ids=["inventory-corpus", "inventory-extra", "products", "locations"],
)
def test_pandera_alone_agrees_with_the_arrow_masks(feed_name, data):
    feed = get_feed(feed_name)
    mapped = pa.Table.from_batches(list(read_file(feed, io.BytesIO(data), name="x.csv"))).combine_chunks()
    mapped = mapped.to_batches()[0]
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
