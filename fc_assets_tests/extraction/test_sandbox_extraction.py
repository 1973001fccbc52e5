"""Extraction end to end against the Fluent sandbox and moto's S3 server (both on loopback).

Every entity's Parquet ids per day are compared with the sandbox's own independent answer (admin `counts`,
entities with updatedOn in [from, to)), twice in a row; a 90-day backfill is one run with 90 objects;
injected faults are survived with exact counts, or fail the run without writing anything.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest

from fc_assets.extraction.assets import build_extraction_asset, build_extraction_assets
from fc_assets.extraction.entities import ENTITIES, ORDERS
from fc_assets.resources.fluent import FluentResource
from fc_assets.resources.storage import TMP_DIR, LakeResource
from fc_assets_tests.sandbox.api import Api

ROOT = Path(__file__).resolve().parents[2]
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
START_DATE = (TODAY - timedelta(days=120)).strftime("%Y-%m-%d")
FAST_RETRY = dg.RetryPolicy(max_retries=1, delay=0.1)


def day_key(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).strftime("%Y-%m-%d")


def window_of(key: str) -> tuple[str, str]:
    start = datetime.strptime(key, "%Y-%m-%d").replace(tzinfo=UTC)
    return start.isoformat().replace("+00:00", "Z"), (start + timedelta(days=1)).isoformat().replace(
        "+00:00", "Z"
    )


def resources(sandbox, lake, **fluent_kw) -> dict:
    fluent = {"concurrency": 4, "max_retries": 4, **fluent_kw}
    return {
        "fluent": FluentResource(
            base_url=sandbox.base_url, client_id="fc-sandbox", client_secret="fc-sandbox-secret", **fluent
        ),
        "lake": LakeResource(
            uri=lake.uri,
            endpoint_url=lake.endpoint_url,
            access_key_id=lake.access_key_id,
            secret_access_key=lake.secret_access_key,
            region=lake.region,
        ),
    }


def range_tags(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def expected_ids(sandbox, entity: str, key: str) -> list[str]:
    frm, to = window_of(key)
    return sorted(sandbox.admin.counts(entity, frm, to)["ids"])


def parquet_ids(lake, entity: str, key: str) -> list[str]:
    return sorted(
        lake.read_parquet(f"fluent/{entity}/dt={key}/part-0.parquet", columns=["id"]).column("id").to_pylist()
    )


CONNECTIONS = {  # entity -> its search connections (what the extraction reads, queried here independently)
    "orders": ["orders"],
    "fulfilments": ["fulfilments"],
    "inventory_positions": ["inventoryPositions"],
    "inventory_quantities": ["inventoryQuantities"],
    "virtual_positions": ["virtualPositions"],
    "products": ["standardProducts", "variantProducts"],
    "locations": ["locations"],
}
INDEPENDENT_PAGE_SIZE = 37  # not the extraction's page size, so pages end on different rows


def graphql_ids(api: Api, entity: str, key: str) -> list[str]:
    """Ids of `entity` updated in the day `key`, paged through GraphQL by a plain httpx client."""
    frm, to = window_of(key)
    end = datetime.fromisoformat(to)
    catalogues: list[str | None] = [None]
    if entity == "virtual_positions":
        catalogues = [n["ref"] for n in api.crawl("virtualCatalogues", "ref", first=INDEPENDENT_PAGE_SIZE)]
    ids = []
    for field in CONNECTIONS[entity]:
        for ref in catalogues:
            scoped = ref is not None
            nodes = api.crawl(
                field,
                "id updatedOn",
                args=", updatedOn: $updated" + (", catalogue: $catalogue" if scoped else ""),
                decl=", $updated: DateRange" + (", $catalogue: VirtualCatalogueKey" if scoped else ""),
                variables={
                    "updated": {"from": frm, "to": to},
                    **({"catalogue": {"ref": ref}} if scoped else {}),
                },
                first=INDEPENDENT_PAGE_SIZE,
            )
            ids += [n["id"] for n in nodes if datetime.fromisoformat(n["updatedOn"]) < end]
    return sorted(ids)


def graphql_item_ids(api: Api, order_id: str) -> list[str]:
    """Every item id of one order, paged 45 at a time (not the extraction's 50)."""
    query = (
        "query($id: ID!, $first: Int, $after: String) { orderById(id: $id) { items(first: $first, "
        "after: $after) { edges { cursor node { id } } pageInfo { hasNextPage } } } }"
    )
    ids, after = [], None
    while True:
        items = api.data(query, {"id": order_id, "first": 45, "after": after})["orderById"]["items"]
        ids += [e["node"]["id"] for e in items["edges"]]
        if not items["pageInfo"]["hasNextPage"]:
            return ids
        after = items["edges"][-1]["cursor"]


@pytest.fixture
def api(sandbox):
    client = Api(sandbox.base_url)
    yield client
    client.close()


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as inst:
        yield inst


@pytest.fixture(autouse=True)
def no_faults(sandbox):
    sandbox.admin.clear_faults()
    yield
    sandbox.admin.clear_faults()


def test_every_entity_matches_the_sandbox_twice(sandbox, lake, instance, api):
    keys = [day_key(d) for d in (3, 2, 1)]
    assets = build_extraction_assets(ENTITIES, start_date=START_DATE, retry_policy=None)
    for _ in range(2):  # re-materializing replaces: same rows, no duplicates
        result = dg.materialize(
            assets, resources=resources(sandbox, lake), instance=instance, tags=range_tags(keys[0], keys[-1])
        )
        assert result.success
        for spec in ENTITIES:
            rows = 0
            for key in keys:
                ids = parquet_ids(lake, spec.name, key)
                assert ids == expected_ids(sandbox, spec.name, key), (spec.name, key)
                assert ids == graphql_ids(api, spec.name, key), (spec.name, key)
                rows += len(ids)
            assert rows, spec.name  # every entity has rows on these days
    assert len(instance.get_runs()) == 2
    assert not lake.list_files(TMP_DIR)
    # the window edges were exercised: some entities sit exactly on a midnight
    midnights = {f"{k} 00:00:00+00:00" for k in keys}
    updated = [
        str(t)
        for s in ENTITIES
        for k in keys
        for t in lake.read_parquet(f"fluent/{s.name}/dt={k}/part-0.parquet", columns=["updated_on"])
        .column("updated_on")
        .to_pylist()
    ]
    assert midnights & set(updated)


def test_90_day_backfill_is_one_run_with_90_objects(sandbox, lake, instance, api):
    first, last = day_key(90), day_key(1)
    asset = build_extraction_asset(ORDERS, START_DATE, retry_policy=None)
    result = dg.materialize(
        [asset], resources=resources(sandbox, lake), instance=instance, tags=range_tags(first, last)
    )
    assert result.success
    assert len(instance.get_runs()) == 1
    objects = lake.list_files("fluent/orders")
    assert len(objects) == 90
    assert len(result.asset_materializations_for_node("orders")) == 90
    days_with_data = 0
    for d in range(90, 0, -1):  # every day, not a sample
        key = day_key(d)
        ids = parquet_ids(lake, "orders", key)
        assert ids == expected_ids(sandbox, "orders", key), key
        assert ids == graphql_ids(api, "orders", key), key
        days_with_data += bool(ids)
    assert days_with_data == 30  # the sandbox spreads updates over the last 30 days
    # the sandbox's large orders (120 items, more than itemsFirst 50) arrive with every item, in order
    table = lake.read_parquet("fluent/orders", columns=["id", "items"])
    large = [
        (o, [i["id"] for i in items])
        for o, items in zip(*table.to_pydict().values(), strict=True)
        if len(items) > 50
    ]
    assert len(large) == 3
    for order_id, item_ids in large:
        assert len(item_ids) == 120
        assert item_ids == graphql_item_ids(api, order_id)


def test_transient_faults_are_survived_with_exact_counts(sandbox, lake, instance):
    key = day_key(2)
    tokens_before = sandbox.admin.received()["requests"].get("POST /oauth/token", 0)
    sandbox.admin.set_faults(
        rate_limit={"count": 3, "retry_after": 0.2},
        server_errors={"count": 3, "status": 503},
        expire_tokens_after=6,  # every token dies after the run's 6th answered request: in the middle of it
    )
    asset = build_extraction_asset(ORDERS, START_DATE, retry_policy=None)
    result = dg.materialize(
        [asset], resources=resources(sandbox, lake, page_size=5), instance=instance, partition_key=key
    )
    assert result.success
    assert parquet_ids(lake, "orders", key) == expected_ids(sandbox, "orders", key)  # no page lost
    meta = result.asset_materializations_for_node("orders")[0].metadata
    assert meta["run_retries"].value >= 6
    assert meta["run_pages"].value > 6  # the expiry fell between pages of the run
    assert "expire_tokens_after" not in sandbox.admin.faults()  # it fired
    # re-authenticated mid-run: the first token, then a new one after the 401
    assert meta["run_reauths"].value >= 1
    tokens = sandbox.admin.received()["requests"]["POST /oauth/token"] - tokens_before
    assert tokens == meta["run_token_requests"].value >= 2


def test_a_fault_that_outlasts_retries_fails_and_writes_nothing(sandbox, lake, instance):
    key = day_key(4)
    sandbox.admin.set_faults(server_errors={"count": 10_000, "status": 503})
    asset = build_extraction_asset(ORDERS, START_DATE, retry_policy=FAST_RETRY)
    result = dg.materialize(
        [asset],
        resources=resources(sandbox, lake, max_retries=1),
        instance=instance,
        partition_key=key,
        raise_on_error=False,
    )
    assert not result.success
    assert [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]  # the policy retried
    assert not lake.list_files("fluent/orders")
    assert not lake.list_files(TMP_DIR)
    status = instance.get_status_by_partition(dg.AssetKey("orders"), [key], asset.partitions_def)
    assert status[key] != dg.AssetPartitionStatus.MATERIALIZED


def test_cli_materializes_one_partition(sandbox, lake, tmp_path):
    key = day_key(1)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path),
        "FLUENT_BASE_URL": sandbox.base_url,
        "FC_LAKE_URI": lake.uri,
        "AWS_ENDPOINT_URL": lake.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "FC_EXTRACT_START_DATE": START_DATE,
    }
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dagster = Path(sys.executable).with_name("dagster")
    proc = subprocess.run(
        [
            str(dagster),
            "asset",
            "materialize",
            "-m",
            "fc_assets.definitions",
            "--select",
            "orders",
            "--partition",
            key,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert parquet_ids(lake, "orders", key) == expected_ids(sandbox, "orders", key)


def test_a_failed_multi_day_run_reports_the_days_it_wrote(sandbox_clean, lake, instance):
    """A 20-day run on one stream (~0.2 s per request): once its first day is in the lake, the sandbox
    starts answering 503 to everything, so a later day fails after the client's retries."""
    first_key = day_key(20)
    sandbox_clean.admin.set_faults(latency_ms=200)
    stop = threading.Event()

    def break_fluent_after_the_first_day() -> None:
        while not stop.is_set():
            if lake.exists(f"fluent/orders/dt={first_key}/part-0.parquet"):
                sandbox_clean.admin.set_faults(server_errors={"count": 100_000, "status": 503})
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=break_fluent_after_the_first_day, daemon=True)
    watcher.start()
    asset = build_extraction_asset(ORDERS, START_DATE, retry_policy=None)
    try:
        result = dg.materialize(
            [asset],
            resources=resources(sandbox_clean, lake, concurrency=1, max_retries=1),
            instance=instance,
            tags=range_tags(first_key, day_key(1)),
            raise_on_error=False,
        )
    finally:
        stop.set()
        watcher.join()
    assert not result.success
    sandbox_clean.admin.clear_faults()
    keys = [day_key(d) for d in range(20, 0, -1)]
    in_lake = {f.split("/")[2].removeprefix("dt=") for f in lake.list_files("fluent/orders")}
    assert first_key in in_lake and in_lake < set(keys)  # some days written, not all
    assert instance.get_materialized_partitions(dg.AssetKey("orders")) == in_lake
    status = instance.get_status_by_partition(dg.AssetKey("orders"), keys, asset.partitions_def)
    assert {k for k, s in status.items() if s == dg.AssetPartitionStatus.MATERIALIZED} == in_lake
    for key in in_lake:  # what was reported is complete
        assert parquet_ids(lake, "orders", key) == expected_ids(sandbox_clean, "orders", key)
    assert not lake.list_files(TMP_DIR)
