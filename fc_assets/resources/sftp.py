"""SFTP as a Dagster resource (paramiko): host keys verified, sessions always closed, exact globs.

Why these choices (connector-pitfalls §1.9, §2 items 20–22):
- The host key is checked against a known_hosts file (`FC_SFTP_KNOWN_HOSTS`, else `~/.ssh/known_hosts`) with
  paramiko's `RejectPolicy`; an unknown or changed key is an error. A line of that file paramiko cannot
  parse is a `SFTPConfigError` naming the file and line (not paramiko's `InvalidHostKey`). Opt-in trust on
  first use (`FC_SFTP_TRUST_ON_FIRST_USE`) accepts the key of a host the file does not mention at all, logs
  its SHA256 fingerprint and appends it to the file; a host the file knows is never re-trusted (a changed
  key, or a key of another type, is still refused). Skipping the check takes an explicit
  `insecure_skip_host_key=True`, never a silent fallback.
- Every session is a context manager: the transport is closed on success, exception and cancel alike, so
  a sensor tick or a run cannot leak connections (there is no pool to forget to dispose).
- `list_dir(dir, glob)` matches `fnmatch.fnmatchcase` on the basename of the entries of that one directory:
  `*.csv` does not match `xcsv` or `a.CSV`, and nothing below the directory is listed.
- Algorithm mismatches (no common kex/cipher) raise `SFTPConfigError` and are not retried;
  `disabled_algorithms` restricts what paramiko offers when a server needs it.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import logging
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

import dagster as dg
from pydantic import Field

from fc_assets.resources.secret_masking import masked_repr_args

if TYPE_CHECKING:  # paramiko (~0.5 s with cryptography) is imported when a session opens, not at load
    import paramiko

logger = logging.getLogger("fc_assets.sftp")


class SFTPError(Exception):
    """An SFTP operation failed (connection, authentication, I/O)."""


class SFTPConfigError(SFTPError):
    """Host key unknown/changed, authentication refused or no common algorithm: retrying will not help."""


@dataclass(frozen=True)
class RemoteFile:
    """One regular file of a listing. `mtime` is the server's (SFTP v3: whole seconds)."""

    path: str
    size: int
    mtime: float

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)


class SFTPSession:
    """An open SFTP session; obtained from `SFTPResource.session()`, closed when its block ends."""

    def __init__(self, sftp: paramiko.SFTPClient) -> None:
        self.sftp = sftp

    def list_dir(self, directory: str, glob: str = "*") -> list[RemoteFile]:
        """Regular files directly in `directory` whose basename matches `glob` (case-sensitive)."""
        try:
            entries = self.sftp.listdir_attr(directory)
        except FileNotFoundError:
            return []
        out = []
        for e in entries:
            if e.st_mode is None or not stat.S_ISREG(e.st_mode):
                continue
            if not fnmatch.fnmatchcase(e.filename, glob):
                continue
            out.append(
                RemoteFile(posixpath.join(directory, e.filename), int(e.st_size or 0), float(e.st_mtime or 0))
            )
        return out

    def stat(self, path: str) -> RemoteFile | None:
        try:
            st = self.sftp.stat(path)
        except FileNotFoundError:
            return None
        return RemoteFile(path, int(st.st_size or 0), float(st.st_mtime or 0))

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def open(self, path: str, mode: str = "rb") -> IO[bytes]:
        f = self.sftp.open(path, mode)
        if "r" in mode:
            f.prefetch()
        return f

    def download(self, path: str, local: Path, chunk: int = 1 << 20) -> int:
        """Copy a remote file to a local path; returns bytes copied."""
        n = 0
        with self.open(path) as src, open(local, "wb") as dst:
            while block := src.read(chunk):
                dst.write(block)
                n += len(block)
        return n

    def put_bytes(self, data: bytes, path: str) -> None:
        with self.sftp.open(path, "wb") as f:
            f.write(data)

    def makedirs(self, directory: str) -> None:
        parts = [p for p in directory.split("/") if p]
        cur = "/" if directory.startswith("/") else ""
        for p in parts:
            cur = posixpath.join(cur, p) if cur else p
            try:
                self.sftp.stat(cur)
            except FileNotFoundError:
                with contextlib.suppress(OSError):
                    self.sftp.mkdir(cur)

    def rename(self, src: str, dst: str) -> None:
        """Atomic rename that replaces `dst` (posix-rename@openssh.com when offered, else remove + rename)."""
        import paramiko

        try:
            self.sftp.posix_rename(src, dst)
        except (OSError, paramiko.SSHException):
            with contextlib.suppress(FileNotFoundError):
                self.sftp.remove(dst)
            self.sftp.rename(src, dst)

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.sftp.remove(path)


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's form, as `ssh-keygen -lf` prints it: `SHA256:<base64 without padding>`."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def load_known_hosts(client: paramiko.SSHClient, path: Path) -> None:
    """paramiko's `load_host_keys`, with a line it cannot parse reported as our configuration error."""
    import paramiko

    try:
        client.load_host_keys(str(path))
    except paramiko.hostkeys.InvalidHostKey as exc:
        bad = (exc.line or "").strip()
        lines = path.read_text(errors="replace").splitlines()
        number = next((i for i, line in enumerate(lines, 1) if line.strip() == bad), None)
        where = f"{path}, line {number}" if number else str(path)
        raise SFTPConfigError(
            f"known_hosts file {where} has a host key that cannot be parsed ({exc.exc}): "
            "fix or remove that line (e.g. `ssh-keyscan` output of the server)"
        ) from None


class TrustOnFirstUse:
    """Accept the key of a host `known_hosts` has no entry for at all: log its fingerprint, append it.
    (paramiko's `MissingHostKeyPolicy` interface, `missing_host_key`; not its subclass, so that importing
    this module does not import paramiko.)"""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        import paramiko

        known = client.get_host_keys().lookup(hostname)
        if known:  # paramiko asks when only the key *type* differs: that is a changed key, never trusted
            raise paramiko.BadHostKeyException(hostname, key, next(iter(known.values())))
        client.get_host_keys().add(hostname, key.get_name(), key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        logger.warning(
            "SFTP trust on first use: accepted the host key of %s, %s %s, and added it to %s; "
            "check this fingerprint with the server's owner",
            hostname,
            key.get_name(),
            fingerprint(key),
            self.path,
        )


class SFTPResource(dg.ConfigurableResource):
    """Connection settings for one SFTP server; `session()` opens a verified, always-closed session."""

    host: str
    port: int = 22
    username: str
    password: str | None = None
    key_path: str | None = None
    known_hosts: str | None = Field(None, description="known_hosts file; default ~/.ssh/known_hosts")
    insecure_skip_host_key: bool = Field(False, description="accept any host key (never in production)")
    trust_on_first_use: bool = Field(
        False,
        description="accept and record the key of a host known_hosts does not list (fingerprint logged)",
    )
    timeout_s: float = 30.0
    disabled_algorithms: dict[str, list[str]] | None = None

    def __repr_args__(self):
        return masked_repr_args(super().__repr_args__(), frozenset({"password"}))

    @contextlib.contextmanager
    def session(self) -> Iterator[SFTPSession]:
        import paramiko

        client = paramiko.SSHClient()
        try:
            if self.insecure_skip_host_key:
                client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
            else:
                known = Path(self.known_hosts or Path.home() / ".ssh" / "known_hosts").expanduser()
                if known.exists():
                    load_known_hosts(client, known)
                elif not self.trust_on_first_use:
                    raise SFTPConfigError(f"known_hosts file {known} does not exist; set FC_SFTP_KNOWN_HOSTS")
                client.set_missing_host_key_policy(
                    TrustOnFirstUse(known) if self.trust_on_first_use else paramiko.RejectPolicy()
                )
            pkey = paramiko.PKey.from_path(self.key_path) if self.key_path else None
            try:
                client.connect(
                    self.host,
                    port=self.port,
                    username=self.username,
                    password=self.password or None,
                    pkey=pkey,
                    timeout=self.timeout_s,
                    banner_timeout=self.timeout_s,
                    auth_timeout=self.timeout_s,
                    channel_timeout=self.timeout_s,
                    allow_agent=False,
                    look_for_keys=False,
                    disabled_algorithms=self.disabled_algorithms,
                )
            except paramiko.BadHostKeyException as e:
                raise SFTPConfigError(f"host key of {self.host}:{self.port} changed: {e}") from None
            except paramiko.AuthenticationException as e:
                raise SFTPConfigError(f"authentication to {self.host}:{self.port} refused: {e}") from None
            except paramiko.SSHException as e:
                text = str(e)
                if "not found in known_hosts" in text or "Incompatible" in text or "no acceptable" in text:
                    raise SFTPConfigError(f"{self.host}:{self.port}: {text}") from None
                raise SFTPError(f"{self.host}:{self.port}: {text}") from e
            except OSError as e:
                raise SFTPError(f"cannot reach {self.host}:{self.port}: {e}") from e
            sftp = client.open_sftp()
            sftp.get_channel().settimeout(self.timeout_s)
            try:
                yield SFTPSession(sftp)
            finally:
                sftp.close()
        finally:
            client.close()

    @classmethod
    def from_settings(cls) -> SFTPResource:
        """Built from `FC_SFTP_*` (see settings.py); the password as an `EnvVar` when it is set."""
        import os

        from fc_assets.settings import get_settings

        s = get_settings()
        password: str | dg.EnvVar | None = (
            dg.EnvVar("FC_SFTP_PASSWORD")
            if os.environ.get("FC_SFTP_PASSWORD")
            else (s.sftp_password.get_secret_value() if s.sftp_password else None)
        )
        return cls(
            host=s.sftp_host,
            port=s.sftp_port,
            username=s.sftp_username,
            password=password,
            key_path=s.sftp_key_path,
            known_hosts=s.sftp_known_hosts,
            trust_on_first_use=s.sftp_trust_on_first_use,
        )
