"""File exports (CSV/JSONL/XML to S3 and SFTP) and the DuckDB analytics over an extracted lake (moto S3)."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from datetime import UTC, datetime

import dagster as dg
import pytest
from lxml import etree

from fc_assets.analytics.assets import daily_order_kpis, stock_by_location
from fc_assets.extraction.entities import INVENTORY_POSITIONS, ORDERS
from fc_assets.extraction.exports import (
    ExportTarget,
    build_export_asset,
    export_partition,
    export_targets_from_env,
    open_target,
)
from fc_assets.extraction.extract import extract_periods
from fc_assets.extraction.windows import DAY, Window
from fc_assets.resources.sftp import SFTPResource
from fc_assets.resources.storage import TMP_DIR, Lake, LakeResource
from fc_assets_tests.extraction.fake_fluent import FakeFluent, make_orders, ts

D1 = datetime(2025, 3, 1, tzinfo=UTC)


def days(n: int) -> list[Window]:
    return list(Window(D1, D1 + n * DAY).periods(DAY))


@pytest.fixture
def orders_lake(lake):
    orders = make_orders(D1, 12, items=3) + make_orders(D1 + DAY, 5, items=1)
    list(extract_periods(ORDERS, days(2), client=FakeFluent({"orders": orders}), lake=lake, concurrency=2))
    return lake


def lake_resource(lake) -> LakeResource:
    return LakeResource(
        uri=lake.uri,
        endpoint_url=lake.endpoint_url,
        access_key_id=lake.access_key_id,
        secret_access_key=lake.secret_access_key,
        region=lake.region,
    )


def test_export_targets_from_env():
    env = {
        "FC_EXPORT_ORDERS": "csv:s3://out/fluent/, xml:sftp:///outbox",
        "FC_EXPORT_LOCATIONS": "",
        "OTHER": "x",
    }
    assert export_targets_from_env(env) == {
        "orders": [ExportTarget("csv", "s3://out/fluent/"), ExportTarget("xml", "sftp:///outbox")]
    }
    with pytest.raises(ValueError, match="parquet"):
        export_targets_from_env({"FC_EXPORT_ORDERS": "parquet:s3://x"})
    with pytest.raises(ValueError, match="no extracted entity"):
        export_targets_from_env({"FC_EXPORT_ODERS": "csv:s3://x"})


def test_exports_to_s3_in_three_formats(orders_lake, s3_server):
    outbox = s3_server.lake("outbox-exports", "out")
    target_uri = outbox.uri
    results = {
        fmt: export_partition(
            ORDERS, "dt=2025-03-01", "2025-03-01", ExportTarget(fmt, target_uri), orders_lake
        )
        for fmt in ("csv", "jsonl", "xml")
    }
    assert {r["rows"] for r in results.values()} == {12}
    assert sorted(outbox.list_files()) == [f"orders/orders-2025-03-01.{f}" for f in ("csv", "jsonl", "xml")]

    rows = list(csv.DictReader(io.StringIO(outbox.read_bytes("orders/orders-2025-03-01.csv").decode())))
    assert len(rows) == 12 and len(json.loads(rows[0]["items"])) == 3
    lines = outbox.read_bytes("orders/orders-2025-03-01.jsonl").decode().splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 12 and first["updated_on"].endswith("Z") and first["items"][2]["quantity"] == 3
    root = etree.fromstring(outbox.read_bytes("orders/orders-2025-03-01.xml"))
    assert root.tag == "orders" and len(root.findall("order")) == 12
    assert len(root.find("order").find("items").findall("item")) == 3


def test_export_asset_to_sftp(orders_lake, sftp_server, tmp_path):
    sftp = SFTPResource(
        host=sftp_server.host,
        port=sftp_server.port,
        username=sftp_server.user,
        password=sftp_server.password,
        known_hosts=str(sftp_server.known_hosts),
    )
    asset = build_export_asset(ORDERS, [ExportTarget("jsonl", "sftp:///outbox/fluent")], "2025-01-01")
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        result = dg.materialize(
            [asset],
            resources={"lake": lake_resource(orders_lake), "sftp": sftp},
            instance=instance,
            selection=[asset.key],
            tags={
                "dagster/asset_partition_range_start": "2025-03-01",
                "dagster/asset_partition_range_end": "2025-03-02",
            },
        )
    assert result.success
    out = sftp_server.root / "outbox/fluent/orders"
    assert sorted(p.name for p in out.iterdir()) == ["orders-2025-03-01.jsonl", "orders-2025-03-02.jsonl"]
    assert len((out / "orders-2025-03-02.jsonl").read_text().splitlines()) == 5


def test_duckdb_reads_the_entity_as_one_hive_dataset(orders_lake):
    with orders_lake.duckdb() as con:
        con.sql("SET TimeZone = 'UTC'")
        rows = con.sql(f"""
            SELECT dt, count(DISTINCT id) AS orders, sum(i.quantity) AS units
            FROM (SELECT dt, id, unnest(items) AS i
                  FROM read_parquet('{orders_lake.uri_for("fluent/orders")}/*/*.parquet', hive_partitioning = true))
            GROUP BY dt ORDER BY dt""").fetchall()
    assert [(str(d), o, u) for d, o, u in rows] == [("2025-03-01", 12, 12 * 6), ("2025-03-02", 5, 5)]


def test_analytics_tables(orders_lake, tmp_path):
    def ip(i: int, loc: str, on_hand: int, updated: datetime) -> dict:
        return {
            "id": f"IP{i}",
            "ref": f"P{i % 3}:{loc}",
            "type": "DEFAULT",
            "status": "ACTIVE",
            "productRef": f"P{i % 3}",
            "locationRef": loc,
            "onHand": on_hand,
            "workflowRef": "IP",
            "workflowVersion": 1,
            "createdOn": ts(D1),
            "updatedOn": ts(updated),
            "catalogue": {"ref": "DEFAULT:1"},
        }

    # IP0 is updated on both days: only its latest version (on hand 7) counts
    day1 = [ip(0, "L1", 3, D1), ip(1, "L1", 5, D1), ip(2, "L2", 11, D1)]
    day2 = [ip(0, "L1", 7, D1 + DAY)]
    list(
        extract_periods(
            INVENTORY_POSITIONS,
            days(2),
            client=FakeFluent({"inventoryPositions": day1 + day2}),
            lake=orders_lake,
        )
    )
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        result = dg.materialize(
            [stock_by_location, daily_order_kpis],
            instance=instance,
            resources={"lake": lake_resource(orders_lake)},
        )
    assert result.success
    stock = orders_lake.read_parquet("analytics/stock_by_location/part-0.parquet").to_pylist()
    assert [(r["location_ref"], r["product_ref"], r["on_hand"]) for r in stock] == [
        ("L1", "P0", 7),
        ("L1", "P1", 5),
        ("L2", "P2", 11),
    ]
    kpis = orders_lake.read_parquet("analytics/daily_order_kpis/part-0.parquet").to_pylist()
    assert sum(k["orders"] for k in kpis) == 17 and sum(k["units"] for k in kpis) == 12 * 6 + 5


def export_range(asset: dg.AssetsDefinition, resources: dict, tmp_path) -> dg.ExecuteInProcessResult:
    (tmp_path / "home").mkdir(exist_ok=True)
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as instance:
        return dg.materialize(
            [asset],
            resources=resources,
            instance=instance,
            selection=[asset.key],
            tags={
                "dagster/asset_partition_range_start": "2025-03-01",
                "dagster/asset_partition_range_end": "2025-03-02",
            },
        )


def test_s3_export_temporaries_never_touch_the_outbox_prefix(orders_lake, s3_server, tmp_path):
    """A versioned outbox bucket keeps every key ever written (deleted ones as versions + delete markers),
    so a temporary that was under the partner's prefix, even for a moment, shows up."""
    outbox = s3_server.lake("outbox-versioned", "partner/inbox")
    s3 = outbox.s3_client()
    s3.put_bucket_versioning(Bucket=outbox.bucket, VersioningConfiguration={"Status": "Enabled"})
    asset = build_export_asset(ORDERS, [ExportTarget("csv", outbox.uri)], "2025-01-01")
    assert export_range(asset, {"lake": lake_resource(orders_lake)}, tmp_path).success
    history = s3.list_object_versions(Bucket=outbox.bucket)
    ever_written = {v["Key"] for v in history.get("Versions", []) + history.get("DeleteMarkers", [])}
    assert ever_written == {
        "partner/inbox/orders/orders-2025-03-01.csv",
        "partner/inbox/orders/orders-2025-03-02.csv",
    }
    assert not history.get("DeleteMarkers")
    assert not orders_lake.list_files(TMP_DIR)  # staged in the lake's _tmp/, removed after the copy


def test_stale_lake_temporaries_are_cleaned_up_fresh_ones_kept(s3_server, tmp_path):
    lake = Lake(f"file://{tmp_path}/lake")
    orders = make_orders(D1, 4, items=1) + make_orders(D1 + DAY, 2, items=1)
    list(extract_periods(ORDERS, days(2), client=FakeFluent({"orders": orders}), lake=lake))
    tmp = tmp_path / "lake" / TMP_DIR
    tmp.mkdir(exist_ok=True)
    old, fresh = tmp / "0b1d-orders-2025-02-01.csv", tmp / "f4e5-orders-2025-03-01.csv"
    old.write_text("half a file from a killed run")
    fresh.write_text("a file another run is writing right now")
    two_days_ago = time.time() - 2 * 86_400
    os.utime(old, (two_days_ago, two_days_ago))
    os.utime(fresh, (time.time() - 3_600, time.time() - 3_600))
    outbox = s3_server.lake("outbox-cleanup", "out")
    asset = build_export_asset(ORDERS, [ExportTarget("jsonl", outbox.uri)], "2025-01-01")
    result = export_range(
        asset,
        {
            "lake": LakeResource(
                uri=lake.uri,
                endpoint_url=s3_server.endpoint_url,
                access_key_id="testing",
                secret_access_key="testing",
            )
        },
        tmp_path,
    )
    assert result.success
    assert not old.exists()
    assert fresh.exists()
    assert sorted(p.name for p in tmp.iterdir()) == [fresh.name]
    assert outbox.list_files() == ["orders/orders-2025-03-01.jsonl", "orders/orders-2025-03-02.jsonl"]
    assert len(outbox.read_bytes("orders/orders-2025-03-01.jsonl").decode().splitlines()) == 4


def test_sftp_export_temporary_is_outside_the_outbox_while_written(orders_lake, sftp_server):
    sftp = SFTPResource(
        host=sftp_server.host,
        port=sftp_server.port,
        username=sftp_server.user,
        password=sftp_server.password,
        known_hosts=str(sftp_server.known_hosts),
    )
    outbox = sftp_server.root / "partner-a/outbox"
    target = ExportTarget("csv", "sftp:///partner-a/outbox")
    with open_target(target, "orders/orders-2025-03-01.csv", orders_lake, sftp) as (out, uri):
        out.write(b"id,ref\n1,half a file")
        # what the partner's poller sees while the file is being written: nothing
        assert not [p for p in outbox.rglob("*") if p.is_file()]
        staged = [p for p in (sftp_server.root / "partner-a/_tmp").iterdir() if p.is_file()]
        assert len(staged) == 1
    assert uri.endswith("/partner-a/outbox/orders/orders-2025-03-01.csv")
    assert (outbox / "orders/orders-2025-03-01.csv").read_bytes() == b"id,ref\n1,half a file"
    assert not list((sftp_server.root / "partner-a/_tmp").iterdir())
