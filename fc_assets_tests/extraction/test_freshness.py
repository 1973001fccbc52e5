"""Freshness checks on a real Dagster instance: an entity whose latest complete day is not materialized is
shown overdue (failed `freshness_check`); once the sandbox's days are extracted, the check passes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from fc_assets.extraction.assets import build_extraction_asset
from fc_assets.extraction.entities import ORDERS
from fc_assets.extraction.freshness import build_freshness_checks, build_freshness_sensor
from fc_assets.extraction.windows import DAILY
from fc_assets.resources.fluent import FluentResource
from fc_assets.resources.storage import LakeResource

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
START_DATE = (TODAY - timedelta(days=10)).strftime("%Y-%m-%d")


def key(days_ago: int) -> str:
    return (TODAY - timedelta(days=days_ago)).strftime("%Y-%m-%d")


def evaluate(assets, checks, instance, resources) -> dg.AssetCheckEvaluation:
    result = dg.materialize(
        [*assets, *checks],
        instance=instance,
        resources=resources,
        selection=dg.AssetSelection.checks(*(k for c in checks for k in c.check_keys)),
    )
    [evaluation] = result.get_asset_check_evaluations()
    return evaluation


def test_freshness_check_fails_until_the_latest_day_is_extracted(sandbox, lake, dagster_instance):
    asset = build_extraction_asset(ORDERS, START_DATE, retry_policy=None)
    checks = build_freshness_checks([(DAILY, asset)])
    assert {k.name for c in checks for k in c.check_keys} == {"freshness_check"}

    resources = {
        "fluent": FluentResource(
            base_url=sandbox.base_url, client_id="fc-sandbox", client_secret="fc-sandbox-secret"
        ),
        "lake": LakeResource(
            uri=lake.uri,
            endpoint_url=lake.endpoint_url,
            access_key_id=lake.access_key_id,
            secret_access_key=lake.secret_access_key,
        ),
    }
    overdue = evaluate([asset], checks, dagster_instance, resources)
    assert overdue.asset_key == dg.AssetKey("orders") and not overdue.passed
    assert overdue.severity == dg.AssetCheckSeverity.WARN

    # yesterday (past the 03:00 deadline) or the day before (earlier in the day): both extracted
    done = dg.materialize(
        [asset],
        resources=resources,
        instance=dagster_instance,
        tags={"dagster/asset_partition_range_start": key(2), "dagster/asset_partition_range_end": key(1)},
    )
    assert done.success
    fresh = evaluate([asset], checks, dagster_instance, resources)
    assert fresh.passed, fresh.metadata


def test_the_sensor_requests_the_checks(dagster_instance, tmp_path):
    asset = build_extraction_asset(ORDERS, START_DATE, retry_policy=None)
    checks = build_freshness_checks([(DAILY, asset)])
    sensor = build_freshness_sensor(checks)
    unused = {  # the sensor only reads the instance
        "fluent": FluentResource(base_url="http://127.0.0.1:9", client_id="x", client_secret="y"),
        "lake": LakeResource(uri=f"file://{tmp_path}/lake"),
    }
    defs = dg.Definitions(assets=[asset], asset_checks=checks, sensors=[sensor], resources=unused)
    context = dg.build_sensor_context(instance=dagster_instance, definitions=defs)
    [request] = sensor.evaluate_tick(context).run_requests
    assert set(request.asset_check_keys) == {dg.AssetCheckKey(dg.AssetKey("orders"), "freshness_check")}
