"""moto's S3 server (the real S3 wire protocol) as a child process, for the demo and the tests."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, unquote

import httpx

from fc_assets.local_stack.process import ServerProcess, python_module


def s3_server(host: str = "127.0.0.1", port: int = 9000, *, log_path: Path | None = None) -> ServerProcess:
    """Not started yet: use as a context manager or call `.start()`. State lives in memory of the process."""

    def ready() -> bool:
        return httpx.get(f"http://{host}:{port}/moto-api/", timeout=1.0).status_code < 500

    return ServerProcess(
        "s3 (moto)",
        python_module("moto.server", "-H", host, "-p", str(port)),
        ready,
        log_path=log_path,
        env={
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
    )


def save_buckets(endpoint: str, buckets: list[str], directory: Path) -> int:
    """Copy every object of `buckets` into `directory/<bucket>/<quoted key>` (replacing an older copy whole).

    moto keeps its state in memory; the demo saves it on shutdown and loads it on the next start, so the
    lake and inboxes survive a restart the way the Dagster instance does. Returns the object count.
    """
    s3 = s3_client(endpoint)
    fresh = directory.with_name(directory.name + ".new")
    shutil.rmtree(fresh, ignore_errors=True)
    count = 0
    for bucket in buckets:
        (fresh / bucket).mkdir(parents=True)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                s3.download_file(bucket, obj["Key"], str(fresh / bucket / quote(obj["Key"], safe="")))
                count += 1
    shutil.rmtree(directory, ignore_errors=True)
    fresh.rename(directory)
    return count


def load_buckets(
    endpoint: str, directory: Path, skip: Callable[[str, str], bool] = lambda bucket, key: False
) -> tuple[int, int]:
    """Create the buckets saved by `save_buckets` and upload their objects but those `skip(bucket, key)`
    selects; returns (uploaded, skipped)."""
    if not directory.is_dir():
        return 0, 0
    s3 = s3_client(endpoint)
    uploaded = skipped = 0
    for bucket_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
        s3.create_bucket(Bucket=bucket_dir.name)
        for path in sorted(bucket_dir.iterdir()):
            key = unquote(path.name)
            if skip(bucket_dir.name, key):
                skipped += 1
                continue
            s3.upload_file(str(path), bucket_dir.name, key)
            uploaded += 1
    return uploaded, skipped


def s3_client(endpoint: str):
    """A boto3 client for the local S3 server (moto takes any credentials; these are its documented ones)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
