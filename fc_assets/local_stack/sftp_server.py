"""An SFTP server (asyncssh) serving one directory, for the demo and the tests.

Run as `python -m fc_assets.local_stack.sftp_server --root DIR --port 2222`. The host key is kept in
`--state-dir` (created once, reused on the next start) and a `known_hosts` file for it is written next to
it, so clients verify the host key exactly as they would against a production server.

Test hook: with `--read-delay-file FILE`, while FILE exists every read of a file waits the milliseconds FILE
holds, so a test can restart the server while a download is still running (the fault matrix).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path

import asyncssh

from fc_assets.local_stack.process import ServerProcess, port_open, python_module


def host_key_files(state_dir: Path, host: str, port: int) -> tuple[Path, Path]:
    """Create (once) the server's host key and a known_hosts line for `[host]:port`."""
    state_dir.mkdir(parents=True, exist_ok=True)
    key_path = state_dir / "ssh_host_ed25519_key"
    if not key_path.exists():
        asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(key_path))
        key_path.chmod(0o600)
    key = asyncssh.read_private_key(str(key_path))
    known_hosts = state_dir / "known_hosts"
    pub = key.export_public_key("openssh").decode().strip()
    host_spec = host if port == 22 else f"[{host}]:{port}"
    known_hosts.write_text(f"{host_spec} {pub}\n")
    return key_path, known_hosts


async def _serve(args: argparse.Namespace) -> None:
    root = Path(args.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    key_path, _ = host_key_files(Path(args.state_dir), args.host, args.port)

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return username == args.user and password == args.password

    delay_file = Path(args.read_delay_file) if args.read_delay_file else None

    class RootedSFTP(asyncssh.SFTPServer):
        def __init__(self, chan: asyncssh.SSHServerChannel):
            super().__init__(chan, chroot=str(root).encode())

        async def read(self, file_obj, offset: int, size: int) -> bytes:
            if delay_file is not None:
                with contextlib.suppress(OSError, ValueError):  # no file (or not a number): no delay
                    await asyncio.sleep(float(delay_file.read_text() or 0) / 1000)
            return super().read(file_obj, offset, size)

    authorized = None
    if args.authorized_keys and Path(args.authorized_keys).exists():
        authorized = asyncssh.read_authorized_keys(args.authorized_keys)
    server = await asyncssh.listen(
        args.host,
        args.port,
        server_host_keys=[str(key_path)],
        server_factory=Server,
        authorized_client_keys=authorized,
        sftp_factory=RootedSFTP,
        allow_scp=False,
    )
    print(f"sftp server on {args.host}:{args.port} serving {root}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=2222)
    p.add_argument("--root", required=True)
    p.add_argument("--state-dir", required=True, help="where the host key and known_hosts live")
    p.add_argument("--user", default="fc")
    p.add_argument("--password", default="fc-sftp")
    p.add_argument("--authorized-keys", default=None)
    p.add_argument("--read-delay-file", default=None, help="test hook: see the module docstring")
    asyncio.run(_serve(p.parse_args(argv)))


def sftp_server(
    root: Path,
    state_dir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 2222,
    user: str = "fc",
    password: str = "fc-sftp",
    log_path: Path | None = None,
    read_delay_file: Path | None = None,
) -> ServerProcess:
    """Not started yet: use as a context manager or call `.start()`. known_hosts: `state_dir/known_hosts`."""
    argv = python_module(
        "fc_assets.local_stack.sftp_server",
        "--host",
        host,
        "--port",
        str(port),
        "--root",
        str(root),
        "--state-dir",
        str(state_dir),
        "--user",
        user,
        "--password",
        password,
        *(["--read-delay-file", str(read_delay_file)] if read_delay_file else []),
    )
    return ServerProcess("sftp (asyncssh)", argv, lambda: port_open(host, port), log_path=log_path)


if __name__ == "__main__":
    main()
