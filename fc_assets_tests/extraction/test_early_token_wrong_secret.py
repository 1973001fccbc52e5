"""Review (rev): a wrong client secret with the early token request fails the run once, cleanly, without a
hang, and the secret appears nowhere in the run's events."""

from __future__ import annotations

import time

import dagster as dg

from fc_assets.extraction.assets import build_extraction_asset
from fc_assets.extraction.entities import ORDERS
from fc_assets.resources.fluent import FluentResource
from fc_assets_tests.extraction.test_early_token import instance, token_requests  # noqa: F401 - fixture
from fc_assets_tests.extraction.test_sandbox_extraction import START_DATE, day_key, resources

WRONG = "wrong-secret-rev-4711"


def test_a_wrong_secret_fails_the_run_once_without_the_secret(sandbox, lake, instance):  # noqa: F811
    res = resources(sandbox, lake)
    res["fluent"] = FluentResource(
        base_url=sandbox.base_url, client_id="fc-sandbox", client_secret=WRONG, concurrency=4, max_retries=4
    )
    before = token_requests(sandbox)
    started = time.monotonic()
    result = dg.materialize(
        [build_extraction_asset(ORDERS, START_DATE, retry_policy=None)],
        resources=res,
        instance=instance,
        partition_key=day_key(3),
        raise_on_error=False,
    )
    assert not result.success
    assert time.monotonic() - started < 60
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert len(failures) == 1
    text = "\n".join(str(r.dagster_event or r.user_message) for r in instance.all_logs(result.run_id))
    assert WRONG not in text
    assert "401" in text or "credentials" in text.lower() or "invalid_client" in text, text[-2000:]
    assert token_requests(sandbox) - before <= 4  # the early attempt, then at most the chains' own tries
