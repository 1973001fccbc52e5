"""deploy/helm-values.yaml against the official chart's values schema (vendored excerpt, see
fc_assets_tests/data/dagster-helm-NOTICE.txt), and against deploy/dagster.yaml, the Dockerfile and the
settings: the same instance on Kubernetes as the one tested on PostgreSQL, our image's command, every
secret in the Kubernetes Secret and none in the ConfigMap."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from fc_assets.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCHEMA = ROOT / "fc_assets_tests" / "data" / "dagster-helm-values.schema.json"


def values() -> dict:
    return yaml.safe_load((DEPLOY / "helm-values.yaml").read_text())


def offline_schema() -> dict:
    """The chart's schema with its references to kubernetesjsonschema.dev dropped (no network here): those
    Kubernetes objects (resources, volumes, probes…) are accepted as any object of the declared type."""

    def strip(node):
        if isinstance(node, dict):
            return {
                k: strip(v)
                for k, v in node.items()
                if not (k == "$ref" and isinstance(v, str) and v.startswith("https://"))
            }
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return strip(json.loads(SCHEMA.read_text()))


def merged_defaults_schema() -> dict:
    """Helm validates the chart's default values merged with ours. We have no copy of the defaults, so a key
    missing from a *map* is not an error here (the default fills it in): `required` is dropped there. Lists are
    replaced whole, not merged, so inside a list item (a user deployment, a tag limit) `required` stays: each
    definition reached through `items` gets a copy `<name>__item` that keeps it."""
    base = offline_schema()
    defs = base["definitions"]
    out: dict = {}

    def build(node, in_item: bool):
        if isinstance(node, list):
            return [build(v, in_item) for v in node]
        if not isinstance(node, dict):
            return node
        result = {}
        for key, value in node.items():
            if key == "required" and not in_item and isinstance(value, list):
                continue
            if key == "$ref" and value.startswith("#/definitions/"):
                name = value.split("/")[-1]
                target = f"{name}__item" if in_item else name
                if target not in out:
                    out[target] = {}
                    out[target] = build(defs[name], in_item)
                result[key] = f"#/definitions/{target}"
            elif key == "items":
                result[key] = build(value, True)
            elif key == "definitions":
                continue
            else:
                result[key] = build(value, in_item)
        return result

    schema = build(base, False)
    schema["definitions"] = out
    return schema


def schema_errors(doc: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(merged_defaults_schema())
    out = []
    for error in validator.iter_errors(doc):
        for e in [error, *error.context]:  # an anyOf's own message hides why each alternative failed
            out.append(f"{'/'.join(map(str, e.absolute_path))}: {e.message}")
    return out


def undeclared_keys(doc, schema: dict, defs: dict, path: str = "") -> list[str]:
    """Keys the schema does not declare where it declares keys (most chart objects do not forbid extra keys,
    so a misspelt key would pass validation and be silently ignored by the templates)."""

    def resolve(s: dict) -> list[dict]:
        if "$ref" in s:
            return resolve(defs[s["$ref"].split("/")[-1]])
        return [s, *(x for alt in s.get("anyOf", []) for x in resolve(alt))]

    schemas = resolve(schema)
    if isinstance(doc, list):
        items = [s["items"] for s in schemas if isinstance(s.get("items"), dict)]
        return [
            m for i, v in enumerate(doc) for it in items for m in undeclared_keys(v, it, defs, f"{path}/{i}")
        ]
    if not isinstance(doc, dict):
        return []
    props = {k: v for s in schemas for k, v in s.get("properties", {}).items()}
    if not props:
        return []  # a free-form map (env, labels, resources, additionalInstanceConfig, runMonitoring…)
    out = []
    for key, value in doc.items():
        if key not in props:
            out.append(f"{path}/{key}")
        else:
            out += undeclared_keys(value, props[key], defs, f"{path}/{key}")
    return out


def test_values_validate_against_the_chart_schema():
    assert schema_errors(values()) == []
    # every definition our values reach is in the vendored excerpt, none of the omitted ones
    assert "$comment" not in json.dumps(merged_defaults_schema()["definitions"].get("K8sRunLauncherConfig"))
    schema = offline_schema()
    assert undeclared_keys(values(), schema, schema["definitions"]) == []


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda v: v["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"].update(
                tagConcurencyLimits=[]
            ),
            "tagConcurencyLimits",
        ),
        (lambda v: v["runLauncher"].update(type="KubernetesRunLauncher"), "KubernetesRunLauncher"),
        (lambda v: v["dagster-user-deployments"]["deployments"][0].pop("port"), "'port' is a required"),
        (lambda v: v["dagster-user-deployments"]["deployments"][0].update(codeServerArg=[]), "codeServerArg"),
        (lambda v: v["postgresql"].update(postgresqlHostname="x"), "postgresqlHostname"),
        (
            lambda v: v["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"][
                "tagConcurrencyLimits"
            ][1].pop("limit"),
            "'limit' is a required",
        ),
        (lambda v: v["dagsterDaemon"].update(runMonitor={}), "runMonitor"),
    ],
)
def test_the_check_catches_mistakes(mutate, expected):
    """The same check on broken copies of our values: a misspelt key, a launcher the chart does not know, a
    user deployment or a tag limit without a key the chart requires (list items are not merged with the
    chart's defaults)."""
    broken = copy.deepcopy(values())
    mutate(broken)
    schema = offline_schema()
    problems = schema_errors(broken) + undeclared_keys(broken, schema, schema["definitions"])
    assert any(expected in p for p in problems), problems


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


def test_the_same_instance_as_deploy_dagster_yaml():
    prod = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    v = values()
    queue = v["dagsterDaemon"]["runCoordinator"]
    assert queue["enabled"] and queue["type"] == "QueuedRunCoordinator"
    q = queue["config"]["queuedRunCoordinator"]
    assert q["maxConcurrentRuns"] == prod["concurrency"]["runs"]["max_concurrent_runs"]
    assert q["tagConcurrencyLimits"] == prod["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": "fc/feed", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in q[
        "tagConcurrencyLimits"
    ]
    assert v["additionalInstanceConfig"]["concurrency"]["pools"] == prod["concurrency"]["pools"]
    assert "runs" not in v["additionalInstanceConfig"]["concurrency"]  # the chart's run coordinator has them
    for key in ("run_monitoring", "run_retries"):
        assert v["dagsterDaemon"][camel(key)] == {camel(k): x for k, x in prod[key].items()}, key
    assert v["retention"]["schedule"]["purgeAfterDays"] == prod["retention"]["schedule"]["purge_after_days"]
    sensor = v["retention"]["sensor"]["purgeAfterDays"]
    assert {k: sensor[k] for k in prod["retention"]["sensor"]["purge_after_days"]} == prod["retention"][
        "sensor"
    ]["purge_after_days"]
    assert v["telemetry"] == prod["telemetry"]
    assert v["runLauncher"]["type"] == prod["run_launcher"]["class"] == "K8sRunLauncher"
    k8s = v["runLauncher"]["config"]["k8sRunLauncher"]
    assert [s["name"] for s in k8s["envSecrets"]] == prod["run_launcher"]["config"]["env_secrets"]
    assert [c["name"] for c in k8s["envConfigMaps"]] == prod["run_launcher"]["config"]["env_config_maps"]
    logs = v["computeLogManager"]
    assert logs["type"] == prod["compute_logs"]["class"]
    assert logs["config"]["s3ComputeLogManager"]["prefix"] == prod["compute_logs"]["config"]["prefix"]
    assert v["postgresql"]["postgresqlScheme"] == prod["storage"]["postgres"]["postgres_db"]["scheme"]
    assert v["postgresql"]["enabled"] is False and v["generatePostgresqlPasswordSecret"] is False


def test_one_code_location_from_our_image_with_the_settings_and_secrets():
    cmd = json.loads(
        next(line for line in (DEPLOY / "Dockerfile").read_text().splitlines() if line.startswith("CMD"))[3:]
    )
    (dep,) = values()["dagster-user-deployments"]["deployments"]
    assert dep["codeServerArgs"] == cmd[cmd.index("-m") :]
    assert dep["port"] == int(cmd[cmd.index("-p") + 1])
    assert dep["includeConfigInLaunchedRuns"]["enabled"]
    k8s = values()["runLauncher"]["config"]["k8sRunLauncher"]
    for key in ("envSecrets", "envConfigMaps", "volumeMounts", "volumes"):
        assert dep[key] == k8s[key], key  # the code server and every run pod see the same settings and files


def manifest(name: str) -> dict:
    return yaml.safe_load((DEPLOY / "k8s" / name).read_text())


def test_secrets_in_the_secret_settings_in_the_configmap():
    secret_fields = {
        (f.validation_alias or f.alias)
        for f in Settings.model_fields.values()
        if "SecretStr" in str(f.annotation)
    }
    known = {str(f.validation_alias or f.alias) for f in Settings.model_fields.values()} | {"AWS_REGION"}
    secret = manifest("fc-assets-secrets.yaml")
    config = manifest("fc-assets-env.yaml")
    names = {d["name"] for d in values()["dagster-user-deployments"]["deployments"][0]["envSecrets"]}
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] in names
    assert config["kind"] == "ConfigMap"
    assert secret_fields <= set(secret["stringData"]), sorted(secret_fields - set(secret["stringData"]))
    assert not secret_fields & set(config["data"]), "a secret in the ConfigMap"
    for key in [*secret["stringData"], *config["data"]]:
        assert key in known, f"{key}: read by nothing"
    mount = values()["dagster-user-deployments"]["deployments"][0]["volumeMounts"][0]["mountPath"]
    assert config["data"]["FC_SFTP_KNOWN_HOSTS"].startswith(mount + "/")


def test_the_sensor_timeout_reaches_the_daemon_too():
    """`DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS` is read by the gRPC client that asks for the tick, i.e. in the
    daemon, as well as by the code server's proxy (deploy/README.md: "on the daemon and the code server"): set
    only on the code server, a long tick is still cut at Dagster's 60 s."""
    v = values()
    (dep,) = v["dagster-user-deployments"]["deployments"]
    on_code_server = dep["env"]["DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS"]
    assert v["dagsterDaemon"].get("env", {}).get("DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS") == on_code_server
