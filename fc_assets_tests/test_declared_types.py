"""Column and feed declarations name their types so the code location loads without pyarrow; what they build
on first use must be the Arrow types the data was always written with, and what is known at load (the UI's
column types, a feed's column names) must agree with the schemas built later."""

from __future__ import annotations

import pyarrow as pa
import pytest

from fc_assets.extraction import columns as C
from fc_assets.extraction.assets import column_schema
from fc_assets.extraction.entities import ENTITIES
from fc_assets.ingestion import spec
from fc_assets.ingestion.feeds import FEEDS


def test_scalar_type_names_are_the_arrow_types_written_before():
    names = {C.STRING: pa.string(), C.INT: pa.int64(), C.FLOAT: pa.float64(), C.BOOL: pa.bool_()}
    names[C.TIMESTAMP] = pa.timestamp("us", tz="UTC")
    assert {name: C.arrow_scalar_type(name) for name in names} == names


def _all_columns(columns):
    for c in columns:
        yield c
        yield from _all_columns(c.children)


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.name)
def test_type_names_known_at_load_are_the_arrow_types(entity):
    for c in _all_columns(entity.columns):
        assert c.type_name == str(c.arrow_type), c.name
    ui = {col.name: col.type for col in column_schema(entity).columns}
    assert ui == {f.name: str(f.type) for f in entity.arrow_schema}


@pytest.mark.parametrize("feed", FEEDS.values(), ids=lambda f: f.name)
def test_feed_columns_known_at_load_are_its_schema_columns(feed):
    assert feed.columns == tuple(n for n in feed.arrow_schema.names if n != spec.ROW)


def test_feed_arrow_shapes_built_on_first_use():
    utc = pa.timestamp("us", "UTC")
    built = {name: getattr(spec, name) for name in ("UTC", "ARROW_TYPES", "ATTRIBUTE_TYPE", "PRICE_TYPE")}
    assert built == {
        "UTC": utc,
        "ARROW_TYPES": {
            "text": pa.string(),
            "code": pa.string(),
            "int": pa.int64(),
            "decimal": pa.float64(),
            "bool": pa.bool_(),
            "datetime": utc,
            "time": pa.int32(),
            "list": pa.list_(pa.string()),
        },
        "ATTRIBUTE_TYPE": pa.struct([("name", pa.string()), ("type", pa.string()), ("value", pa.string())]),
        "PRICE_TYPE": pa.struct([("type", pa.string()), ("currency", pa.string()), ("value", pa.float64())]),
    }
    assert not hasattr(spec, "NO_SUCH_TYPE")
