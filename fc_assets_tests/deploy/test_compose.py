"""deploy/compose.yaml kept honest without Docker: it is parsed and checked against the Dockerfile, the
workspace, the instance config and the environment variables the code reads.

The commands of its services are run (`--help`) in the production install by
fc_assets_tests/install/test_production_install.py; the instance config is opened on a real PostgreSQL here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from fc_assets.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DAGSTER_SERVICES = ("code-server", "webserver", "daemon")
# settings only `make demo` uses (ports of the local stack); FC_DAGSTER_PORT is also the published UI port
DEMO_ONLY = {"FC_SANDBOX_PORT", "FC_S3_PORT", "FC_DAGSTER_PORT"}
# a code default with one of these is the local stack's: compose must not fall back to it silently
LOCAL_STACK_DEFAULTS = ("127.0.0.1", "sandbox", "testing", "fc-sftp")
INTERPOLATION = re.compile(r"(?<!\$)\$\{([A-Z0-9_]+)(?:(:?[-?])([^}]*))?\}")
READS = re.compile(r"(?:environ\.get|getenv|EnvVar)\(\s*\"([A-Z][A-Z0-9_]+)\"")


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def aliases() -> dict[str, list[str]]:
    """Each `Settings` field's variable names (several when it accepts alternatives)."""
    out = {}
    for key, field in Settings.model_fields.items():
        alias = field.validation_alias or field.alias
        out[key] = list(alias.choices) if hasattr(alias, "choices") else [alias]
    return out


def interpolated() -> set[str]:
    """Variables compose substitutes (`${X}`, `${X:-d}`, `${X:?msg}`) anywhere in its values."""
    found: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str):
            found.update(m[0] for m in INTERPOLATION.findall(node))

    walk(compose())
    return found


def settings_variables() -> dict[str, object]:
    """Every variable `Settings` reads, with its default."""
    out = {}
    for key, names in aliases().items():
        default = Settings.model_fields[key].default
        default = default.get_secret_value() if hasattr(default, "get_secret_value") else default
        for name in names:
            out[name] = default
    return out


def code_variables() -> set[str]:
    """Settings plus the variables read by name elsewhere in the code location (not the local stack or the
    sandbox, which production does not run)."""
    names = set(settings_variables())
    for path in (ROOT / "fc_assets").rglob("*.py"):
        if {"local_stack", "sandbox"} & set(path.relative_to(ROOT / "fc_assets").parts):
            continue
        names |= set(READS.findall(path.read_text()))
    return names


def instance_variables(instance_yaml: Path) -> set[str]:
    found: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            if set(node) == {"env"}:
                found.add(node["env"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(yaml.safe_load(instance_yaml.read_text()))
    return found


def dagster_reads(name: str) -> bool:
    """Whether the installed Dagster reads this variable (its source names it)."""
    import dagster

    pkg = Path(dagster.__file__).parent
    return any(name in p.read_text(errors="ignore") for p in pkg.rglob("*.py"))


def bind_mounts(service: dict) -> list[tuple[str, str]]:
    out = []
    for v in service.get("volumes", []):
        source, target = v.split(":")[:2]
        if source.startswith("."):
            out.append((source, target))
    return out


def test_every_variable_the_code_reads_is_passed_to_the_code_server_and_none_unknown():
    env = compose()["services"]["code-server"]["environment"]
    instance = instance_variables(DEPLOY / "dagster-compose.yaml")
    wanted = code_variables() - DEMO_ONLY - {"FC_CRASH_AT"}
    # of alternative names (AWS_REGION / AWS_DEFAULT_REGION) one is enough
    alternatives = {n for names in aliases().values() for n in names[1:] if names[0] in env}
    missing = wanted - set(env) - alternatives
    assert not missing, f"read by the code, missing in compose: {sorted(missing)}"
    unknown = {
        n
        for n in env
        if n not in wanted and n not in instance and n != "DAGSTER_HOME" and not dagster_reads(n)
    }
    assert not unknown, f"passed by compose, read by nothing: {sorted(unknown)}"


def test_no_local_stack_default_leaks_into_production():
    """A variable whose code default is the local stack (sandbox URL, moto credentials, loopback SFTP) must be
    required (`${X:?…}`) or given a production value in compose, never passed through unset."""
    env = compose()["services"]["code-server"]["environment"]
    for name, default in settings_variables().items():
        if name in DEMO_ONLY or not any(s in str(default) for s in LOCAL_STACK_DEFAULTS):
            continue
        value = env.get(name)
        assert isinstance(value, str), f"{name}: passed through unset, would default to {default!r}"
        m = INTERPOLATION.fullmatch(value)
        assert m is None or m.group(2) in (":?", ":-"), f"{name}: {value!r}"
        if m and m.group(2) == ":-":
            assert not any(s in m.group(3) for s in LOCAL_STACK_DEFAULTS), f"{name}: {value!r}"


def test_every_compose_setting_is_in_the_readme_table():
    readme = (ROOT / "README.md").read_text()
    env = compose()["services"]["code-server"]["environment"]
    for name in env:
        if name.startswith(("FC_", "FLUENT_", "AWS_")):
            assert f"`{name}`" in readme, f"{name} is not in the README configuration table"


def test_interpolated_variables_are_documented():
    """Variables compose itself reads from the shell or deploy/.env are settings, instance variables or
    named in deploy/README.md."""
    known = code_variables() | instance_variables(DEPLOY / "dagster-compose.yaml")
    deploy_readme = (DEPLOY / "README.md").read_text()
    for name in interpolated():
        assert name in known or f"`{name}`" in deploy_readme, name


def test_every_dagster_process_opens_the_same_instance():
    services = compose()["services"]
    needed = instance_variables(DEPLOY / "dagster-compose.yaml")
    assert needed >= {"DAGSTER_PG_HOST", "DAGSTER_PG_PASSWORD"}
    for name in DAGSTER_SERVICES:
        svc = services[name]
        assert needed <= set(svc["environment"]), (name, sorted(needed - set(svc["environment"])))
        assert svc["environment"]["DAGSTER_HOME"] == "/opt/dagster/home"
        mounts = dict(bind_mounts(svc))
        assert mounts.get("./dagster-compose.yaml") == "/opt/dagster/home/dagster.yaml", name
        assert svc["environment"]["DAGSTER_PG_HOST"] in services  # the postgres service
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
    pg = services["postgres"]["environment"]
    code_env = services["code-server"]["environment"]
    assert pg["POSTGRES_PASSWORD"] == code_env["DAGSTER_PG_PASSWORD"]
    assert pg["POSTGRES_USER"] == code_env["DAGSTER_PG_USER"]
    assert pg["POSTGRES_DB"] == code_env["DAGSTER_PG_DB"]


def test_bind_mounts_exist():
    for name, svc in compose()["services"].items():
        for source, _ in bind_mounts(svc):
            assert (DEPLOY / source).exists(), f"{name}: {source} does not exist next to compose.yaml"


def dockerfile() -> tuple[list[str], list[str]]:
    """The Dockerfile's COPY sources and its CMD."""
    sources, cmd = [], []
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["COPY"]:
            sources += parts[1:-1]
        elif parts[:1] == ["CMD"]:
            cmd = json.loads(line[3:])
    return sources, cmd


def test_the_image_builds_from_the_repository_root():
    sources, cmd = dockerfile()
    for name in DAGSTER_SERVICES:
        build = compose()["services"][name]["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert context == ROOT, name
        assert (context / build["dockerfile"]).is_file(), name
        for source in sources:
            assert (context / source).exists(), f"COPY {source}: not in the build context"
    # the code server runs the image's own command
    assert compose()["services"]["code-server"]["command"] == cmd


def option(argv: list[str], *flags: str) -> str:
    for i, a in enumerate(argv):
        if a in flags:
            return argv[i + 1]
    raise AssertionError(f"none of {flags} in {argv}")


def test_workspace_points_at_the_code_server():
    services = compose()["services"]
    workspace = yaml.safe_load((DEPLOY / "workspace-compose.yaml").read_text())
    (entry,) = workspace["load_from"]
    grpc = entry["grpc_server"]
    code = services["code-server"]
    assert grpc["host"] == "code-server"
    assert grpc["port"] == int(option(code["command"], "-p", "--port"))
    assert grpc["port"] == int(option(code["healthcheck"]["test"], "-p", "--port"))
    assert grpc["location_name"] == "fc_assets"
    for name in ("webserver", "daemon"):
        svc = services[name]
        path = option(svc["command"], "-w", "--workspace")
        assert dict(bind_mounts(svc)).get("./workspace-compose.yaml") == path, name
        assert svc["depends_on"]["code-server"]["condition"] == "service_healthy"


def test_the_compose_instance_is_deploy_dagster_yaml_but_launcher_and_logs():
    """Same storage, queue, per-feed limits, monitoring and retries as deploy/dagster.yaml (no drift)."""
    prod = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    single = yaml.safe_load((DEPLOY / "dagster-compose.yaml").read_text())
    for key in ("run_launcher", "compute_logs"):
        prod.pop(key)
        single.pop(key)
    assert single == prod


def test_the_compose_instance_opens_on_postgres(postgres, tmp_path, monkeypatch):
    """deploy/dagster-compose.yaml opened as the containers open it, on a real PostgreSQL."""
    import dagster as dg

    home = tmp_path / "home"
    home.mkdir()
    config = yaml.safe_load((DEPLOY / "dagster-compose.yaml").read_text())
    config["compute_logs"]["config"]["base_dir"] = str(tmp_path / "logs")  # the volume's mount point
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    for k, v in postgres.env().items():
        monkeypatch.setenv(k, v)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
        assert type(instance.compute_log_manager).__name__ == "LocalComputeLogManager"
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {"key": "fc/feed", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits
        run = instance.create_run_for_job(dg.GraphDefinition("noop").to_job(), run_id=None)
        assert instance.get_run_by_id(run.run_id) is not None


def test_empty_aws_endpoint_means_aws(settings_env):
    """compose passes `AWS_ENDPOINT_URL=""` (the README: "set it empty for AWS itself"): the S3 clients must
    then talk to AWS, not fail on an empty endpoint."""
    from fc_assets.ingestion.definitions import s3_resource

    settings_env(AWS_ENDPOINT_URL="", AWS_REGION="eu-west-1")
    client = s3_resource().get_client()
    assert client.meta.endpoint_url == "https://s3.eu-west-1.amazonaws.com"


@pytest.mark.parametrize("path", ["compose.yaml", "dagster-compose.yaml", "workspace-compose.yaml"])
def test_deploy_readme_names_the_files(path):
    assert path in (DEPLOY / "README.md").read_text()


def test_env_example_and_dockerignore_agree_with_compose_and_dockerfile():
    """deploy/env.example holds only variables compose passes; the BuildKit ignore file lets through exactly
    what the Dockerfile copies."""
    passed = set(compose()["services"]["code-server"]["environment"]) | interpolated()
    for line in (DEPLOY / "env.example").read_text().splitlines():
        line = line.lstrip("# ")
        if "=" in line and line.split("=")[0].isupper():
            assert line.split("=")[0] in passed, line
    allowed = {
        line[1:]
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert allowed == set(dockerfile()[0])


def test_empty_aws_keys_mean_the_default_credential_chain(settings_env, tmp_path):
    """deploy/k8s/fc-assets-secrets.yaml ships `AWS_ACCESS_KEY_ID: ""` (an IAM role: IRSA, instance profile):
    the inbox client must then take AWS's default chain (here a shared credentials file), as the lake does,
    not sign with empty keys."""
    from fc_assets.ingestion.definitions import s3_resource

    creds = tmp_path / "credentials"
    creds.write_text("[default]\naws_access_key_id = AKIACHAIN\naws_secret_access_key = chain-secret\n")
    settings_env(
        AWS_SHARED_CREDENTIALS_FILE=creds,
        AWS_CONFIG_FILE=tmp_path / "config",
        AWS_PROFILE=None,
        AWS_SESSION_TOKEN=None,
        AWS_ACCESS_KEY_ID="",
        AWS_SECRET_ACCESS_KEY="",
        AWS_ENDPOINT_URL="",
        AWS_REGION="eu-west-1",
    )
    credentials = s3_resource().get_client()._request_signer._credentials
    assert credentials is not None and credentials.access_key == "AKIACHAIN"
