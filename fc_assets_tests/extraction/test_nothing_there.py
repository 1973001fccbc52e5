"""'Nothing there' against a sandbox seeded without locations, inventory or virtual catalogues.

Every one of the seven entities, on a day with data elsewhere and on a day with no updates at all, must
become an empty (or partial) partition object with its metadata: zero virtual catalogues once crashed
`virtual_positions` with a ZeroDivisionError (then retried by the policy).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from fc_assets.extraction.assets import build_extraction_assets
from fc_assets.extraction.entities import ENTITIES
from fc_assets.resources.fluent import FluentResource
from fc_assets.resources.storage import TMP_DIR, LakeResource
from fc_assets.sandbox.runner import SandboxServer

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
START_DATE = (TODAY - timedelta(days=120)).strftime("%Y-%m-%d")
BUSY_DAY = (TODAY - timedelta(days=2)).strftime("%Y-%m-%d")  # inside the sandbox's 30-day spread
EMPTY_DAY = (TODAY - timedelta(days=60)).strftime("%Y-%m-%d")  # before it: no entity has an update there
SPARSE_ARGS = [
    "--orders",
    "300",
    "--locations",
    "0",
    "--products",
    "20",
    "--inventory-positions",
    "0",
    "--virtual-catalogues",
    "0",
    "--virtual-positions",
    "0",
]
EMPTY_ENTITIES = {"locations", "inventory_positions", "inventory_quantities", "virtual_positions"}


@pytest.fixture(scope="module")
def sparse_sandbox():
    with SandboxServer(SPARSE_ARGS, seed=7) as server:
        yield server


def window_of(key: str) -> tuple[str, str]:
    start = datetime.strptime(key, "%Y-%m-%d").replace(tzinfo=UTC)
    return (
        start.isoformat().replace("+00:00", "Z"),
        (start + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
    )


def test_every_entity_writes_an_empty_partition_with_metadata(sparse_sandbox, lake, dagster_instance):
    assets = build_extraction_assets(ENTITIES, start_date=START_DATE, retry_policy=None)
    resources = {
        "fluent": FluentResource(
            base_url=sparse_sandbox.base_url,
            client_id="fc-sandbox",
            client_secret="fc-sandbox-secret",
            concurrency=4,
        ),
        "lake": LakeResource(
            uri=lake.uri,
            endpoint_url=lake.endpoint_url,
            access_key_id=lake.access_key_id,
            secret_access_key=lake.secret_access_key,
        ),
    }
    for key in (EMPTY_DAY, BUSY_DAY):
        result = dg.materialize(
            assets, resources=resources, instance=dagster_instance, partition_key=key, raise_on_error=False
        )
        failures = [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert result.success, failures
        assert all(c.passed for c in result.get_asset_check_evaluations())
        for spec in ENTITIES:
            frm, to = window_of(key)
            expected = sorted(sparse_sandbox.admin.counts(spec.name, frm, to)["ids"])
            if key == EMPTY_DAY or spec.name in EMPTY_ENTITIES:
                assert expected == [], (spec.name, key)
            table = lake.read_parquet(f"fluent/{spec.name}/dt={key}/part-0.parquet")
            assert table.schema.names == spec.arrow_schema.names
            assert sorted(table.column("id").to_pylist()) == expected, (spec.name, key)
            [mat] = result.asset_materializations_for_node(spec.name)
            assert mat.partition == key
            assert mat.metadata["rows"].value == mat.metadata["dagster/row_count"].value == len(expected)
            assert mat.metadata["uri"].value.endswith(f"/fluent/{spec.name}/dt={key}/part-0.parquet")
            assert mat.metadata["window_start"].value.startswith(key)
    busy = lake.read_parquet(f"fluent/orders/dt={BUSY_DAY}/part-0.parquet")
    assert busy.num_rows > 0  # the sparse sandbox still has orders and fulfilments (with no location)
    assert not lake.list_files(TMP_DIR)
    for spec in ENTITIES:
        status = dagster_instance.get_status_by_partition(
            dg.AssetKey(spec.name), [EMPTY_DAY, BUSY_DAY], assets[0].partitions_def
        )
        assert set(status.values()) == {dg.AssetPartitionStatus.MATERIALIZED}, spec.name
