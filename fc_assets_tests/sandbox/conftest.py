"""`api`: an authenticated client of the session sandbox (fixture `sandbox`)."""

from __future__ import annotations

import pytest

from fc_assets_tests.sandbox.api import Api


@pytest.fixture
def api(sandbox):
    client = Api(sandbox.base_url)
    yield client
    client.close()
