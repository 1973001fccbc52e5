"""Start a server as a child process, wait until it answers, and stop it (and only it) reliably."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group; Linux reads /proc, elsewhere a signal-0 probe."""
    if not os.path.isdir("/proc/self"):
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split after the last ")"
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


class ServerProcess:
    """A child process in its own session (so a signal reaches all its children) with a readiness probe."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        ready: Callable[[], bool],
        *,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.name, self.argv, self.ready = name, list(argv), ready
        self.log_path, self.env, self.start_timeout = log_path, env, start_timeout
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self) -> ServerProcess:
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        out = self._log or subprocess.DEVNULL
        self.proc = subprocess.Popen(
            self.argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(self.env or {})},
            start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} during start-up"
                    + (f"; see {self.log_path}" if self.log_path else "")
                )
            try:
                if self.ready():
                    return self
            except Exception:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.name} did not become ready in {self.start_timeout:.0f} s")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to the whole session, then SIGKILL to what is left of it after `timeout`.

        The leader exiting is not enough: `dagster dev` returns while the code servers and run workers
        it started (same process group) are still shutting down, and they would outlive the demo.
        """
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
            while _group_members(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if _group_members(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
            # SIGKILL is delivered asynchronously: return once the group is gone, not while it is dying
            deadline = time.monotonic() + 5
            while _group_members(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
