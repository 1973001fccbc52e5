"""File exports (CSV/JSONL/XML to S3 and SFTP) and the DuckDB analytics over an extracted lake (moto S3)."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from lxml import etree

from fc_assets.analytics import current_state
from fc_assets.analytics.assets import (
    ANALYTICS_ASSETS,
    analytics_job,
    daily_order_kpis,
    daily_order_kpis_table,
    stock_by_location,
)
from fc_assets.analytics.current_state import build_current_state_asset
from fc_assets.extraction.assets import build_extraction_asset, build_extraction_assets
from fc_assets.extraction.entities import INVENTORY_POSITIONS, LOCATIONS, ORDERS
from fc_assets.extraction.export_files import export_partition, open_target
from fc_assets.extraction.exports import ExportTarget, build_export_asset, export_targets_from_env
from fc_assets.extraction.extract import extract_periods
from fc_assets.extraction.schedules import build_schedules
from fc_assets.extraction.windows import DAY, HOURLY, Window, iso
from fc_assets.resources.fluent import FluentResource
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
                  FROM read_parquet('{orders_lake.uri_for("fluent/orders")}/**/*.parquet', hive_partitioning = true))
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


# ------------------------------------------------------- current state, against the sandbox (real extraction)

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DAY_KEYS = {n: (TODAY - n * DAY).strftime("%Y-%m-%d") for n in range(1, 6)}
CURRENT_ENTITIES = (ORDERS, INVENTORY_POSITIONS, LOCATIONS)


def sandbox_defs(sandbox, lake, entities=CURRENT_ENTITIES) -> dg.Definitions:
    """The code location's pieces for these entities, wired as definitions.py wires them."""
    jobs, _ = build_schedules(
        entities, late_update_days=1, start_date=(TODAY - 30 * DAY).strftime("%Y-%m-%d")
    )
    return dg.Definitions(
        assets=[
            *build_extraction_assets(
                entities, start_date=(TODAY - 30 * DAY).strftime("%Y-%m-%d"), retry_policy=None
            ),
            *(build_current_state_asset(e) for e in entities),
            *ANALYTICS_ASSETS,
        ],
        jobs=[*jobs, analytics_job],
        resources={
            "fluent": FluentResource(
                base_url=sandbox.base_url,
                client_id="fc-sandbox",
                client_secret="fc-sandbox-secret",
                concurrency=4,
            ),
            "lake": lake_resource(lake),
        },
    )


class Platform:
    """The scheduled runs of one deployment, run in order, and what the sandbox had when each ran."""

    def __init__(self, sandbox, lake, instance, entities=CURRENT_ENTITIES) -> None:
        self.sandbox, self.lake, self.instance = sandbox, lake, instance
        self.defs = sandbox_defs(sandbox, lake, entities)
        self.entities = entities
        self.extracted: dict[str, set[str]] = {e.name: set() for e in entities}

    def extract(self, first: str, last: str | None = None) -> None:
        """Every extraction job over [first, last] (the daily run, or the late-updates run's range)."""
        last = last or first
        for job in self.defs.resolve_all_job_defs():
            if not job.name.endswith("_daily") or job.name == "analytics_daily":
                continue
            tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
            assert job.execute_in_process(instance=self.instance, tags=tags).success
        start = datetime.strptime(first, "%Y-%m-%d").replace(tzinfo=UTC)
        end = datetime.strptime(last, "%Y-%m-%d").replace(tzinfo=UTC) + DAY
        for e in self.entities:
            ids = self.sandbox.admin.counts(e.name, iso(start), iso(end))["ids"]
            self.extracted[e.name] |= set(ids)

    def analytics(self) -> tuple[list[dict], list[dict]]:
        assert self.defs.resolve_job_def("analytics_daily").execute_in_process(instance=self.instance).success
        return (
            self.lake.read_parquet("analytics/daily_order_kpis/part-0.parquet").to_pylist(),
            self.lake.read_parquet("analytics/stock_by_location/part-0.parquet").to_pylist(),
        )

    def ids_in(self, entity: str, key: str) -> set[str]:
        return set(
            self.lake.read_parquet(f"fluent/{entity}/dt={key}/part-0.parquet", columns=["id"])[
                "id"
            ].to_pylist()
        )

    def current(self, entity: str) -> dict[str, datetime]:
        rows = self.lake.read_parquet(
            f"current/{entity}/part-0.parquet", columns=["id", "updated_on"]
        ).to_pylist()
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids)), f"{entity}: an id twice in the current state"
        return {r["id"]: r["updated_on"] for r in rows}


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as inst:
        yield inst


def test_an_update_across_midnight_is_never_missing_nor_counted_twice(sandbox_clean, lake, instance):
    sandbox = sandbox_clean
    before, day, after = DAY_KEYS[4], DAY_KEYS[3], DAY_KEYS[2]
    platform = Platform(sandbox, lake, instance)

    def counted() -> tuple[int, int]:
        kpis, stock = platform.analytics()
        return sum(k["orders"] for k in kpis), sum(s["positions"] for s in stock)

    def expected() -> tuple[int, int]:
        return len(platform.extracted["orders"]), len(platform.extracted["inventory_positions"])

    # day D-1 and D extracted (the daily runs): X and P were updated at D 23:00-ish, Y and Q on D-1
    platform.extract(before, day)
    x, p = sorted(platform.ids_in("orders", day))[0], sorted(platform.ids_in("inventory_positions", day))[0]
    y, q = (
        sorted(platform.ids_in("orders", before))[0],
        sorted(platform.ids_in("inventory_positions", before))[0],
    )
    assert counted() == expected()

    # X, Y, P, Q are updated at D+1 00:30 - 00:45, after the daily run of D
    d1 = datetime.strptime(after, "%Y-%m-%d").replace(tzinfo=UTC)
    for entity, ids in (("orders", (x, y)), ("inventory_positions", (p, q))):
        for minutes, entity_id in zip((30, 45), ids, strict=True):
            sandbox.admin.touch(entity, entity_id, iso(d1 + timedelta(minutes=minutes)))

    # the late-updates run re-extracts D before D+1 is extracted: X and P are gone from D's partition ...
    platform.extract(day)
    assert x not in platform.ids_in("orders", day) and p not in platform.ids_in("inventory_positions", day)
    # ... yet still counted, once, at the version extracted before
    assert counted() == expected()
    assert platform.current("orders")[x] < d1 and x in platform.current("orders")

    # D+1 extracted: the new X and P count instead; Y and Q (still in D-1 at their old version) count once
    platform.extract(after)
    assert {x, y} <= platform.ids_in("orders", after) and y in platform.ids_in("orders", before)
    assert q in platform.ids_in("inventory_positions", before)
    assert counted() == expected()
    for entity, ids in (("orders", (x, y)), ("inventory_positions", (p, q))):
        current = platform.current(entity)
        assert len(current) == len(platform.extracted[entity])
        for minutes, entity_id in zip((30, 45), ids, strict=True):
            assert current[entity_id] == d1 + timedelta(minutes=minutes)


def test_an_extraction_outside_the_job_is_remembered_before_a_re_extraction(sandbox_clean, lake, instance):
    """Day D materialized from the asset alone (a UI or CLI backfill: no `orders_current` step), then X is
    updated after midnight and the late-updates job re-extracts D: X must still count, once."""
    sandbox = sandbox_clean
    day, after = DAY_KEYS[3], DAY_KEYS[2]
    platform = Platform(sandbox, lake, instance, (ORDERS,))
    orders_asset = build_extraction_asset(ORDERS, (TODAY - 30 * DAY).strftime("%Y-%m-%d"), retry_policy=None)
    assert dg.materialize(
        [orders_asset], resources=platform.defs.resources, instance=instance, partition_key=day
    ).success
    extracted = platform.ids_in("orders", day)
    x = sorted(extracted)[0]
    d1 = datetime.strptime(after, "%Y-%m-%d").replace(tzinfo=UTC)
    sandbox.admin.touch("orders", x, iso(d1 + timedelta(minutes=30)))
    platform.extract(day)  # the late-updates run: X is gone from D, D+1 not extracted yet
    assert x not in platform.ids_in("orders", day)
    kpis, _ = platform.analytics()
    assert sum(k["orders"] for k in kpis) == len(extracted)  # on main: X missing until D+1 is extracted
    assert x in platform.current("orders")


def test_analytics_read_hourly_partitions(sandbox, lake, instance):
    """`FC_EXTRACT_HOURLY=orders`: `dt=/hour=` objects, and the analytics count every order of the day once."""
    hourly = dataclasses.replace(ORDERS, grain=HOURLY)
    defs = sandbox_defs(sandbox, lake, (hourly,))
    day = DAY_KEYS[2]
    tags = {
        "dagster/asset_partition_range_start": f"{day}-00:00",
        "dagster/asset_partition_range_end": f"{day}-23:00",
    }
    assert (
        defs.resolve_job_def("fluent_orders_hourly").execute_in_process(instance=instance, tags=tags).success
    )
    objects = lake.list_files("fluent/orders")
    assert len(objects) == 24 and all(f"dt={day}/hour=" in k for k in objects)
    assert defs.resolve_job_def("analytics_daily").execute_in_process(instance=instance).success
    kpis = lake.read_parquet("analytics/daily_order_kpis/part-0.parquet").to_pylist()
    start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    expected = sandbox.admin.counts("orders", iso(start), iso(start + DAY))["count"]
    assert expected > 0 and sum(k["orders"] for k in kpis) == expected


def test_a_refresh_reads_only_new_partitions_and_keeps_what_a_re_extraction_removed(lake, monkeypatch):
    monkeypatch.setattr(current_state, "REREAD_MARGIN", timedelta(0))
    day1, day2 = make_orders(D1, 12, items=1), make_orders(D1 + DAY, 5, items=1)

    def extract(day: int, orders: list[dict]) -> None:
        """Write one day, strictly a second before and after: S3 modification times have whole seconds, and
        a refresh re-reads an object modified in the same second as the state (REREAD_MARGIN 0)."""
        time.sleep(1.1)
        list(extract_periods(ORDERS, [days(2)[day]], client=FakeFluent({"orders": orders}), lake=lake))
        time.sleep(1.1)

    def current_ids() -> list[str]:
        ids = lake.read_parquet(current_state.current_key(ORDERS), columns=["id"])["id"].to_pylist()
        assert len(ids) == len(set(ids))
        return sorted(ids)

    extract(0, day1)
    assert current_state.refresh_current_state(lake, ORDERS)["partition_files_read"] == 1
    extract(1, day2)
    counts = current_state.refresh_current_state(lake, ORDERS)
    assert (counts["partition_files"], counts["partition_files_read"], counts["entities"]) == (2, 1, 17)

    # day 1 re-extracted after its first order was updated again on day 3 (not extracted yet): kept, once
    moved = dict(day1[0], updatedOn=ts(D1 + 2 * DAY + timedelta(minutes=30)))
    extract(0, day1[1:] + [moved])
    assert (
        day1[0]["id"] not in lake.read_parquet("fluent/orders/dt=2025-03-01/part-0.parquet")["id"].to_pylist()
    )
    counts = current_state.refresh_current_state(lake, ORDERS)
    assert (counts["partition_files_read"], counts["entities"]) == (1, 17)
    assert current_ids() == sorted(o["id"] for o in day1 + day2)
    kpis = daily_order_kpis_table(lake).to_pylist()
    assert sum(k["orders"] for k in kpis) == 17
