"""The Dagster assets over a fake Fluent: partitions, single-run backfills, metadata, checks, retries."""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import pyarrow.parquet as pq
import pytest

from fc_assets.extraction.assets import build_extraction_asset
from fc_assets.extraction.entities import ORDERS
from fc_assets.extraction.windows import DAY
from fc_assets.resources.fluent import FluentResource
from fc_assets.resources.storage import LakeResource
from fc_assets_tests.extraction.fake_fluent import FakeFluent, make_orders

D1 = datetime(2025, 3, 1, tzinfo=UTC)
FAKES: dict[str, FakeFluent] = {}


class FakeFluentResource(FluentResource):
    """FluentResource whose clients are the in-memory fake registered under `dataset`."""

    dataset: str

    def get_client(self):  # type: ignore[override]
        return FAKES[self.dataset]


def resources(tmp_path, dataset: str) -> dict:
    return {
        "fluent": FakeFluentResource(
            base_url="http://fake", client_id="x", client_secret="y", dataset=dataset, concurrency=2
        ),
        "lake": LakeResource(uri=f"file://{tmp_path}/lake"),
    }


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as inst:
        yield inst


def materialization_metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    return {m.partition: m.metadata for m in result.asset_materializations_for_node("orders")}


def test_one_partition(tmp_path, instance):
    FAKES["one"] = FakeFluent({"orders": make_orders(D1, 30) + make_orders(D1 + DAY, 7)})
    asset = build_extraction_asset(ORDERS, "2025-01-01")
    result = dg.materialize(
        [asset], resources=resources(tmp_path, "one"), partition_key="2025-03-01", instance=instance
    )
    assert result.success
    meta = materialization_metadata(result)["2025-03-01"]
    assert meta["dagster/row_count"].value == 30
    assert meta["rows"].value == 30 and meta["pages"].value >= 1 and meta["bytes"].value > 0
    assert meta["uri"].value.endswith("/fluent/orders/dt=2025-03-01/part-0.parquet")
    assert "| id" in meta["preview"].value
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["rows_validated"].value == 30
    assert pq.read_table(f"{tmp_path}/lake/fluent/orders/dt=2025-03-01/part-0.parquet").num_rows == 30


def test_range_is_one_run_with_one_object_and_metadata_per_day(tmp_path, instance):
    FAKES["range"] = FakeFluent({"orders": [o for d in range(5) for o in make_orders(D1 + d * DAY, 3 + d)]})
    asset = build_extraction_asset(ORDERS, "2025-01-01")
    result = dg.materialize(
        [asset],
        resources=resources(tmp_path, "range"),
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2025-03-01",
            "dagster/asset_partition_range_end": "2025-03-05",
        },
    )
    assert result.success
    assert len(instance.get_runs()) == 1
    meta = materialization_metadata(result)
    assert {k: v["rows"].value for k, v in meta.items()} == {f"2025-03-0{d + 1}": 3 + d for d in range(5)}
    for day, m in meta.items():
        assert m["window_start"].value.startswith(day)
    assert len(list((tmp_path / "lake/fluent/orders").glob("dt=*/part-0.parquet"))) == 5


def test_failed_schema_check_blocks(tmp_path, instance):
    orders = make_orders(D1, 5)
    orders[1]["totalPrice"] = -3.0
    FAKES["bad"] = FakeFluent({"orders": orders})
    asset = build_extraction_asset(ORDERS, "2025-01-01", retry_policy=None)
    result = dg.materialize(
        [asset],
        resources=resources(tmp_path, "bad"),
        partition_key="2025-03-01",
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    [check] = result.get_asset_check_evaluations()
    assert not check.passed
    assert check.metadata["failure_count"].value == 1
    assert check.metadata["failure_sample"].value[0]["key"] == orders[1]["id"]


def test_transient_error_is_retried_by_policy_then_fails_with_nothing_written(tmp_path, instance):
    FAKES["down"] = FakeFluent({"orders": make_orders(D1, 50)}, fail_after_pages={"orders": 0})
    asset = build_extraction_asset(
        ORDERS, "2025-01-01", retry_policy=dg.RetryPolicy(max_retries=1, delay=0.01)
    )
    result = dg.materialize(
        [asset],
        resources=resources(tmp_path, "down"),
        partition_key="2025-03-01",
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 1
    assert not (tmp_path / "lake/fluent/orders/dt=2025-03-01").exists()
    assert not list((tmp_path / "lake").rglob("*.parquet"))


def test_non_transient_error_is_not_retried(tmp_path, instance):
    class NoCursor(FakeFluent):
        def _shape(self, node, variables):
            shaped = super()._shape(node, variables)
            shaped["items"]["edges"][-1]["cursor"] = None
            return shaped

    FAKES["broken"] = NoCursor({"orders": make_orders(D1, 3, items=60)})
    asset = build_extraction_asset(
        ORDERS, "2025-01-01", retry_policy=dg.RetryPolicy(max_retries=2, delay=0.01)
    )
    result = dg.materialize(
        [asset],
        resources=resources(tmp_path, "broken"),
        partition_key="2025-03-01",
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]


def test_hourly_grain_writes_hour_directories(tmp_path, instance):
    import dataclasses

    from fc_assets.extraction.windows import HOURLY

    FAKES["hourly"] = FakeFluent({"orders": make_orders(D1, 48)})  # two orders at 00:00, then every 30 min
    asset = build_extraction_asset(dataclasses.replace(ORDERS, grain=HOURLY), "2025-01-01")
    result = dg.materialize(
        [asset],
        resources=resources(tmp_path, "hourly"),
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2025-03-01-00:00",
            "dagster/asset_partition_range_end": "2025-03-01-02:00",
        },
    )
    assert result.success
    rows = {k: m["rows"].value for k, m in materialization_metadata(result).items()}
    assert rows == {"2025-03-01-00:00": 3, "2025-03-01-01:00": 2, "2025-03-01-02:00": 2}
    assert (tmp_path / "lake/fluent/orders/dt=2025-03-01/hour=01/part-0.parquet").exists()
