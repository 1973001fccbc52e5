"""Bytes of a source file, from a local path or a binary stream, gunzipped on the fly.

S3 and SFTP objects arrive as file-like streams that cannot always seek, yet the readers need to look at
the start of the content first (format, CSV delimiter and header, XML prolog). `ByteSource` reads a head
once and then hands out the whole content again: by reopening a path, seeking a seekable stream, or
replaying the head in front of the rest of a forward-only stream. Gzip is recognised by its magic bytes
(whatever the name says) and decompressed by Arrow's native stream, so memory stays bounded; the
decompressed content may not grow beyond `FC_MAX_DECOMPRESSED_BYTES` (a 13 MB gzip can hold 5 GB of
text): reading past it makes the file unreadable.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

import pyarrow as pa

from fc_assets.ingestion.read.unreadable import FileUnreadable

HEAD_BYTES = 256 * 1024
GZIP_MAGIC = b"\x1f\x8b"

Source = str | os.PathLike | BinaryIO


class _Replay(io.RawIOBase):
    """A forward-only stream with its already-read head put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._pos, self._rest = head, 0, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if self._pos < len(self._head):
            n = min(len(view), len(self._head) - self._pos)
            view[:n] = self._head[self._pos : self._pos + n]
            self._pos += n
            return n
        data = self._rest.read(len(view))
        if not data:
            return 0
        view[: len(data)] = data
        return len(data)


class _Borrowed(io.RawIOBase):
    """A caller's stream, read without closing it when done (so that it can be read again)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)


class _Capped(io.RawIOBase):
    """A decompressed stream that refuses to yield more than `limit` bytes (gzip bombs)."""

    def __init__(self, stream: pa.NativeFile, limit: int, name: str) -> None:
        self._stream, self._limit, self._name, self._read = stream, limit, name, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        # one byte past the limit tells "exactly at the limit" from "over it"
        data = self._stream.read(min(len(view), self._limit + 1 - self._read))
        self._read += len(data)
        if self._read > self._limit:
            raise FileUnreadable(
                self._name,
                f"decompressed content is larger than {self._limit:,} bytes "
                "(FC_MAX_DECOMPRESSED_BYTES): refused",
            )
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream.close()
        super().close()


class ByteSource:
    """One file's content: `head` (decompressed, up to HEAD_BYTES) and `open()` for the whole of it."""

    def __init__(self, source: Source, name: str | None = None) -> None:
        self.path: str | None = None
        self._file: BinaryIO | None = None
        if isinstance(source, str | os.PathLike):
            self.path = os.fspath(source)
            self.name = name or self.path
            try:
                with open(self.path, "rb") as f:
                    raw_head = f.read(HEAD_BYTES)
            except OSError as e:
                raise FileUnreadable(self.name, f"cannot open: {e.strerror or e}") from e
        else:
            self._file = source
            self.name = name or str(getattr(source, "name", "") or "<stream>")
            self._start = source.tell() if _seekable(source) else None
            raw_head = source.read(HEAD_BYTES)
        self._raw_head = raw_head
        self.gzip = raw_head[:2] == GZIP_MAGIC
        self.head = _gunzip_head(raw_head, self.name) if self.gzip else raw_head
        self._opened = False

    @property
    def base_name(self) -> str:
        """The file name without directories and without a `.gz` suffix (for format detection)."""
        base = os.path.basename(self.name.rstrip("/"))
        return base[:-3] if base.lower().endswith(".gz") else base

    @property
    def reopenable(self) -> bool:
        """Whether `open()` can be called again (a path or a seekable stream, not a forward-only one)."""
        return self.path is not None or self._start is not None

    def _raw(self, again: bool = False) -> pa.NativeFile:
        if self.path is not None:
            return pa.OSFile(self.path, "r")
        assert self._file is not None
        if self._start is not None:
            self._file.seek(self._start)
            return pa.PythonFile(_Borrowed(self._file) if again else self._file, mode="r")
        if self._opened:
            raise RuntimeError(f"{self.name}: a forward-only stream can be read once")
        return pa.PythonFile(_Replay(self._raw_head, self._file), mode="r")

    def open(self, again: bool = False) -> pa.NativeFile:
        """The whole (decompressed) content as an Arrow input stream; callers close it. With `again`
        (when `reopenable`), closing it leaves a caller's stream open for another `open()`."""
        stream = self._raw(again)
        self._opened = True
        if not self.gzip:
            return stream
        from fc_assets.env_settings import env_setting

        limit = env_setting("max_decompressed_bytes")
        return pa.PythonFile(_Capped(pa.CompressedInputStream(stream, "gzip"), limit, self.name), mode="r")

    @contextmanager
    def random_access(self) -> Iterator[str | BinaryIO]:
        """A seekable form of the content (Parquet needs one): the path or stream itself when it is a plain
        file, else a temporary file the content is spooled to (deleted afterwards)."""
        if not self.gzip and self.path is not None:
            yield self.path
            return
        if not self.gzip and self._file is not None and self._start is not None:
            self._file.seek(self._start)
            yield self._file
            return
        with tempfile.TemporaryDirectory(prefix="fc-spool-") as tmp:
            spooled = os.path.join(tmp, "content")
            with self.open() as src, open(spooled, "wb") as dst:
                shutil.copyfileobj(src, dst, 8 * 1024 * 1024)
            yield spooled


def _seekable(f: BinaryIO) -> bool:
    try:
        return bool(f.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _gunzip_head(raw_head: bytes, name: str) -> bytes:
    """Decompress what the compressed head holds (a truncated member is fine, garbage is not)."""
    try:
        return zlib.decompressobj(wbits=31).decompress(raw_head, HEAD_BYTES)
    except zlib.error as e:
        raise FileUnreadable(name, f"not a valid gzip stream: {e}") from e
