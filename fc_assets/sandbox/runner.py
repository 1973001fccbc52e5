"""`SandboxServer`: the sandbox as a subprocess, for the demo, the tests and the benchmarks.

    with SandboxServer(["--orders", "5000"], seed=42) as sb:
        sb.base_url                      # http://127.0.0.1:<port>
        sb.admin.set_faults(rate_limit={"count": 2, "retry_after": 1})
        sb.admin.received()["entity_count"]

It runs `sys.executable -m fc_assets.sandbox --host 127.0.0.1 --port <port> --seed <seed> <extra args>`,
where the port defaults to 0 (the OS picks a free one and the sandbox prints it, so parallel test runs never
race for a port). The context waits for that line and for `GET /health`, and on exit sends SIGTERM, then
SIGKILL after `stop_timeout`. The subprocess's output goes to a log file (`log_path`), quoted in the error
if the sandbox does not come up.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from fc_assets.sandbox.admin import ADMIN_HEADER

LISTENING = re.compile(r"Fluent sandbox listening on (http://\S+)")


class SandboxAdmin:
    """The `/_sandbox/` admin API (admin.py) over httpx, with the `X-Sandbox-Admin: 1` header it requires."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=timeout, headers={ADMIN_HEADER: "1"})

    def _json(self, response: httpx.Response) -> Any:
        response.raise_for_status()
        return response.json()

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Merge faults (faults.py keys, e.g. `latency_ms=50`, `server_errors={"count": 2, "status": 503}`)."""
        return self._json(self.http.post("/_sandbox/faults", json=faults))

    def faults(self) -> dict[str, Any]:
        return self._json(self.http.get("/_sandbox/faults"))

    def clear_faults(self) -> None:
        self._json(self.http.delete("/_sandbox/faults"))

    def received(self) -> dict[str, Any]:
        return self._json(self.http.get("/_sandbox/received"))

    def reset(self) -> None:
        self._json(self.http.post("/_sandbox/reset", json={}))

    def set_clock(self, iso: str) -> dict[str, Any]:
        return self._json(self.http.post("/_sandbox/clock", json={"now": iso}))

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        return self._json(self.http.post("/_sandbox/clock", json={"advance_s": seconds}))

    def clock(self) -> dict[str, Any]:
        return self._json(self.http.get("/_sandbox/clock"))

    def touch(self, entity: str, entity_id: str, updated_on: str) -> dict[str, Any]:
        """Set one entity's `updatedOn` (ISO), as if it had been updated then."""
        return self._json(
            self.http.post(
                "/_sandbox/touch", json={"entity": entity, "id": entity_id, "updatedOn": updated_on}
            )
        )

    def counts(self, entity: str, frm: str | None = None, to: str | None = None) -> dict[str, Any]:
        """Entities of a kind with `frm <= updatedOn < to`: `{"entity", "from", "to", "count", "ids"}`."""
        params = {"entity": entity, **({"from": frm} if frm else {}), **({"to": to} if to else {})}
        return self._json(self.http.get("/_sandbox/counts", params=params))

    def close(self) -> None:
        self.http.close()


class SandboxServer:
    """Start the sandbox subprocess on enter, stop it on exit (see the module docstring)."""

    def __init__(
        self,
        args: list[str] | tuple[str, ...] = (),
        *,
        seed: int = 42,
        port: int = 0,
        host: str = "127.0.0.1",
        start_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        log_path: str | Path | None = None,
    ) -> None:
        self.args = [str(a) for a in args]
        self.seed, self.port, self.host = seed, port, host
        self.start_timeout, self.stop_timeout = start_timeout, stop_timeout
        self.log_path = (
            Path(log_path) if log_path else Path(tempfile.mkstemp(prefix="fc-sandbox-", suffix=".log")[1])
        )
        self.base_url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._admin: SandboxAdmin | None = None

    @property
    def admin(self) -> SandboxAdmin:
        if self._admin is None:
            raise RuntimeError("the sandbox is not running")
        return self._admin

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "fc_assets.sandbox",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--seed",
            str(self.seed),
            *self.args,
        ]

    def start(self) -> SandboxServer:
        log = open(self.log_path, "wb")  # noqa: SIM115 - handed to the child, closed in stop()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
        self._log = log
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"the sandbox exited with {self.process.returncode}:\n{self.output()}")
            m = LISTENING.search(self.output())
            if m:
                self.base_url = m.group(1)
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise TimeoutError(f"the sandbox did not start in {self.start_timeout}s:\n{self.output()}")
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/health", timeout=2).status_code == 200:
                    self._admin = SandboxAdmin(self.base_url)
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"/health did not answer 200 in {self.start_timeout}s:\n{self.output()}")

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
