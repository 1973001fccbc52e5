"""Writing one extracted partition as a CSV, JSONL or XML file into an S3 or SFTP outbox (`exports.py`
declares the assets and reads the configuration), so a partner never sees half a file."""

from __future__ import annotations

import contextlib
import pathlib
import posixpath
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlparse

import dagster as dg
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from lxml import etree

from fc_assets.extraction.entities import PART_FILE, EntitySpec
from fc_assets.resources.sftp import SFTPResource
from fc_assets.resources.storage import TMP_DIR, Lake

if TYPE_CHECKING:
    from fc_assets.extraction.exports import ExportTarget

READ_BATCH_ROWS = 10_000


# ------------------------------------------------------------------------------------------ file writers


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value))


def _to_json_text(column: pa.Array) -> pa.Array:
    return pa.array(
        [
            None if v is None else orjson.dumps(v, default=_json_default, option=orjson.OPT_UTC_Z).decode()
            for v in column.to_pylist()
        ],
        pa.string(),
    )


def write_csv(batches: Iterator[pa.RecordBatch], schema: pa.Schema, out: IO[bytes]) -> int:
    nested = {i for i, f in enumerate(schema) if pa.types.is_list(f.type) or pa.types.is_struct(f.type)}
    flat = pa.schema([pa.field(f.name, pa.string()) if i in nested else f for i, f in enumerate(schema)])
    rows = 0
    with pacsv.CSVWriter(out, flat) as writer:
        for batch in batches:
            arrays = [_to_json_text(col) if i in nested else col for i, col in enumerate(batch.columns)]
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=flat))
            rows += batch.num_rows
    return rows


def write_jsonl(batches: Iterator[pa.RecordBatch], schema: pa.Schema, out: IO[bytes]) -> int:
    rows = 0
    for batch in batches:
        out.write(
            b"".join(
                orjson.dumps(r, option=orjson.OPT_UTC_Z | orjson.OPT_APPEND_NEWLINE)
                for r in batch.to_pylist()
            )
        )
        rows += batch.num_rows
    return rows


def _xml_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _xml_element(xf: Any, tag: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        with xf.element(tag):
            for k, v in value.items():
                _xml_element(xf, k, v)
    elif isinstance(value, list):
        with xf.element(tag):
            singular = tag[:-1] if tag.endswith("s") else f"{tag}_item"
            for v in value:
                _xml_element(xf, singular, v)
    else:
        el = etree.Element(tag)
        el.text = _xml_value(value)
        xf.write(el)


def xml_writer(entity: str) -> Callable[[Iterator[pa.RecordBatch], pa.Schema, IO[bytes]], int]:
    """`<orders><order><id>..</id><items><item>..</item></items></order>...</orders>`, streamed."""
    row_tag = entity[:-1] if entity.endswith("s") else f"{entity}_row"

    def write_xml(batches: Iterator[pa.RecordBatch], schema: pa.Schema, out: IO[bytes]) -> int:
        rows = 0
        with etree.xmlfile(out, encoding="utf-8") as xf:
            xf.write_declaration()
            with xf.element(entity):
                for batch in batches:
                    for row in batch.to_pylist():
                        _xml_element(xf, row_tag, row)
                    xf.flush()
                    rows += batch.num_rows
        return rows

    return write_xml


def writer_for(fmt: str, entity: str) -> Callable[[Iterator[pa.RecordBatch], pa.Schema, IO[bytes]], int]:
    return {"csv": write_csv, "jsonl": write_jsonl}.get(fmt) or xml_writer(entity)


# ---------------------------------------------------------------------------------------------- targets


@contextlib.contextmanager
def staged_in_lake(lake: Lake, name: str, publish: Callable[[str], None]) -> Iterator[pa.NativeFile]:
    """A temporary file under `<lake>/_tmp/` (never under the partner's outbox prefix, where a poller could
    pick it up half-written); once the block succeeded and the file is closed, `publish(temporary path)`
    copies it to its place. The temporary is removed either way."""
    tmp = lake.path(TMP_DIR, f"{uuid.uuid4().hex}-{posixpath.basename(name)}")
    if lake.scheme == "file":
        pathlib.Path(tmp).parent.mkdir(parents=True, exist_ok=True)
    try:
        with lake.fs.open_output_stream(tmp) as out:
            yield out
        publish(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError, OSError):
            lake.fs.delete_file(tmp)


def sftp_staging_dir(outbox: str) -> str:
    """`_tmp` next to the outbox directory (`/partner/outbox` -> `/partner/_tmp`): on the same server, so
    the final rename is atomic, but outside what the partner polls (unless the outbox is `/` itself)."""
    return posixpath.join(posixpath.dirname(outbox.rstrip("/")) or "/", TMP_DIR)


@contextlib.contextmanager
def open_target(
    target: ExportTarget, name: str, lake: Lake, sftp: SFTPResource | None
) -> Iterator[tuple[IO[bytes], str]]:
    """An output stream for `name` under the target that becomes visible only when the block succeeds."""
    if target.scheme == "s3":
        outbox = Lake(
            target.uri.rstrip("/"),
            endpoint_url=lake.endpoint_url,
            access_key_id=lake.access_key_id,
            secret_access_key=lake.secret_access_key,
            region=lake.region,
        )

        def publish(tmp: str) -> None:
            pafs.copy_files(
                tmp, outbox.path(name), source_filesystem=lake.fs, destination_filesystem=outbox.fs
            )

        with staged_in_lake(lake, name, publish) as out:
            yield out, outbox.uri_for(name)
        return
    if sftp is None:
        raise dg.Failure(f"{target.uri}: SFTP export needs the `sftp` resource", allow_retries=False)
    root = "/" + urlparse(target.uri).path.strip("/")
    remote = posixpath.join(root, name)
    staging = sftp_staging_dir(root)
    with sftp.session() as session:
        session.makedirs(posixpath.dirname(remote))
        session.makedirs(staging)
        part = posixpath.join(staging, f"{uuid.uuid4().hex}-{posixpath.basename(name)}")
        try:
            with session.open(part, "wb") as out:
                yield out, f"sftp://{sftp.host}:{sftp.port}{remote}"
            session.rename(part, remote)
        except BaseException:
            session.remove(part)
            raise


def export_partition(
    spec: EntitySpec,
    partition_dir: str,
    partition_key: str,
    target: ExportTarget,
    lake: Lake,
    sftp: SFTPResource | None = None,
) -> dict[str, Any]:
    """Stream one extracted partition from the lake into one export file; returns metadata."""
    source = pq.ParquetFile(lake.path(spec.lake_dir, partition_dir, PART_FILE), filesystem=lake.fs)
    batches = source.iter_batches(batch_size=READ_BATCH_ROWS, use_threads=False)
    with open_target(target, target.file_name(spec.name, partition_key), lake, sftp) as (out, uri):
        rows = writer_for(target.format, spec.name)(batches, source.schema_arrow, out)
    return {"rows": rows, "uri": uri, "format": target.format}
