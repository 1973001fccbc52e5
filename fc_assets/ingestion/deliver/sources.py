"""Fetching and archiving source files on S3 and SFTP, crash-safe and version-exact.

Fetch: the exact version the sensor saw is downloaded to a local temp file (S3 `GetObject` with `IfMatch`
= the ETag; SFTP: size and mtime must still match), hashed (SHA-256) on the way, so the ledger records what
was processed and a file replaced meanwhile is refused (`SourceChanged`); the sensor will see the new version.
A local file gives every reader (Parquet included) random access with memory bounded by the reader.

Archive: `processed/<yyyy-mm-dd>/<name>` or `error/<yyyy-mm-dd>/<name>` next to the source directory, with
the rejects file (if any) beside it as `<name>.rejects.csv`. The target is chosen once and recorded in the
ledger before anything moves. On S3 the move is copy (`CopySourceIfMatch`) → verify (size/ETag of the
copy) → delete the source only if it is still our version; on SFTP it is one atomic `posix-rename`. A rerun
after a crash at any point repeats the remaining steps: copying again is idempotent, a missing source with
a present target means the move already happened.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from fc_assets.ingestion.deliver.files import FileLocation, FileRef, archive_name
from fc_assets.resources.sftp import SFTPResource

CHUNK = 1 << 20


class SourceChanged(RuntimeError):
    """The file at the source is no longer the version the sensor saw (replaced or deleted)."""


@dataclass(frozen=True)
class Fetched:
    path: Path
    size: int
    sha256: str


@dataclass
class SourceStore:
    """Access to the feeds' source locations (clients are created lazily, per run)."""

    s3_client: object | None = None
    sftp: SFTPResource | None = None

    @contextlib.contextmanager
    def fetch(self, location: FileLocation, ref: FileRef) -> Iterator[Fetched]:
        """Download the exact version of `ref` to a temp file, deleted when the block ends."""
        with tempfile.TemporaryDirectory(prefix="fc-fetch-") as tmp:
            local = Path(tmp) / "source"
            digest = hashlib.sha256()
            size = 0
            with open(local, "wb") as out:
                for block in self._blocks(location, ref):
                    digest.update(block)
                    out.write(block)
                    size += len(block)
            if ref.size >= 0 and size != ref.size:
                raise SourceChanged(f"{ref.key}: read {size} bytes, the sensor saw {ref.size}")
            yield Fetched(local, size, digest.hexdigest())

    def _blocks(self, location: FileLocation, ref: FileRef) -> Iterator[bytes]:
        if location.kind == "s3":
            import botocore.exceptions  # with boto3, at run time: not at code-location load

            kw = {"IfMatch": f'"{ref.etag}"'} if ref.etag else {}
            try:
                body = self.s3_client.get_object(Bucket=location.bucket, Key=ref.key, **kw)["Body"]
            except botocore.exceptions.ClientError as e:
                code = e.response.get("Error", {}).get("Code")
                if code in ("PreconditionFailed", "412", "NoSuchKey", "404"):
                    raise SourceChanged(
                        f"s3://{location.bucket}/{ref.key} is no longer version {ref.etag}"
                    ) from e
                raise
            with contextlib.closing(body):
                while block := body.read(CHUNK):
                    yield block
            return
        with self.sftp.session() as s:
            st = s.stat(ref.key)
            if st is None or st.size != ref.size or int(st.mtime) != int(ref.mtime):
                raise SourceChanged(f"sftp:{ref.key} changed or vanished since the sensor saw it")
            with s.open(ref.key) as f:
                while block := f.read(CHUNK):
                    yield block

    # ----------------------------------------------------------------------------------------- archive

    @staticmethod
    def archive_target(
        location: FileLocation, ref: FileRef, outcome: str, when: datetime | None = None
    ) -> str:
        folder = "processed" if outcome == "processed" else "error"
        day = (when or datetime.now(UTC)).strftime("%Y-%m-%d")
        base = location.directory
        # a file re-uploaded under the same name gets its own archived copy (version hash in the name)
        name = archive_name(ref.name, ref.file_id)
        return posixpath.join(base, folder, day, name) if base else posixpath.join(folder, day, name)

    def archive(
        self,
        location: FileLocation,
        ref: FileRef,
        target: str,
        rejects: bytes | None = None,
        crash_hook=lambda stage: None,
    ) -> str:
        """Move the source to `target` (see module doc); returns "moved", "already moved" or "source replaced"."""
        if location.kind == "s3":
            return self._archive_s3(location, ref, target, rejects, crash_hook)
        return self._archive_sftp(ref, target, rejects, crash_hook)

    def _archive_s3(self, location, ref, target, rejects, crash_hook) -> str:
        s3, bucket = self.s3_client, location.bucket
        src = _head(s3, bucket, ref.key)
        dst = _head(s3, bucket, target)
        if rejects is not None:
            s3.put_object(Bucket=bucket, Key=f"{target}.rejects.csv", Body=rejects)
        if src is None or (ref.etag and src["ETag"].strip('"') != ref.etag):
            if dst is not None:
                return "already moved"
            return "source replaced"  # a newer version sits at the key: leave it for its own run
        if dst is None or dst["ContentLength"] != ref.size:
            s3.copy_object(
                Bucket=bucket,
                Key=target,
                CopySource={"Bucket": bucket, "Key": ref.key},
                CopySourceIfMatch=f'"{ref.etag}"' if ref.etag else src["ETag"],
            )
            dst = _head(s3, bucket, target)
        if dst is None or dst["ContentLength"] != ref.size:
            raise RuntimeError(f"archive copy of {ref.key} to {target} did not verify")
        crash_hook("during_archive")
        again = _head(s3, bucket, ref.key)
        if again is not None and (not ref.etag or again["ETag"].strip('"') == ref.etag):
            s3.delete_object(Bucket=bucket, Key=ref.key)
        return "moved"

    def _archive_sftp(self, ref, target, rejects, crash_hook) -> str:
        with self.sftp.session() as s:
            s.makedirs(posixpath.dirname(target))
            if rejects is not None:
                s.put_bytes(rejects, f"{target}.rejects.csv")
            crash_hook("during_archive")
            st = s.stat(ref.key)
            if st is None:
                return "already moved" if s.exists(target) else "source replaced"
            if st.size != ref.size or int(st.mtime) != int(ref.mtime):
                return "source replaced"
            s.rename(ref.key, target)
        return "moved"


def _head(s3, bucket: str, key: str) -> dict | None:
    import botocore.exceptions

    try:
        return s3.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as e:
        if e.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
