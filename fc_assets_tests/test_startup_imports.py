"""Start-up cost: every Dagster process (code server, run worker, step, `dagster` CLI) imports
`fc_assets.definitions` and every `fc-assets` command imports `fc_assets.cli`, so heavy libraries are
imported where they are used, not at load. Checked by module, not by wall clock (CI is a loaded 2-core
machine); the timings are in bench/startup_bench.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FC_ASSETS = str(Path(sys.executable).parent / "fc-assets")
DAGSTER = str(Path(sys.executable).parent / "dagster")

HEAVY_AT_LOAD = {
    "pandas": "dataframe validation of a partition/chunk only (~1 s to import)",
    "pandera": "schemas are built on first validation; imports pandas and typeguard",
    "duckdb": "analytics queries and the feed delta run inside assets",
    "pyarrow.dataset": "imports pandas; only reading the lake at run time",
    "boto3": "S3 clients are made by resources at run time",
    "botocore": "same as boto3",
    "paramiko": "SFTP connections are opened by the resource at run time",
    "asyncssh": "the local SFTP server of the demo stack",
    "httpx": "the Fluent client is opened by the resource at run time",
    "graphql": "queries are parsed when a partition is extracted",
    "sqlalchemy": "dagster alone does not import it; dagster_aws's package import did",
    "dagster_aws": "its package import loads dagster._core.test_utils, SQLAlchemy and alembic",
    "dagster._core.test_utils": "test helpers, loaded by dagster_aws",
    "pyarrow": "with numpy ~0.2 s: declarations name their types; Arrow is imported when data moves",
    "numpy": "imported by pyarrow",
    "lxml": "only XML files and XML exports need it",
    "pydantic_settings": "~0.1 s (its CLI source ~80 ms): settings are read by Settings.from_environment",
}
"""Modules that must not be imported by `import fc_assets.definitions`, each with why it is heavy/not needed."""

CLI_NEVER = {
    "fc_assets.local_stack": "the demo stack: only `fc-assets demo` needs it",
    "fc_assets.sandbox": "the sandbox server: only `fc-assets sandbox` needs it",
    "asyncssh": "the demo's SFTP server",
    "boto3": "S3 is not involved in checking a local file",
    "botocore": "same as boto3",
    "paramiko": "SFTP is not involved in checking a local file",
    "dagster": "no Dagster process is started by these commands",
}
"""Modules that `fc-assets --help` and `fc-assets check-file` must not import."""

CHECK_FILE_CSV_NEVER = {
    "pandas": "the chunks are validated as Arrow masks (pyarrow imports it on a pa.array/to_numpy call)",
    "pandera": "every built-in row rule has its Arrow mask; pandera only runs rules without one",
    "pydantic": "the settings a file read needs are read from the environment (env_settings.py)",
    "pydantic_settings": "same as pydantic",
    "lxml": "only XML files need it",
    "ijson": "only JSON files need it",
}
"""Modules that `fc-assets check-file` of a CSV or Parquet file of any built-in feed must not import."""

PRINT_MODULES = "import sys, json; print(json.dumps(sorted(sys.modules)))"
RUN_CLI = (
    # check-file leaves with os._exit (check_file._exit_now); here it must come back to print the modules
    "import os\ndef _exit(code):\n    raise SystemExit(code)\nos._exit = _exit\n"
    "from fc_assets.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
)


def _run(args: list[str], **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}  # warnings as a user sees them
    return subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT, **kw)


def _loaded(heavy: dict[str, str], modules: list[str]) -> dict[str, str]:
    return {m: why for m, why in heavy.items() if any(n == m or n.startswith(m + ".") for n in modules)}


def test_definitions_load_without_heavy_imports_and_in_full():
    code = (
        "import fc_assets.definitions as d, sys, json\n"
        "defs = d.defs\n"
        "repo = defs.get_repository_def()\n"
        "keys = sorted(k.to_user_string() for k in repo.asset_graph.get_all_asset_keys())\n"
        "print(json.dumps({'assets': keys, 'jobs': len(repo.get_all_jobs()), 'sensors': len(repo.sensor_defs),"
        " 'checks': len(repo.asset_checks_defs_by_key), 'modules': sorted(sys.modules)}))"
    )
    proc = _run([sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert _loaded(HEAVY_AT_LOAD, out["modules"]) == {}
    # everything still loads (get_repository_def resolves the asset graph, jobs and sensors): per entity its
    # asset and `<entity>_current`, the analytics tables, per feed `<feed>_feed`; freshness checks and
    # sensor; one sensor per feed inbox
    from fc_assets.analytics.assets import ANALYTICS_ASSETS
    from fc_assets.extraction.entities import ENTITIES
    from fc_assets.ingestion.feeds import FEEDS

    expected = {e.name for e in ENTITIES} | {f"{e.name}_current" for e in ENTITIES}
    expected |= {k.to_user_string() for a in ANALYTICS_ASSETS for k in a.keys}
    expected |= {f"{name}_feed" for name in FEEDS}
    assert set(out["assets"]) == expected
    assert out["checks"] == len(ENTITIES)
    assert out["sensors"] == 1 + sum(len(f.inboxes) for f in FEEDS.values())
    assert "Warning" not in proc.stderr, proc.stderr


def test_definitions_load_ends_by_freezing_what_it_loaded():
    """`gc.freeze()` at the end of the load (later collections skip the code location's objects); the
    garbage collector itself stays on."""
    code = "import gc, fc_assets.definitions\nprint(gc.get_freeze_count(), gc.isenabled())"
    proc = _run([sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr
    frozen, enabled = proc.stdout.split()
    assert enabled == "True"
    assert int(frozen) > 100_000  # Dagster's and our long-lived objects


def test_dagster_validate_passes_without_warnings(tmp_path):
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["DAGSTER_HOME"] = str(tmp_path)
    proc = subprocess.run(
        [DAGSTER, "definitions", "validate", "-m", "fc_assets.definitions"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # (the command itself warns that `dg check defs` supersedes it: Dagster's CLI, not our code)
    ours = [line for line in proc.stderr.splitlines() if "definitions_validate_command" not in line]
    assert not [line for line in ours if "Warning" in line], proc.stderr


def test_cli_help_imports_no_subcommand_stack():
    code = (
        "import sys\nsys.argv = ['fc-assets', '--help']\nfrom fc_assets.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n" + PRINT_MODULES
    )
    proc = _run([sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr
    assert "check-file" in proc.stdout  # the help was printed
    modules = json.loads(proc.stdout.splitlines()[-1])
    assert _loaded(CLI_NEVER, modules) == {}


@pytest.mark.parametrize("rows", [2000])
def test_check_file_imports_no_demo_stack_or_network_clients(tmp_path, rows):
    path = tmp_path / "stock.csv"
    lines = ["sku,location,quantity,status,expected_on"]
    lines += [f"SKU{i},LOC{i % 7},{i % 50},AVAILABLE,2026-01-02" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    code = (
        f"import sys\nsys.argv = ['fc-assets', 'check-file', 'inventory', {str(path)!r}]\n"
        + RUN_CLI
        + PRINT_MODULES
    )
    proc = _run([sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr
    summary, modules = (json.loads(line) for line in proc.stdout.splitlines()[-2:])
    assert summary["rows"] == rows and summary["accepted"] == rows
    assert _loaded(CLI_NEVER, modules) == {}


@pytest.mark.parametrize(
    ("feed", "fmt"),
    [("inventory", "csv"), ("products", "csv"), ("locations", "csv"), ("inventory", "parquet")],
)
def test_check_file_of_csv_or_parquet_imports_no_heavy_library(tmp_path, feed, fmt):
    from fc_assets_tests.ingestion_files.test_rules_agree import generated_csv

    path = tmp_path / f"{feed}.csv"
    data = generated_csv(feed, 600, 3).decode()
    path.write_text(data.replace('"[""a""]"', "A|B"))  # (a JSON list in a CSV cell is parsed by pyarrow)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        text = pcsv.ConvertOptions(column_types={c: pa.string() for c in data.split("\n", 1)[0].split(",")})
        table = pcsv.read_csv(
            path, convert_options=text, parse_options=pcsv.ParseOptions(invalid_row_handler=lambda r: "skip")
        )
        path = tmp_path / f"{feed}.parquet"
        pq.write_table(table, path)
    args = ["fc-assets", "check-file", feed, str(path), "--rejects", str(tmp_path / "rejects.csv")]
    code = f"import sys\nsys.argv = {args!r}\n" + RUN_CLI + PRINT_MODULES
    proc = _run([sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr
    summary, modules = (json.loads(line) for line in proc.stdout.splitlines()[-2:])
    assert summary["rejected"] > 0 and summary["accepted"] > 0  # rejects and row rules were on the way
    assert _loaded(CHECK_FILE_CSV_NEVER, modules) == {}


def test_env_settings_defaults_are_the_settings_defaults(monkeypatch, settings_env):
    from fc_assets.env_settings import DEFAULTS, env_setting
    from fc_assets.settings import Settings, get_settings

    for name, (variable, default) in DEFAULTS.items():
        assert (Settings.model_fields[name].alias, Settings.model_fields[name].default) == (variable, default)
        monkeypatch.delenv(variable, raising=False)
        assert env_setting(name) == default
    settings_env(fc_reject_threshold=0.25)  # set: read (and validated) by the settings
    assert env_setting("reject_threshold") == 0.25
    settings_env(fc_reject_threshold=None)
    # the field's own name is read by the settings too (populate_by_name): so here
    for name, value, expected in (("REJECT_THRESHOLD", "0.5", 0.5), ("MAX_DECOMPRESSED_BYTES", "1000", 1000)):
        settings_env(**{name: value})
        assert env_setting(name.lower()) == getattr(get_settings(), name.lower()) == expected
        settings_env(**{name: None})
