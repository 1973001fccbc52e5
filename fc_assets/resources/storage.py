"""The lake: one place that turns `FC_LAKE_URI` into a pyarrow FileSystem, S3 client and DuckDB connection.

`s3://bucket/prefix` talks to S3 (or any S3-compatible endpoint via `AWS_ENDPOINT_URL`, e.g. moto in the demo
and tests); `file:///abs/path` writes to a local directory. Writes of final objects go through
`Lake.atomic_write`: bytes land under `<lake>/_tmp/` first and are moved onto the final key only after the
writer closed cleanly, so a crash never leaves a half object where readers look.
"""

from __future__ import annotations

import contextlib
import pathlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from fc_assets.resources.secret_masking import scrub, sql_quote

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    import pyarrow.fs as pafs

    from fc_assets.resources.lake_resource import LakeResource

TMP_DIR = "_tmp"
HEX = "0123456789abcdef"
LIST_WORKERS = 8  # key ranges of one directory listed at once (list_files_parallel) ...
# ... when its first page suggests more pages than this: each range's last page reads past its end, so a
# split costs up to 15 more requests (moto, which scans the whole bucket for every page, pays for them)
SPLIT_FROM_PAGES = 24
STALE_TMP_AGE = timedelta(days=1)


def estimated_pages(last_name: str) -> float:
    """How many pages a listing of hex-named keys has, from the name that ends its first page (the share of
    the hex key space the first page covered); unbounded when the name is not hex."""
    head = last_name[:4]
    try:
        covered = (int(head, 16) + 1) / 16 ** len(head)
    except ValueError:
        return float("inf")
    return 1 / covered


@dataclass(frozen=True)
class Lake:
    """A lake root and the credentials to reach it. Paths passed in are relative to the root."""

    uri: str
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    region: str = "us-east-1"

    def __post_init__(self) -> None:
        parsed = urlparse(self.uri)
        if parsed.scheme not in ("s3", "file"):
            raise ValueError(f"FC_LAKE_URI must start with s3:// or file://, got {self.uri!r}")
        if parsed.scheme == "s3" and not parsed.netloc:
            raise ValueError(f"FC_LAKE_URI has no bucket: {self.uri!r}")

    @property
    def scheme(self) -> str:
        return urlparse(self.uri).scheme

    @property
    def bucket(self) -> str | None:
        return urlparse(self.uri).netloc if self.scheme == "s3" else None

    @property
    def root(self) -> str:
        """The root as a path of `self.fs` (`bucket/prefix` for S3, an absolute path for file://)."""
        parsed = urlparse(self.uri)
        if self.scheme == "s3":
            return f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
        return str(pathlib.Path(parsed.path)).rstrip("/") or "/"

    @cached_property
    def fs(self) -> pafs.FileSystem:
        import pyarrow.fs as pafs  # ~0.2 s with numpy: not at code-location load

        if self.scheme == "file":
            return pafs.LocalFileSystem()
        kwargs: dict = {"region": self.region}
        if self.access_key_id:
            kwargs.update(access_key=self.access_key_id, secret_key=self.secret_access_key)
        if self.endpoint_url:
            ep = urlparse(self.endpoint_url)
            kwargs.update(endpoint_override=ep.netloc, scheme=ep.scheme or "https")
        return pafs.S3FileSystem(**kwargs)

    def path(self, *parts: str) -> str:
        """Filesystem path of a key under the root."""
        rel = "/".join(p.strip("/") for p in parts if p)
        return f"{self.root}/{rel}" if rel else self.root

    def uri_for(self, *parts: str) -> str:
        """Human/engine-readable URI of a key (what metadata shows and DuckDB reads)."""
        rel = "/".join(p.strip("/") for p in parts if p)
        base = self.uri.rstrip("/")
        return f"{base}/{rel}" if rel else base

    def ensure_root(self) -> None:
        """Create the bucket (S3) or directory (file://) when missing; harmless when it exists."""
        if self.scheme == "file":
            pathlib.Path(self.root).mkdir(parents=True, exist_ok=True)
            return
        import botocore.exceptions

        s3 = self.s3_client()
        try:
            s3.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError:
            s3.create_bucket(Bucket=self.bucket)

    def s3_client(self):
        """The lake's boto3 client, shared by every `Lake` of the same endpoint and credentials."""
        from fc_assets.resources.boto_clients import shared_client

        def make():
            import boto3

            return boto3.session.Session().client(
                "s3",
                endpoint_url=self.endpoint_url,
                aws_access_key_id=self.access_key_id or None,  # empty: the default chain (IAM role)
                aws_secret_access_key=self.secret_access_key or None,
                region_name=self.region,
            )

        key = ("lake", self.endpoint_url, self.access_key_id, self.secret_access_key, self.region)
        return shared_client(key, make)

    def exists(self, *parts: str) -> bool:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(self.path(*parts)).type != pafs.FileType.NotFound

    def list_files(self, *parts: str) -> list[str]:
        """Relative keys of all files below a directory (recursive; empty when it does not exist)."""
        import pyarrow.fs as pafs

        base = self.path(*parts)
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        return sorted(i.path[len(self.root) + 1 :] for i in infos if i.type == pafs.FileType.File)

    def list_files_parallel(self, *parts: str, page: int = 1000) -> list[str]:
        """`list_files`, with a long S3 listing split into key ranges listed at once (a LIST page is one
        round trip: 100 pages one after the other are 100 round trips).

        The first page is listed alone (a small directory costs one request); if there is more, the keys
        after it are split at `<dir>/1` ... `<dir>/f` (file ids are hex) into ranges (lower, upper], the last
        one open, so every key — whatever its first character — lies in exactly one range."""
        if self.scheme != "s3" or self.bucket.endswith(
            "--x-s3"
        ):  # (directory buckets: no StartAfter, no order)
            return self.list_files(*parts)
        from concurrent.futures import ThreadPoolExecutor

        prefix = self.path(*parts)[len(self.bucket) + 1 :] + "/"
        client = self.s3_client()
        first = client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=page)
        keys = [o["Key"] for o in first.get("Contents", [])]
        if first.get("IsTruncated") and not keys:  # (S3 does not answer so; then one listing, as before)
            return self.list_files(*parts)
        if first.get("IsTruncated"):
            split = estimated_pages(keys[-1][len(prefix) :]) > SPLIT_FROM_PAGES
            bounds = [b for b in (prefix + c for c in HEX[1:]) if split and b > keys[-1]]
            ranges = list(zip([keys[-1], *bounds], [*bounds, None], strict=True))
            with ThreadPoolExecutor(min(LIST_WORKERS, len(ranges))) as pool:
                for part in pool.map(lambda r: self._list_range(client, prefix, page, *r), ranges):
                    keys += part
        root = self.root[len(self.bucket) + 1 :]
        return sorted({k[len(root) + 1 :] if root else k for k in keys if not k.endswith("/")})

    def _list_range(self, client, prefix: str, page: int, after: str, upto: str | None) -> list[str]:
        """Keys under `prefix` in (after, upto] (S3 lists keys in UTF-8 byte order, as str compares)."""
        out = []
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, StartAfter=after, PaginationConfig={"PageSize": page}
        )
        for page in pages:
            for o in page.get("Contents", []):
                if upto is not None and o["Key"] > upto:
                    return out
                out.append(o["Key"])
        return out

    def delete(self, *parts: str) -> None:
        with contextlib.suppress(FileNotFoundError, OSError):
            self.fs.delete_file(self.path(*parts))

    def read_bytes(self, *parts: str) -> bytes:
        with self.fs.open_input_stream(self.path(*parts)) as f:
            return f.read()

    def write_bytes(self, data: bytes, *parts: str) -> None:
        with self.atomic_write(*parts) as out:
            out.write(data)

    @contextlib.contextmanager
    def atomic_write(self, *parts: str) -> Iterator[pa.NativeFile]:
        """Yield an output stream; the object appears at its key only if the block finishes."""
        final = self.path(*parts)
        tmp = self.path(TMP_DIR, f"{uuid.uuid4().hex}-{final.rsplit('/', 1)[-1]}")
        if self.scheme == "file":
            pathlib.Path(tmp).parent.mkdir(parents=True, exist_ok=True)
            pathlib.Path(final).parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.fs.open_output_stream(tmp) as out:
                yield out
            self.fs.move(tmp, final)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.delete_file(tmp)
            raise

    def remove_stale_temporaries(self, older_than: timedelta = STALE_TMP_AGE) -> list[str]:
        """Delete files under `<lake>/_tmp/` last modified more than `older_than` ago (left by killed runs;
        a failing write removes its own); fresher ones may belong to a write in progress and are kept.
        Returns the removed keys."""
        import pyarrow.fs as pafs

        cutoff = datetime.now(UTC) - older_than
        base = self.path(TMP_DIR)
        infos = self.fs.get_file_info(pafs.FileSelector(base, recursive=True, allow_not_found=True))
        removed = []
        for info in infos:
            if info.type == pafs.FileType.File and info.mtime is not None and info.mtime < cutoff:
                with contextlib.suppress(FileNotFoundError, OSError):
                    self.fs.delete_file(info.path)
                    removed.append(info.path[len(self.root) + 1 :])
        return removed

    def read_parquet(self, *parts: str, columns: list[str] | None = None) -> pa.Table:
        """Read one Parquet object or a directory of them (by path, which is safe with threads)."""
        import pyarrow.parquet as pq

        return pq.read_table(self.path(*parts), filesystem=self.fs, columns=columns)

    def duckdb(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection that can read `self.uri_for(...)` URIs (httpfs loaded from its PyPI wheel,
        so no download at run time)."""
        import duckdb

        con = duckdb.connect()
        if self.scheme == "s3":
            import duckdb_extension_httpfs

            ext = (
                pathlib.Path(duckdb_extension_httpfs.__file__).parent
                / "extensions"
                / f"v{duckdb.__version__}"
                / "httpfs.duckdb_extension"
            )
            con.sql(f"LOAD '{ext}'")
            secrets = [self.secret_access_key]
            if "\x00" in (self.secret_access_key or ""):  # DuckDB would end the statement there
                con.close()
                raise ValueError("AWS_SECRET_ACCESS_KEY contains a NUL character")
            opts = [f"REGION {sql_quote(self.region)}"]
            if self.access_key_id:
                opts += [
                    f"KEY_ID {sql_quote(self.access_key_id)}",
                    f"SECRET {sql_quote(self.secret_access_key or '')}",
                ]
            if self.endpoint_url:
                ep = urlparse(self.endpoint_url)
                opts += [
                    f"ENDPOINT {sql_quote(ep.netloc)}",
                    f"USE_SSL {'true' if ep.scheme == 'https' else 'false'}",
                    "URL_STYLE 'path'",
                ]
            failed: duckdb.Error | None = None
            try:
                con.sql(f"CREATE SECRET lake (TYPE s3, {', '.join(opts)})")
            except duckdb.Error as exc:
                failed = exc
            if failed is not None:
                # DuckDB quotes the failing statement (cut at a fixed width, so maybe half a secret): keep its
                # first line, scrubbed, raised outside the except block so the original is not the __context__
                con.close()
                first_line = str(failed).splitlines()[0] if str(failed) else ""
                raise type(failed)(f"CREATE SECRET for the lake failed: {scrub(first_line, secrets)}")
        return con


def __getattr__(name: str) -> type[LakeResource]:
    """`LakeResource` lives in lake_resource.py so that using the lake does not import dagster (~0.8 s)."""
    if name == "LakeResource":
        from fc_assets.resources.lake_resource import LakeResource

        return LakeResource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
