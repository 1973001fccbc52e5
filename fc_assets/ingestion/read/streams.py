"""Bytes of a source file, from a local path or a binary stream, gunzipped on the fly.

S3 and SFTP objects arrive as file-like streams that cannot always seek, yet the readers need to look at
the start of the content first (format, CSV delimiter and header, XML prolog). `ByteSource` reads a head
once and then hands out the whole content again: by reopening a path, seeking a seekable stream, or
replaying the head in front of the rest of a forward-only stream. Gzip is recognised by its magic bytes
(whatever the name says) and decompressed by Arrow's native stream, so memory stays bounded; the
decompressed content may not grow beyond `FC_MAX_DECOMPRESSED_BYTES` (a 13 MB gzip can hold 5 GB of
text): reading past it makes the file unreadable.

Text is UTF-8 unless a byte-order mark says otherwise (`encoding`): UTF-16 or UTF-32 with one (what
PowerShell's `Out-File` and Excel's "Unicode text" write) is handed to the JSON readers as UTF-8 by `utf8()`,
transcoded block by block, so their byte limits and row numbers are those of the UTF-8 twin. Text in UTF-16
or UTF-32 without a mark is refused as such (`refuse_unmarked`), not read as UTF-8 full of NUL bytes.
"""

from __future__ import annotations

import codecs
import copy
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

TRANSCODE_BYTES = 1 << 20
# byte-order marks and the codec of the text after them (UTF-32LE's before UTF-16LE's, which it starts with)
BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# where text in UTF-16/32 without a mark has NUL bytes when its first characters are ASCII, as those of
# JSON, XML and a CSV header are (the pattern RFC 4627 detects encodings by)
_UNMARKED = {
    (False, True, False, True): "utf-16-le",
    (True, False, True, False): "utf-16-be",
    (False, True, True, True): "utf-32-le",
    (True, True, True, False): "utf-32-be",
}

_CODE_UNIT = {"utf-16-le": 2, "utf-16-be": 2, "utf-32-le": 4, "utf-32-be": 4}

Source = str | os.PathLike | BinaryIO


def label(codec: str) -> str:
    """`utf-16-le` → `UTF-16LE`, as users know the encodings."""
    return codec.upper().replace("-LE", "LE").replace("-BE", "BE")


def marked_encoding(head: bytes) -> tuple[str, int]:
    """(codec, length of the byte-order mark) of text starting with one; ("utf-8", 0) without."""
    return next(((codec, len(bom)) for bom, codec in BOMS if head.startswith(bom)), ("utf-8", 0))


def unmarked_codec(head: bytes) -> str | None:
    """The UTF-16 or UTF-32 codec text without a byte-order mark looks like: NUL bytes in its first four
    where those encodings put them (None: not so)."""
    return _UNMARKED.get(tuple(b == 0 for b in head[:4]))


def unmarked(head: bytes) -> str | None:
    """Why text starting with `head` (no byte-order mark) is not UTF-8 when it looks like UTF-16 or UTF-32
    (`unmarked_codec`)."""
    codec = unmarked_codec(head)
    if codec is None:
        return None
    return f"not UTF-8: looks like {label(codec)} without a byte-order mark"


def refuse_unmarked(head: bytes, name: str) -> None:
    """Refuse text that looks like UTF-16 or UTF-32 without a byte-order mark (`unmarked`)."""
    if (why := unmarked(head)) is not None:
        raise FileUnreadable(name, f"{why} (save it as UTF-8, or as UTF-16 with a byte-order mark)")


def _decode(decoder: codecs.IncrementalDecoder, data: bytes, final: bool, at: int, name: str) -> bytes:
    """`data` (from byte `at` of the file) decoded and re-encoded as UTF-8; invalid text: unreadable, saying
    where (an odd byte count, an unpaired surrogate)."""
    try:
        return decoder.decode(data, final).encode("utf-8")
    except UnicodeDecodeError as e:
        where = at - len(decoder.getstate()[0]) + e.start  # (the decoder's held bytes come first)
        raise FileUnreadable(
            name, f"not valid {label(e.encoding)} (as its byte-order mark says): {e.reason} at byte {where:,}"
        ) from e


class _Transcoded(io.RawIOBase):
    """Text in UTF-16 or UTF-32 (from its byte-order mark on, which is skipped) as UTF-8, decoded a block at a
    time: the incremental decoder keeps a code unit or surrogate pair cut between blocks, memory one block."""

    def __init__(self, stream: pa.NativeFile, codec: str, mark: int, name: str) -> None:
        self._stream, self._name = stream, name
        self._decoder = codecs.getincrementaldecoder(codec)()
        self._mark, self._at = mark, 0  # bytes of the stream read so far
        self._out, self._pos, self._done = b"", 0, False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        while self._pos == len(self._out) and not self._done:
            while self._at < self._mark and (skipped := len(self._stream.read(self._mark - self._at))):
                self._at += skipped
            data = self._stream.read(TRANSCODE_BYTES)
            self._done = not data
            self._out, self._pos = _decode(self._decoder, data, self._done, self._at, self._name), 0
            self._at += len(data)
        n = min(len(view), len(self._out) - self._pos)
        view[:n] = self._out[self._pos : self._pos + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._stream.close()
        super().close()


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
                    raw_head += _wider(raw_head, f)
            except OSError as e:
                raise FileUnreadable(self.name, f"cannot open: {e.strerror or e}") from e
        else:
            self._file = source
            self.name = name or str(getattr(source, "name", "") or "<stream>")
            self._start = source.tell() if _seekable(source) else None
            raw_head = source.read(HEAD_BYTES)
            raw_head += _wider(raw_head, source)
        self._raw_head = raw_head
        self.gzip = raw_head[:2] == GZIP_MAGIC
        # `_text_head`: up to HEAD_BYTES characters' worth of UTF-16/32 (what `utf8()` transcodes: as much text
        # as a UTF-8 file's head holds); `head`: the first HEAD_BYTES bytes of it, as for any file
        limit = HEAD_BYTES * _code_unit(raw_head)
        self._text_head = _gunzip_head(raw_head, self.name, limit) if self.gzip else raw_head
        self.head = self._text_head[:HEAD_BYTES]
        self._opened = False
        # the text's encoding by its byte-order mark (UTF-8 without one); `utf8()` transcodes the others
        self.encoding, self._mark = marked_encoding(self.head)
        self._transcode = False

    def utf8(self) -> ByteSource:
        """This content as UTF-8 (for the JSON readers): UTF-16 or UTF-32 with its byte-order mark transcoded
        as it is read, `head` too (the mark left out); UTF-8 as it is. Text looking like UTF-16 or UTF-32
        without a mark: unreadable, saying so."""
        if self.encoding == "utf-8":
            refuse_unmarked(self.head, self.name)
            return self
        view = copy.copy(self)
        view._transcode = True
        decoder = codecs.getincrementaldecoder(self.encoding)()
        view.head = _decode(decoder, self._text_head[self._mark :], False, self._mark, self.name)
        return view

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
        if self.gzip:
            from fc_assets.env_settings import env_setting

            limit = env_setting("max_decompressed_bytes")
            stream = pa.PythonFile(
                _Capped(pa.CompressedInputStream(stream, "gzip"), limit, self.name), mode="r"
            )
        if self._transcode:
            stream = pa.PythonFile(_Transcoded(stream, self.encoding, self._mark, self.name), mode="r")
        return stream

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


def _code_unit(raw_head: bytes) -> int:
    """Bytes per ASCII character of the text starting `raw_head` (gzipped or not) by its byte-order mark: 2
    for UTF-16, 4 for UTF-32, else 1."""
    try:
        first = (
            zlib.decompressobj(wbits=31).decompress(raw_head, 4) if raw_head[:2] == GZIP_MAGIC else raw_head
        )
    except zlib.error:  # (refused as not gzip by `_gunzip_head`)
        return 1
    return _CODE_UNIT.get(marked_encoding(first)[0], 1)


def _wider(raw_head: bytes, f: BinaryIO) -> bytes:
    """The bytes after a full head of UTF-16 (UTF-32) text that hold as many characters as HEAD_BYTES of UTF-8
    do (HEAD_BYTES more, 3x more; for gzip as many compressed bytes); b"" for anything else."""
    unit = _code_unit(raw_head)
    return f.read(HEAD_BYTES * (unit - 1)) if unit > 1 and len(raw_head) >= HEAD_BYTES else b""


def _seekable(f: BinaryIO) -> bool:
    try:
        return bool(f.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _gunzip_head(raw_head: bytes, name: str, limit: int = HEAD_BYTES) -> bytes:
    """Decompress what the compressed head holds, up to `limit` bytes (a truncated member is fine, garbage
    is not), across members as Arrow's stream reads them: a head cut at the first member's end was taken for
    the whole file when shorter than HEAD_BYTES (a CSV header in a member of its own: 0 rows)."""
    out, rest = b"", raw_head
    try:
        while len(out) < limit:
            member = zlib.decompressobj(wbits=31)
            out += member.decompress(rest, limit - len(out))
            rest = member.unused_data
            if not member.eof or not rest.startswith(GZIP_MAGIC):
                return out
    except zlib.error as e:
        raise FileUnreadable(name, f"not a valid gzip stream: {e}") from e
    return out
