"""Fixtures live in fc_assets_tests/fixtures/, one module per server they start; they are loaded here."""

pytest_plugins = [
    "fc_assets_tests.fixtures.sandbox",
    "fc_assets_tests.fixtures.s3",
    "fc_assets_tests.fixtures.sftp",
    "fc_assets_tests.fixtures.dagster",
    "fc_assets_tests.fixtures.sshd",
    "fc_assets_tests.fixtures.postgres",
]
