"""The Arrow checks of an extracted row group give pandera's verdicts: the same failure counts per
column and check, and a sample of the same size whose every case (column, check, value, key) is one
pandera reports. (Pandera's own sample order is not the rows' order; the Arrow checks sample by column,
check and row.)

Random row groups of every entity, with nulls in required columns, negative and NaN numbers, and nested
lists holding bad elements, are validated both ways (`ValidationReport.validate_rows`, the Arrow form that
extraction runs, and `ValidationReport.validate` with the entity's pandera schema).
"""

from __future__ import annotations

import math
import random
import re
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from fc_assets.extraction import validation
from fc_assets.extraction.entities import ENTITIES
from fc_assets.extraction.validation import SAMPLE_SIZE, ValidationReport, key_hashes


def _value(t: pa.DataType, rng: random.Random, nulls: float):
    if rng.random() < nulls:
        return None
    if pa.types.is_string(t):
        return rng.choice(["", "a", "ref-1", "ü€", "x" * 40])
    if pa.types.is_integer(t):
        return rng.choice([-2, -1, 0, 1, 5])
    if pa.types.is_floating(t):
        return rng.choice([-1.5, -0.0, 0.0, 2.25, math.nan, math.inf, -math.inf])
    if pa.types.is_timestamp(t):
        return datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(86_400))
    if pa.types.is_boolean(t):
        return rng.random() < 0.5
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return [_value(t.value_type, rng, nulls) for _ in range(rng.choice([0, 1, 2, 3]))]
    if pa.types.is_struct(t):
        return {f.name: _value(f.type, rng, nulls) for f in t}
    raise AssertionError(f"no generator for {t}")


def random_table(spec, rows: int, rng: random.Random, nulls: float) -> pa.Table:
    schema = spec.arrow_schema
    data = {f.name: [_value(f.type, rng, nulls) for _ in range(rows)] for f in schema}
    data[spec.key] = [v if v is None else f"{v}-{rng.randrange(rows)}" for v in data[spec.key]]
    return pa.Table.from_pydict(data, schema=schema)


def _both(spec, tables: list[pa.Table], monkeypatch=None) -> tuple[ValidationReport, ValidationReport]:
    """The Arrow report, and pandera's with every failure case in its sample."""
    arrow, pandera = ValidationReport(), ValidationReport()
    for t in tables:
        arrow.validate_rows(spec, t)
    arrow.finish_partition(spec.key)
    if monkeypatch is not None:
        monkeypatch.setattr(validation, "SAMPLE_SIZE", 1_000_000)
    for t in tables:
        pandera.validate(spec.pandera_schema, t, spec.key)
    pandera.finish_partition(spec.key)
    return arrow, pandera


def _case(sample: dict) -> tuple:
    """A sample case, comparable. Pandera reports a missing required value as NaN or "<NA>", the Arrow
    checks as None; pandera prints some lists as numpy arrays (no commas, line breaks), the Arrow checks
    as Python lists: both are cut at 200 characters, so the text is compared without separators, on a prefix."""
    value = sample.get("value")
    if (isinstance(value, float) and math.isnan(value)) or value == "<NA>":
        value = None
    if isinstance(value, str):
        value = re.sub(r"[\s,]", "", value)[:120]
    return tuple(sorted({**sample, "value": value}.items(), key=lambda kv: kv[0]))


@pytest.mark.parametrize("spec", ENTITIES, ids=lambda s: s.name)
@pytest.mark.parametrize("seed", range(6))
def test_arrow_checks_agree_with_pandera(spec, seed, monkeypatch):
    rng = random.Random(seed * 1009 + len(spec.name))
    nulls = [0.0, 0.02, 0.1, 0.3, 0.6, 0.9][seed]
    tables = [random_table(spec, rng.choice([0, 1, 7, 60]), rng, nulls) for _ in range(3)]
    arrow, pandera = _both(spec, tables, monkeypatch)
    assert arrow.rows == pandera.rows
    assert dict(arrow.failures) == dict(pandera.failures)
    assert len(arrow.sample) == min(SAMPLE_SIZE, len(pandera.sample))
    reported = {_case(p) for p in pandera.sample}
    for a in arrow.sample:
        assert _case(a) in reported, (a, pandera.sample[:3])


def test_a_clean_row_group_passes_both_ways():
    spec = next(s for s in ENTITIES if s.name == "orders")
    rng = random.Random(7)
    table = random_table(spec, 50, rng, 0.0)
    # every value satisfies the checks: quantities positive, prices not negative, refs set
    table = pa.Table.from_pylist(
        [
            {
                **row,
                "total_price": 1.0,
                "items": [{**i, "quantity": 1, "product_ref": "p"} for i in row["items"] or []],
            }
            for row in table.to_pylist()
        ],
        schema=spec.arrow_schema,
    )
    arrow, pandera = _both(spec, [table])
    assert arrow.passed == pandera.passed
    assert dict(arrow.failures) == dict(pandera.failures)


def test_a_row_group_with_another_schema_goes_through_pandera():
    spec = next(s for s in ENTITIES if s.name == "locations")
    table = random_table(spec, 5, random.Random(1), 0.0)
    table = table.drop_columns(["ref"])
    report = ValidationReport()
    report.validate_rows(spec, table)
    assert report.failures == {"locations: column_in_dataframe": 1}  # pandera's words: schema, check
    assert report.sample[0]["value"] == "ref"


def test_key_hashes_tell_keys_apart_and_match_equal_keys():
    keys = pa.array(["a", "b", "ab", "", None, "a", "ba", None, "é" * 50, "é" * 50, "x" * 1000])
    h = key_hashes(keys)
    assert h[0] == h[5] and h[4] == h[7] and h[8] == h[9]
    assert len({int(x) for x in h}) == 8
    sliced = key_hashes(keys.slice(5, 3))
    assert list(sliced) == list(h[5:8])
    chunked = key_hashes(pa.chunked_array([keys.slice(0, 4), keys.slice(4)]))
    assert list(chunked) == list(h)
