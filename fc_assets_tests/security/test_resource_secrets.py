"""Secret fields of the resources never show in `repr`/`str` (as written and as Dagster resolves them from
`EnvVar`s), and an AWS secret with quotes reaches DuckDB intact (moto's S3 served through it) instead of
breaking `CREATE SECRET` and being echoed by DuckDB's parser error."""

from __future__ import annotations

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dagster._core.execution.build_resources import build_resources

from fc_assets.resources.fluent import FluentResource
from fc_assets.resources.s3 import S3Resource
from fc_assets.resources.sftp import SFTPResource
from fc_assets.resources.storage import Lake, LakeResource
from fc_assets_tests.security.secrets import leak_forms, nasty_secret


def test_resource_reprs_mask_secret_fields_whatever_their_value(monkeypatch):
    client_secret, password, aws, sftp = (nasty_secret(x) for x in ("client", "pw", "aws", "sftp"))
    monkeypatch.setenv("H8_CLIENT_SECRET", client_secret)
    resources = {
        "fluent": FluentResource(
            base_url="http://127.0.0.1:1",
            client_id="c",
            client_secret=dg.EnvVar("H8_CLIENT_SECRET"),
            username="u",
            password=password,
        ),
        "lake": LakeResource(uri="s3://b/l", access_key_id="k", secret_access_key=aws),
        "sftp": SFTPResource(host="h", username="u", password=sftp),
        "s3": S3Resource(aws_access_key_id="k", aws_secret_access_key=aws),
    }
    texts = [repr(r) for r in resources.values()] + [str(r) for r in resources.values()]
    with build_resources(resources) as resolved:  # what an asset receives: EnvVar resolved to its value
        assert resolved.fluent.client_secret == client_secret  # the value is there, only not shown
        for name in resources:
            texts += [repr(getattr(resolved, name)), str(getattr(resolved, name))]
        texts.append(repr(resolved.lake.get_lake()))
    assert "client_secret='***'" in texts[0] and "password='***'" in texts[0]
    for secret in (client_secret, password, aws, sftp):
        assert not [t for t in texts for form in leak_forms(secret) if form in t], secret


def test_aws_secret_with_quotes_works_in_duckdb_and_never_shows(s3_server):
    secret = nasty_secret("aws")
    lake = Lake(
        f"s3://quoted-{secret[-8:]}/lake",
        endpoint_url=s3_server.endpoint_url,
        access_key_id="k",
        secret_access_key=secret,
    )
    lake.ensure_root()
    with lake.atomic_write("t/part-0.parquet") as out:
        pq.write_table(pa.table({"n": [1, 2, 3]}), out)
    con = lake.duckdb()
    try:
        (total,) = con.sql(
            f"SELECT sum(n) FROM read_parquet('{lake.uri_for('t/part-0.parquet')}')"
        ).fetchone()
    finally:
        con.close()
    assert total == 6


def test_duckdb_error_from_create_secret_is_scrubbed(s3_server):
    import duckdb

    secret = nasty_secret("aws")
    # a region DuckDB cannot parse makes CREATE SECRET fail: its message quotes the whole statement
    lake = Lake(
        "s3://b/lake",
        endpoint_url=s3_server.endpoint_url,
        access_key_id="k",
        secret_access_key=secret,
        region="x\x00",
    )
    with pytest.raises(duckdb.Error) as info:
        lake.duckdb()
    assert not [f for f in leak_forms(secret) if f in str(info.value) or f in repr(info.value)]
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert str(info.value).startswith("CREATE SECRET for the lake failed: Parser Error")
