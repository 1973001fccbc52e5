"""Fixtures live in fc_assets_tests/fixtures/, one module per server they start; they are loaded here."""

import pytest

pytest_plugins = [
    "fc_assets_tests.fixtures.sandbox",
    "fc_assets_tests.fixtures.s3",
    "fc_assets_tests.fixtures.sftp",
    "fc_assets_tests.fixtures.dagster",
    "fc_assets_tests.fixtures.sshd",
    "fc_assets_tests.fixtures.postgres",
    "fc_assets_tests.fixtures.flow",
    "fc_assets_tests.fixtures.s3_faults",
]


@pytest.fixture(autouse=True)
def _no_state_between_tests():
    """Settings are cached per process; a test that changes the environment (monkeypatch) must not leave
    its settings to the next test, so the cache is cleared after every test (and Dagster's current
    defs-state storage too, see below)."""
    yield
    from dagster._core.storage.defs_state.base import _current_storage

    from fc_assets.settings import get_settings

    get_settings.cache_clear()
    # a sensor context built on a test's instance leaves Dagster's current defs-state storage pointing at
    # that instance; once it is closed, the next Definitions load fails ("undefined DagsterInstance weakref")
    _current_storage.set(None)
