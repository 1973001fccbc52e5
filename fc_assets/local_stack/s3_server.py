"""moto's S3 server (the real S3 wire protocol) as a child process, for the demo and the tests."""

from __future__ import annotations

from pathlib import Path

import httpx

from fc_assets.local_stack.process import ServerProcess, python_module


def s3_server(host: str = "127.0.0.1", port: int = 9000, *, log_path: Path | None = None) -> ServerProcess:
    """Not started yet: use as a context manager or call `.start()`. State lives in memory of the process."""

    def ready() -> bool:
        return httpx.get(f"http://{host}:{port}/moto-api/", timeout=1.0).status_code < 500

    return ServerProcess(
        "s3 (moto)", python_module("moto.server", "-H", host, "-p", str(port)), ready, log_path=log_path,
        env={"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"},
    )
