"""Declarative mapping (aliases, defaults, constants, fallbacks, join, value maps, custom vectorised
functions, attribute columns), the reject threshold and the report the asset check will use."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from fc_assets.ingestion.deliver import plans
from fc_assets.ingestion.feeds import Feed, Inbox, get_feed, inventory_feed
from fc_assets.ingestion.read.mapping import FieldMapper, join, pandas_transform, text_schema, value_map
from fc_assets.ingestion.read.readers import read_file
from fc_assets.ingestion.read.validate import check_file
from fc_assets.ingestion.spec import AttributeColumns, Field
from fc_assets_tests.ingestion_files.helpers import parse_rejects, run


def custom_feed() -> Feed:
    return Feed(
        name="custom",
        fields=(
            Field("ref", compute=join("prefix", "code", sep="-"), required=True),
            Field("kind", "code", constant="STORE"),
            Field("label", aliases=("title",), default="(none)"),
            Field("alt_label", fallback="label"),
            Field("active", "bool", aliases=("flag",), transform=value_map({"J": "yes", "NEIN": "no"})),
            Field("name", aliases=("nm",), transform=pandas_transform(lambda s: s.str.title())),
            Field("score", "int", compute=lambda cols: pc.utf8_length(cols["nm"])),
        ),
        keys=("ref",),
        sender="graphql_location",
        attributes=AttributeColumns(prefixes=("x_",), columns=("Colour",)),
    )


def test_every_kind_of_mapping_declaration():
    data = (
        b"Prefix,CODE,Title,Flag,nm,x_size,Colour,ignored\nS,001,,J,big store,L,red,?\nS,002,Two,nein,a,,,\n"
    )
    out = run(custom_feed(), io.BytesIO(data), name="c.csv")
    assert out.accepted.drop_columns(["_row"]).to_pylist() == [
        {
            "ref": "S-001",
            "kind": "STORE",
            "label": "(none)",
            "alt_label": "(none)",
            "active": True,
            "name": "Big Store",
            "score": 9,
            "attributes": [  # by name, not in column order
                {"name": "Colour", "type": "STRING", "value": "red"},
                {"name": "size", "type": "STRING", "value": "L"},
            ],
        },
        {
            "ref": "S-002",
            "kind": "STORE",
            "label": "Two",
            "alt_label": "Two",
            "active": False,
            "name": "A",
            "score": 1,
            "attributes": [],
        },
    ]


def test_a_join_of_only_empty_columns_is_empty_not_a_failure():
    """pyarrow 26's `binary_join_element_wise(null_handling="skip")` leaves out a row whose parts are all null
    (its result is shorter than its input), and the chunk failed to map (ValueError: arrays not all the same
    length). Such a row's join is now empty: here a missing required `ref`, rejected."""
    data = b"Prefix,CODE,nm\nS,001,a\n,,b\nS,,c\n, ,d\n"
    out = run(custom_feed(), io.BytesIO(data), name="c.csv")
    assert out.column("ref") == ["S-001", "S"]
    assert [(row, field) for row, field, _, _ in out.rejects] == [(2, "ref"), (4, "ref")]


def test_statuses_are_configurable_per_feed():
    data = b"sku,location,qty,status\nA,L,1,ON_HOLD\nB,L,1,AVAILABLE\n"
    default = run(get_feed("inventory"), io.BytesIO(data), name="s.csv")
    assert default.rejects == [
        (
            1,
            "status",
            "ON_HOLD",
            "must be one of AVAILABLE, RESERVED, COMMITTED, ON_ORDER, DAMAGED, QUARANTINE",
        )
    ]
    custom = run(
        inventory_feed("stock_eu", statuses=("ON_HOLD", "AVAILABLE")), io.BytesIO(data), name="s.csv"
    )
    assert (custom.report.accepted, custom.column("status")) == (2, ["ON_HOLD", "AVAILABLE"])


def rows(n_bad: int, n: int = 40) -> bytes:
    lines = [b"sku,location,qty"] + [f"S{i},L,{'x' if i < n_bad else i}".encode() for i in range(n)]
    return b"\n".join(lines) + b"\n"


def test_threshold_default_from_settings_and_per_feed(settings_env):
    inventory = get_feed("inventory")
    assert not run(inventory, io.BytesIO(rows(2)), name="a.csv").report.failed  # 2/40 = 5 %: not over
    assert run(inventory, io.BytesIO(rows(3)), name="a.csv").report.failed  # 7.5 %
    strict = inventory_feed(reject_threshold=0.0)
    assert run(strict, io.BytesIO(rows(1)), name="a.csv").report.failed
    settings_env(FC_REJECT_THRESHOLD=0.5)
    report = run(inventory_feed(), io.BytesIO(rows(3)), name="a.csv").report
    assert (report.threshold, report.failed) == (0.5, False)


def test_report_metadata_and_check_file(tmp_path):
    src = tmp_path / "stock.csv"
    src.write_bytes(rows(30, n=100))
    out = tmp_path / "out" / "rejects.csv"
    report = check_file("inventory", src, out)
    assert (report.rows, report.accepted, report.rejected, report.failed) == (100, 70, 30, True)
    md = report.as_metadata()
    assert md["reasons"] == {"qty: not a whole number": 30}
    assert md["reject_rate"] == 0.3 and md["threshold"] == 0.05 and md["rejects_path"] == str(out)
    assert len(md["sample"]) == 20 and md["sample"][0] == {
        "row": 1,
        "field": "qty",
        "value": "x",
        "reason": "not a whole number",
    }
    assert parse_rejects(out.read_bytes())[-1] == (30, "qty", "x", "not a whole number")
    summary = report.summary()
    assert set(summary) >= {
        "feed",
        "path",
        "format",
        "rows",
        "accepted",
        "rejected",
        "rejects_path",
        "seconds",
        "failed",
    }


def test_check_file_counts_the_rows_it_writes_to_parquet(tmp_path):
    """Without a Parquet file the accepted rows are only counted: the same report and rejects, and progress
    after every chunk either way."""
    src = tmp_path / "stock.csv"
    src.write_bytes(rows(30, n=100))
    seen: dict[bool, list[int]] = {True: [], False: []}
    reports = {}
    for parquet in (True, False):
        reports[parquet] = check_file(
            "inventory",
            src,
            tmp_path / f"rejects-{parquet}.csv",
            chunk_rows=16,
            parquet_path=tmp_path / "accepted.parquet" if parquet else None,
            progress=lambda r, parquet=parquet: seen[parquet].append(r.rows),
        )
    with_parquet, counted = (reports[True].summary(), reports[False].summary())
    for summary in (with_parquet, counted):
        summary.pop("seconds"), summary.pop("rejects_path")
    assert counted == with_parquet and counted["accepted"] == 70
    assert pq.read_table(tmp_path / "accepted.parquet").num_rows == 70
    assert (tmp_path / "rejects-True.csv").read_bytes() == (tmp_path / "rejects-False.csv").read_bytes()
    assert seen[True] == seen[False] == [16, 32, 48, 64, 80, 96, 100]


def test_feed_declarations_for_the_pipeline(monkeypatch):
    feed = inventory_feed(
        inboxes=(Inbox("s3", glob="*.csv"), Inbox("sftp", path="in/stock", glob="stock_*.csv.gz"))
    )
    locations = plans.locations(feed)
    assert [(x.name, x.kind, x.path, x.glob, x.stability) for x in locations] == [
        ("s3", "s3", "fc-inbox/inventory/", "*.csv", "atomic"),
        ("sftp", "sftp", "in/stock", "stock_*.csv.gz", "size_stable"),
    ]
    spec = plans.delta_spec(get_feed("inventory"))
    assert (spec.keys, spec.strategy, spec.send_disappeared) == (("sku_ref", "location_ref"), "hash", False)
    assert (
        get_feed("products").sender == "event_product" and get_feed("locations").sender == "graphql_location"
    )
    with pytest.raises(KeyError, match="unknown feed 'nope'"):
        get_feed("nope")


def test_text_schema_is_stable_across_chunks_of_sparse_json():
    data = (
        b'[{"sku": "A", "location": "L", "qty": 1}, {"sku": "B", "location": "L", "qty": 2, "status": "x"}]'
    )
    batches = list(read_file(get_feed("inventory"), io.BytesIO(data), name="s.json", chunk_rows=1))
    assert all(b.schema == text_schema(get_feed("inventory")) for b in batches)
    assert pa.Table.from_batches(batches).column("status").to_pylist() == [None, "x"]


def test_a_headers_plan_is_made_once():
    """A file's chunks share its header: the mapper plans it once (`FieldMapper.plan` cached each plan under
    the last column name it matched, so every chunk planned it again)."""
    mapper = FieldMapper(inventory_feed().fields)
    columns = ["SKU", "location", "qty", "_row", "_error", "_raw"]
    first = mapper.plan(columns, "x.csv", strict=True)
    assert mapper.plan(columns, "x.csv", strict=False) is first
    assert mapper.plan(list(columns), "x.csv", strict=True) is first
