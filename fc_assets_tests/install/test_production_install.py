"""The production install (`deploy/Dockerfile`: the package with the `deploy` extra only) starts.

The image's files are copied as the Dockerfile's `COPY` lines say, installed non-editable with uv into a
fresh virtualenv (no `local`, no `dev` extra), and the console command and the code location are run
from there, outside the checkout so nothing is imported from the source tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fc_assets_tests.install.locked import installed_versions, locked_versions

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not UV.exists(), reason="uv is not installed in the project's venv"),
]


def dockerfile_sources() -> list[str]:
    """The repository paths the Dockerfile copies before `pip install` (its `COPY ... ./...` lines)."""
    sources = []
    for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"] and parts[-1].startswith("./"):
            sources += parts[1:-1]
    return sources


def dockerfile_constraints() -> list[str]:
    """The `-c FILE` options of the Dockerfile's `uv pip install` (the pinned versions it installs)."""
    run_line = next(
        line for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines() if "uv pip install" in line
    )
    words = run_line.split()
    return [words[i + 1] for i, word in enumerate(words) if word == "-c"]


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def deploy_venv(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    tmp = tmp_path_factory.mktemp("prod-install")
    src = tmp / "src"
    src.mkdir()
    for name in dockerfile_sources():
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(path, src / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLUENT_", "FC_", "AWS_", "VIRTUAL_ENV"))}
    env.setdefault("UV_CACHE_DIR", str(ROOT / ".local" / "uv-cache"))
    venv = tmp / "venv"
    made = run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], tmp, env)
    assert made.returncode == 0, made.stderr
    installed = run(
        [
            str(UV),
            "pip",
            "install",
            "--quiet",
            "--python",
            str(venv / "bin" / "python"),
            *[arg for name in dockerfile_constraints() for arg in ("-c", str(src / name))],
            f"{src}[deploy]",
        ],
        tmp,
        env,
    )
    assert installed.returncode == 0, installed.stderr
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env["DAGSTER_HOME"] = str(home)
    return venv, env


def test_the_deploy_install_has_no_local_or_dev_extra(deploy_venv):
    venv, env = deploy_venv
    probe = run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import importlib.util as u, fc_assets; "
            "print(fc_assets.__file__); print([m for m in ('asyncssh', 'moto', 'pytest') if u.find_spec(m)])",
        ],
        venv.parent,
        env,
    )
    assert probe.returncode == 0, probe.stderr
    module_file, found = probe.stdout.splitlines()
    assert module_file.startswith(str(venv)), module_file  # the installed copy, not the checkout
    assert found == "[]"


def test_the_image_installs_the_locked_versions(deploy_venv):
    """Every package of the production install at the version constraints.txt pins (what `make test` passed
    with), not the newest release of the day."""
    assert dockerfile_constraints() == ["constraints.txt"]
    venv, env = deploy_venv
    pins = locked_versions(ROOT / "constraints.txt")
    installed = installed_versions(venv / "bin" / "python", env)
    assert "dagster" in installed and "lxml" in installed
    assert {n: v for n, v in installed.items() if n in pins and pins[n] != v} == {}
    assert not [n for n in installed if n not in pins and n != "fc-assets"]


def test_check_file_runs(deploy_venv):
    venv, env = deploy_venv
    sample = venv.parent / "stock.csv"
    sample.write_text("sku,location,qty\nS1,L1,5\nS2,L1,7\n")
    proc = run([str(venv / "bin" / "fc-assets"), "check-file", "inventory", str(sample)], venv.parent, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert '"rows": 2' in proc.stdout and '"rejected": 0' in proc.stdout, proc.stdout


def test_the_code_location_validates(deploy_venv):
    venv, env = deploy_venv
    proc = run(
        [str(venv / "bin" / "dagster"), "definitions", "validate", "-m", "fc_assets.definitions"],
        venv.parent,
        env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fc_assets" in proc.stdout + proc.stderr


def test_demo_names_the_missing_extra(deploy_venv):
    venv, env = deploy_venv
    proc = run([str(venv / "bin" / "fc-assets"), "demo"], venv.parent, env)
    assert proc.returncode == 1
    assert "install '.[local]'" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    listed = run([str(venv / "bin" / "fc-assets"), "--help"], venv.parent, env)
    assert listed.returncode == 0 and "check-file" in listed.stdout and "demo" in listed.stdout, listed.stderr


PG_ENGINE = """
import sys, yaml, sqlalchemy
from dagster_postgres.utils import pg_url_from_config
config = yaml.safe_load(open(sys.argv[1]))["storage"]["postgres"]
# values from the environment are placeholders here; the port must still be a number
db = {k: (("5432" if k == "port" else "x") if isinstance(v, dict) else v) for k, v in config["postgres_db"].items()}
print(sqlalchemy.create_engine(pg_url_from_config({"postgres_db": db})).dialect.driver)
"""


def test_the_deploy_instance_storage_opens_with_the_installed_driver(deploy_venv):
    """deploy/dagster.yaml keeps runs in Postgres: the URL dagster-postgres builds from it must open with a
    driver the image has (SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3; dagster-postgres
    installs and expects psycopg2)."""
    venv, env = deploy_venv
    proc = run(
        [str(venv / "bin" / "python"), "-c", PG_ENGINE, str(ROOT / "deploy" / "dagster.yaml")],
        venv.parent,
        env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "psycopg2"


def compose_commands() -> list[tuple[str, list[str]]]:
    """Each command deploy/compose.yaml runs in our image: the services' and the code server's health check."""
    import yaml

    services = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())["services"]
    out = []
    for name, svc in services.items():
        if "build" in svc:
            out.append((name, svc["command"]))
            if "healthcheck" in svc:
                out.append((f"{name} healthcheck", svc["healthcheck"]["test"][1:]))  # after "CMD"
    return out


def test_the_compose_commands_exist_in_the_image(deploy_venv):
    """Every executable, subcommand and option deploy/compose.yaml uses exists in the production install."""
    venv, env = deploy_venv
    commands = compose_commands()
    assert {n for n, _ in commands} >= {"code-server", "webserver", "daemon", "code-server healthcheck"}
    for name, argv in commands:
        exe = venv / "bin" / argv[0]
        assert exe.exists(), f"{name}: {argv[0]} is not installed by '.[deploy]'"
        words = [a for a in argv[1:] if not a.startswith("-")]
        sub = []
        for w in words:  # the subcommands: the words before the first option
            if argv.index(w) > len(sub) + 1:
                break
            sub.append(w)
        proc = run([str(exe), *sub, "--help"], venv.parent, env)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
        for flag in (a for a in argv if a.startswith("-")):
            assert f"{flag}," in proc.stdout or f"{flag} " in proc.stdout, f"{name}: no option {flag}"
