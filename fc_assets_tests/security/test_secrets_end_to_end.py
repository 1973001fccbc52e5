"""A full extraction and ingestion with recognisable secrets (quotes and backslashes) configured the way
production does (environment → settings → `EnvVar` resources of definitions.py), against a sandbox that
only accepts that client secret and password, moto's S3 and an SFTP server that only accepts that password.
None of the four secrets may appear in Python logging at DEBUG (httpx/httpcore included), stdout/stderr,
Dagster's event log (every record of the instance, serialized), runs, metadata, reprs, exceptions, or any
file written (Parquet, rejects, archives)."""

from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.execution.build_resources import build_resources
from dagster._serdes import serialize_value

from fc_assets.extraction.assets import build_extraction_asset
from fc_assets.extraction.entities import ORDERS
from fc_assets.ingestion.assets import build_feed_definitions
from fc_assets.ingestion.deliver.plans import plan_for
from fc_assets.ingestion.deliver.senders import CRASH_ENV
from fc_assets.ingestion.feeds import inventory_feed
from fc_assets.local_stack.process import free_port
from fc_assets.local_stack.sftp_server import sftp_server as make_sftp_server
from fc_assets.resources.fluent import FluentAuthError, FluentResource
from fc_assets.resources.sftp import SFTPConfigError, SFTPResource
from fc_assets.sandbox.runner import SandboxServer
from fc_assets_tests.fixtures.sftp import SftpServer
from fc_assets_tests.ingestion_flow.flow import Flow, metadata
from fc_assets_tests.security.secrets import leak_forms, nasty_secret

SMALL = ["--orders", "40", "--locations", "5", "--products", "10", "--inventory-positions", "20"]
SMALL += ["--virtual-positions", "5", "--batch-delay-ms", "50", "--days", "5"]


@pytest.fixture(scope="module")
def secrets() -> dict[str, str]:
    return {
        name: nasty_secret(name)
        for name in ("FLUENT_CLIENT_SECRET", "FLUENT_PASSWORD", "AWS_SECRET_ACCESS_KEY", "FC_SFTP_PASSWORD")
    }


@pytest.fixture(scope="module")
def secret_sandbox(secrets):
    args = [
        *SMALL,
        "--client-secret",
        secrets["FLUENT_CLIENT_SECRET"],
        "--password",
        secrets["FLUENT_PASSWORD"],
    ]
    with SandboxServer(args, seed=5) as server:
        yield server


@pytest.fixture(scope="module")
def secret_sftp(secrets, tmp_path_factory):
    base = tmp_path_factory.mktemp("sftp-secret")
    root, state, port = base / "root", base / "state", free_port()
    root.mkdir()
    password = secrets["FC_SFTP_PASSWORD"]
    with make_sftp_server(root, state, port=port, password=password, log_path=base / "sftp.log") as proc:
        yield SftpServer(proc, "127.0.0.1", port, "fc", password, root, state / "known_hosts")


@pytest.fixture
def env(secrets, secret_sandbox, secret_sftp, s3_server, lake, settings_env):
    """The production configuration path: only environment variables."""
    values = {
        **secrets,
        "FLUENT_BASE_URL": secret_sandbox.base_url,
        "FLUENT_CLIENT_ID": "fc-sandbox",
        "FLUENT_USERNAME": "sandbox",  # the password grant, so FLUENT_PASSWORD is used
        "FC_FLUENT_MAX_RETRIES": "2",
        "FC_LAKE_URI": lake.uri,
        "AWS_ENDPOINT_URL": s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": "fc-access-key",
        "AWS_REGION": "us-east-1",
        "FC_SFTP_HOST": secret_sftp.host,
        "FC_SFTP_PORT": str(secret_sftp.port),
        "FC_SFTP_USERNAME": secret_sftp.user,
        "FC_SFTP_KNOWN_HOSTS": str(secret_sftp.known_hosts),
    }
    settings_env(**{CRASH_ENV: None}, **values)
    return values


def production_resources() -> dict:
    from fc_assets.definitions import lake_resource
    from fc_assets.ingestion.definitions import s3_resource

    return {
        "lake": lake_resource(),
        "fluent": FluentResource.from_env(),
        "s3": s3_resource(),
        "sftp": SFTPResource.from_settings(),
    }


def exception_texts(exc: BaseException) -> list[str]:
    return [str(exc), repr(exc), "".join(traceback.format_exception(exc))]


def test_secrets_appear_nowhere(
    env, secrets, secret_sandbox, secret_sftp, s3_server, lake, dagster_instance, caplog, capfd, settings_env
):
    caplog.set_level(logging.DEBUG)  # every logger: fc_assets, httpx, httpcore, paramiko, botocore, dagster
    instance = dagster_instance
    resources = production_resources()
    assert isinstance(resources["fluent"].client_secret, dg.EnvVar)  # EnvVars, as definitions.py builds them
    texts: list[str] = [repr(r) for r in resources.values()] + [str(r) for r in resources.values()]
    with build_resources(resources) as resolved:  # as assets receive them: EnvVars replaced by the values
        assert resolved.fluent.client_secret == secrets["FLUENT_CLIENT_SECRET"]
        texts += [f"{getattr(resolved, k)!r} {getattr(resolved, k)}" for k in resources]

    # extraction: one day of orders (password grant with both Fluent secrets)
    day = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%d")
    next_day = datetime.now(UTC).strftime("%Y-%m-%d")
    start = (datetime.now(UTC) - timedelta(days=10)).strftime("%Y-%m-%d")
    asset = build_extraction_asset(ORDERS, start, retry_policy=None)
    result = dg.materialize([asset], resources=resources, instance=instance, partition_key=day)
    assert result.success
    ids = lake.read_parquet(f"fluent/orders/dt={day}/part-0.parquet", columns=["id"]).column("id").to_pylist()
    expected = secret_sandbox.admin.counts("orders", f"{day}T00:00:00Z", f"{next_day}T00:00:00Z")["ids"]
    assert sorted(ids) == sorted(expected) and ids

    # ingestion: one small file over S3 and one over SFTP, each with a rejected row (rejects file written)
    flow = Flow(
        inventory_feed(),
        instance=instance,
        lake=lake,
        s3_endpoint=s3_server.endpoint_url,
        sftp_server=secret_sftp,
        fluent=resources["fluent"],
    )
    flow.resources = resources
    flow.defs = dg.Definitions.merge(
        build_feed_definitions(plan_for(flow.feed)), dg.Definitions(resources=resources)
    )
    good = [f"SEC{i:03d},LOC{i % 3},{i},AVAILABLE" for i in range(40)]
    body = (
        "sku_ref,location_ref,qty,status\n" + "\n".join([*good, "SECBAD,LOC1,not-a-number,AVAILABLE"]) + "\n"
    )
    flow.put_s3("stock-1.csv", body.encode())
    (req,) = flow.tick("s3")
    r1 = flow.execute(req)
    assert r1.success and metadata(r1)["sent"] == 40 and metadata(r1)["rejected"] == 1
    flow.put_sftp("stock-2.csv", body.replace("SEC0", "SFT0").encode())
    (r2,) = flow.drain("sftp")
    assert r2.success and metadata(r2)["rejected"] == 1
    texts += [repr(r) for r in (result, r1, r2)]

    # exceptions: wrong (also secret-looking) credentials through the same environment path
    wrong_password = nasty_secret("wrong")
    settings_env(FLUENT_PASSWORD=wrong_password, FC_SFTP_PASSWORD=wrong_password)
    wrong = {"fluent": FluentResource.from_env(), "sftp": SFTPResource.from_settings()}
    with build_resources(wrong) as bad:
        texts += [repr(bad.fluent), str(bad.fluent), repr(bad.sftp)]
        with pytest.raises(FluentAuthError) as info, bad.fluent.get_client() as client:
            client.graphql("query { me { ref } }")
        texts += exception_texts(info.value)
        with pytest.raises(SFTPConfigError, match="authentication") as info, bad.sftp.session():
            pass
        texts += exception_texts(info.value)

    # everything Dagster stored: runs (config, tags) and every event record, serialized
    runs = instance.get_runs()
    assert len(runs) == 3
    for run in runs:
        texts.append(serialize_value(run))
        texts += [serialize_value(e) for e in instance.all_logs(run.run_id)]
    # every file written: Parquet, rejects, archives (lake and S3 inbox bucket via moto, SFTP root)
    lake_files = lake.list_files()
    assert [f for f in lake_files if "reject" in f], lake_files
    blobs = [lake.read_bytes(f) for f in lake_files]
    blobs += [p.read_bytes() for p in secret_sftp.root.rglob("*") if p.is_file()]
    for obj in flow.s3.list_objects_v2(Bucket=flow.bucket).get("Contents", []):
        blobs.append(flow.s3.get_object(Bucket=flow.bucket, Key=obj["Key"])["Body"].read())
    out, err = capfd.readouterr()
    texts += [caplog.text, out, err]
    assert "token obtained" in caplog.text and "httpcore" in caplog.text  # DEBUG logging was really captured

    for name, secret in {**secrets, "wrong": wrong_password}.items():
        # the whole value in any escaping (Python repr, JSON of the event log, SQL), and its unique part alone
        # (12 hex digits: also a truncated or differently escaped copy)
        for variant in leak_forms(secret):
            leaks = [t[max(0, t.find(variant) - 80) : t.find(variant) + 20] for t in texts if variant in t]
            assert not leaks, (name, leaks[:3])
            assert not [b for b in blobs if variant.encode() in b], name
