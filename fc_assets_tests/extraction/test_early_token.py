"""A fresh client's token round trip overlaps the work before the first page request, against the sandbox:
the asset asks for it when it opens the client, before the imports and the lake's housekeeping."""

from __future__ import annotations

import time
from typing import Any

import dagster as dg
import pytest

import fc_assets.extraction.assets as assets_module
from fc_assets.extraction.assets import build_extraction_asset
from fc_assets.extraction.entities import ORDERS
from fc_assets_tests.extraction.test_sandbox_extraction import (
    START_DATE,
    day_key,
    expected_ids,
    parquet_ids,
    resources,
)

WAIT_S = 5.0


def token_requests(sandbox) -> int:
    return sandbox.admin.received()["requests"].get("POST /oauth/token", 0)


@pytest.fixture
def instance(tmp_path):
    (tmp_path / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "home")) as inst:
        yield inst


def test_the_asset_gets_its_token_while_the_lake_housekeeping_runs(sandbox, lake, instance, monkeypatch):
    before = token_requests(sandbox)
    seen: list[bool] = []
    remember = assets_module.remember_before_replacing

    def housekeeping_that_waits_for_the_token(*args: Any, **kwargs: Any) -> Any:
        # the lake's housekeeping before the first page (S3 reads in production): it ends only once the
        # sandbox has answered a token request, or after WAIT_S
        deadline = time.monotonic() + WAIT_S
        while token_requests(sandbox) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append(token_requests(sandbox) > before)
        return remember(*args, **kwargs)

    monkeypatch.setattr(assets_module, "remember_before_replacing", housekeeping_that_waits_for_the_token)
    key = day_key(3)
    result = dg.materialize(
        [build_extraction_asset(ORDERS, START_DATE, retry_policy=None)],
        resources=resources(sandbox, lake),
        instance=instance,
        partition_key=key,
    )
    assert result.success
    assert seen == [True]  # the token came while the housekeeping ran, not after it
    assert parquet_ids(lake, "orders", key) == expected_ids(sandbox, "orders", key)
    meta = result.asset_materializations_for_node("orders")[0].metadata
    assert meta["run_token_requests"].value == 1 == token_requests(sandbox) - before
