"""Identity of an incoming file: where it was found, which version, and the names Dagster knows it by.

One `FileRef` travels from the sensor (run request tags + config) to the asset and the ledger, so all three
agree on what "this file" means:

- `run_key` = `feed:location:key@version` (version = S3 ETag, or `mtime:size` on SFTP). Dagster dedupes runs
  by it, so a re-uploaded file with new content runs again and an identical one does not.
- `partition_key` = `<yyyy-mm-dd>_<slug>_<hash8>`: the file's UTC date, a readable ASCII slug of its name and
  8 hex of a hash of `location:key@version`. Any file name (spaces, brackets, `&`, unicode, 500 characters,
  `...`) gives a valid, short, unique key; the date prefix lets old partitions be pruned by age. The real
  location/key/version live in run tags and config, never parsed back from the key.
- `file_id` = 16 hex of the same hash: the ledger's key for this file version.
"""

from __future__ import annotations

import fnmatch
import hashlib
import posixpath
import re
import unicodedata
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Literal

import dagster as dg

from fc_assets.ingestion.deliver.cursor import ListedFile, Stability

TAG_PREFIX = "fc/"
SLUG_MAX = 48
REJECTS_SUFFIX = ".rejects.csv"  # the rejects file archived beside a file: <archived name>.rejects.csv
NAME_MAX = 255  # bytes of one path component on common file systems (and SFTP servers on them)


class KeyOutsideLocation(ValueError):
    """A run was asked to process a key that is not one of its location's files (e.g. a manual run config
    naming another feed's file)."""


@dataclass(frozen=True)
class FileLocation:
    """One place a feed's files arrive: an S3 prefix or an SFTP directory, plus a basename glob.

    `stability` says how a complete file is recognised: `atomic` (S3 objects appear whole), `size_stable`
    (same size and mtime on two consecutive ticks; the SFTP default) or `marker` (a `<name><marker_suffix>`
    file is written after the data file)."""

    name: str
    kind: Literal["s3", "sftp"]
    path: str  # S3: "bucket/prefix/" ; SFTP: directory
    glob: str = "*"
    stability: Stability = "atomic"
    marker_suffix: str = ".done"

    @property
    def bucket(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def prefix(self) -> str:
        """S3 key prefix (ends with "/" unless empty); SFTP: the directory."""
        if self.kind == "sftp":
            return self.path.rstrip("/")
        rest = self.path.split("/", 1)[1] if "/" in self.path else ""
        return (rest.rstrip("/") + "/") if rest.strip("/") else ""

    @property
    def directory(self) -> str:
        """Directory of the source files, in which `processed/` and `error/` are created."""
        return self.prefix.rstrip("/") if self.kind == "s3" else self.path.rstrip("/")

    def require_own(self, key: str) -> None:
        """Refuse a key that the sensor of this location would not have listed: it must sit directly in the
        location's directory (not in another feed's, not in `processed/` or `error/`) and match the glob."""
        name = posixpath.basename(key)
        if posixpath.dirname(key) != self.directory or not fnmatch.fnmatchcase(name, self.glob) or not name:
            raise KeyOutsideLocation(
                f"{key!r} is not a file of location {self.name!r} ({self.kind}:{self.path}, glob "
                f"{self.glob!r}): refused (a feed only processes files of its own location)"
            )


class FileRefConfig(dg.Config):
    """Run config of a feed asset: the exact file version to process (set by the sensor). Left empty for
    a manual materialization, the file is looked up from the runs of that partition."""

    location: str = ""
    key: str = ""
    version: str = ""
    size: int = -1
    mtime: float = 0.0
    etag: str = ""


@dataclass(frozen=True)
class FileRef:
    feed: str
    location: str
    key: str
    version: str
    size: int
    mtime: float
    etag: str | None = None

    @classmethod
    def of(cls, feed: str, location: FileLocation, f: ListedFile) -> FileRef:
        return cls(
            feed, location.name, f.key, f.version, f.size, f.mtime, f.etag.strip('"') if f.etag else None
        )

    @property
    def name(self) -> str:
        return posixpath.basename(self.key)

    @property
    def identity(self) -> str:
        return f"{self.location}:{self.key}@{self.version}"

    @property
    def run_key(self) -> str:
        return f"{self.feed}:{self.identity}"

    @property
    def file_id(self) -> str:
        return hashlib.sha256(self.run_key.encode()).hexdigest()[:16]

    @property
    def partition_key(self) -> str:
        day = datetime.fromtimestamp(self.mtime, UTC).strftime("%Y-%m-%d")
        return f"{day}_{slug(self.name)}_{self.file_id[:8]}"

    def tags(self) -> dict[str, str]:
        return {
            f"{TAG_PREFIX}feed": self.feed,
            f"{TAG_PREFIX}location": self.location,
            f"{TAG_PREFIX}key": self.key,
            f"{TAG_PREFIX}version": self.version,
            f"{TAG_PREFIX}size": str(self.size),
            f"{TAG_PREFIX}mtime": repr(float(self.mtime)),
            f"{TAG_PREFIX}file_id": self.file_id,
            **({f"{TAG_PREFIX}etag": self.etag} if self.etag else {}),
        }

    def config(self) -> dict:
        d = asdict(self)
        d.pop("feed")
        d["etag"] = d["etag"] or ""
        return d

    @classmethod
    def from_config(cls, feed: str, c: FileRefConfig) -> FileRef:
        return cls(feed, c.location, c.key, c.version, c.size, c.mtime, c.etag or None)

    @classmethod
    def from_tags(cls, feed: str, tags: dict[str, str]) -> FileRef | None:
        t = {k[len(TAG_PREFIX) :]: v for k, v in tags.items() if k.startswith(TAG_PREFIX)}
        if not t.get("key"):
            return None
        return cls(
            feed,
            t["location"],
            t["key"],
            t["version"],
            int(t["size"]),
            float(t["mtime"]),
            t.get("etag") or None,
        )


def slug(name: str) -> str:
    """A readable ASCII rendering of a file name, safe inside a partition key (no `...`, no `|`)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_name)
    s = re.sub(r"\.{2,}", ".", s).strip("._-")
    if len(s) > SLUG_MAX:
        stem, dot, ext = s.rpartition(".")
        ext = ext if dot and len(ext) <= 8 else ""
        s = s[: SLUG_MAX - len(ext) - 1].rstrip("._-") + ("." + ext if ext else "")
    return s or "file"


def archive_name(name: str, file_id: str) -> str:
    """The name a file is archived under: `<stem>.<version hash>.<ext>`, so a re-uploaded file keeps each
    version. A name too long for that (the archive name, and its `.rejects.csv` beside it, must fit in
    255 bytes) is shortened deterministically: a prefix of the stem, `~` + 8 hex of a hash of the whole
    name (two long names sharing a prefix stay apart), the version hash and the extension."""
    tag = file_id[:8]
    stem, dot, ext = name.rpartition(".")
    has_ext = bool(dot and stem)
    full = f"{stem}.{tag}.{ext}" if has_ext else f"{name}.{tag}"
    limit = NAME_MAX - len(REJECTS_SUFFIX)
    if len(full.encode()) <= limit:
        return full
    ext_part = f".{ext}" if has_ext and len(ext.encode()) <= 16 else ""
    base = stem if ext_part else name
    suffix = f"~{hashlib.sha256(name.encode()).hexdigest()[:8]}.{tag}{ext_part}"
    prefix = base.encode()[: limit - len(suffix.encode())].decode("utf-8", "ignore")
    return prefix + suffix
