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
    "fc_assets_tests.fixtures.settings",
]

HEAVY_FIRST = [
    # (three workers take these in turn, two each to start: gw0 the 1st and 4th, gw1 the 2nd and 5th, ...)
    "fc_assets_tests/production/test_postgres_instance.py",  # ~230 s quiet: daemon, code server, 31 runs
    "fc_assets_tests/ingestion_flow/test_delivery.py",  # ~150 s
    "fc_assets_tests/reliability/test_fault_matrix.py",  # ~150 s
    "fc_assets_tests/demo/test_demo_stack.py",  # ~200 s: two demo starts; after Postgres, on the same worker
    "fc_assets_tests/ingestion_flow/test_feed_retries.py",
    "fc_assets_tests/ingestion_flow/test_delta_trust.py",
    "fc_assets_tests/ingestion_flow/test_end_to_end.py",
    "fc_assets_tests/install/test_production_install.py",
    "fc_assets_tests/ingestion_flow/test_pipeline_resume.py",
    "fc_assets_tests/ingestion_flow/test_state_cli.py",
    "fc_assets_tests/ingestion_flow/test_crash_kill.py",
    "fc_assets_tests/bench/test_bench_smoke.py",
    "fc_assets_tests/ingestion_flow/test_master_data.py",
    "fc_assets_tests/extraction/test_sandbox_extraction.py",
    "fc_assets_tests/ingestion_flow/test_sensors.py",
]
"""`make test` runs on three workers, a whole file at a time each (`-n 3 --dist loadfile --no-loadscope-reorder`
in the Makefile): the longest files start first so that neither worker is left with one at the end, and the two
heaviest multi-process tests (Postgres, demo) run one after the other on one worker, not against each other."""


def pytest_collection_modifyitems(config, items):
    rank = {path: i for i, path in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: file order kept


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
