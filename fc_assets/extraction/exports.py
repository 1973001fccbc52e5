"""Optional file exports of extracted partitions (like the TypeScript SDK's extraction templates): CSV, JSONL
or XML to an S3 or SFTP outbox. Off unless configured.

Configuration, one environment variable per entity, read when the code location loads:

    FC_EXPORT_<ENTITY>=<format>:<target>[,<format>:<target>...]
    FC_EXPORT_ORDERS=csv:s3://partner-outbox/fluent/,jsonl:sftp:///outbox/orders

`<format>` is `csv`, `jsonl` or `xml`; `<target>` is `s3://bucket/prefix` (credentials and endpoint of the
lake) or `sftp:///remote/dir` (the `sftp` resource, `FC_SFTP_*`). Each configured entity gets an
`<entity>_export` asset downstream of its extraction asset, same partitions; every partition becomes
`<target>/<entity>/<entity>-<partition>.<ext>`, written under a temporary name and renamed when complete
(S3: staged in `<lake>/_tmp/`, outside the partner's prefix, then copied in one request; SFTP: staged in
`_tmp/` next to the outbox directory, then renamed into it), so a partner never picks up half a file.
Each export run first removes temporaries older than a day from `<lake>/_tmp/` (left by killed runs).

Nested columns (order items...) stay nested in JSONL and XML; CSV has one row per entity with nested
columns as JSON text in their cell.
"""

import contextlib
import os
import pathlib
import posixpath
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any
from urllib.parse import urlparse

import dagster as dg
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from dagster import AssetExecutionContext
from lxml import etree

from fc_assets.extraction.assets import partitions_def
from fc_assets.extraction.entities import ENTITIES, EntitySpec
from fc_assets.extraction.extract import PART_FILE
from fc_assets.extraction.windows import Window
from fc_assets.resources.sftp import SFTPResource
from fc_assets.resources.storage import TMP_DIR, Lake, LakeResource

FORMATS = ("csv", "jsonl", "xml")
ENV_PREFIX = "FC_EXPORT_"
READ_BATCH_ROWS = 10_000


@dataclass(frozen=True)
class ExportTarget:
    format: str
    uri: str

    @classmethod
    def parse(cls, text: str) -> "ExportTarget":
        fmt, sep, uri = text.strip().partition(":")
        fmt = fmt.lower()
        if not sep or fmt not in FORMATS:
            raise ValueError(f"export target {text!r}: expected <{'|'.join(FORMATS)}>:<s3://...|sftp:///dir>")
        scheme = urlparse(uri).scheme
        if scheme not in ("s3", "sftp"):
            raise ValueError(f"export target {text!r}: only s3:// and sftp:// outboxes are supported")
        return cls(fmt, uri)

    @property
    def scheme(self) -> str:
        return urlparse(self.uri).scheme

    def file_name(self, entity: str, partition_key: str) -> str:
        return f"{entity}/{entity}-{partition_key}.{self.format}"


def export_targets_from_env(
    environ: Mapping[str, str] | None = None, entities: Sequence[EntitySpec] = ENTITIES
) -> dict[str, list[ExportTarget]]:
    environ = os.environ if environ is None else environ
    known = {e.name.upper(): e.name for e in entities}
    targets: dict[str, list[ExportTarget]] = {}
    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX) or not value.strip():
            continue
        entity = known.get(var[len(ENV_PREFIX) :])
        if entity is None:
            raise ValueError(f"{var}: no extracted entity {var[len(ENV_PREFIX) :].lower()!r}")
        targets[entity] = [ExportTarget.parse(t) for t in value.split(",") if t.strip()]
    return targets


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


def build_export_asset(
    spec: EntitySpec, targets: Sequence[ExportTarget], start_date: str
) -> dg.AssetsDefinition:
    uses_sftp = any(t.scheme == "sftp" for t in targets)

    @dg.asset(
        name=f"{spec.name}_export",
        group_name=spec.group,
        deps=[spec.name],
        partitions_def=partitions_def(spec.grain, start_date),
        backfill_policy=dg.BackfillPolicy.single_run(),
        kinds={*(t.format for t in targets), *(t.scheme for t in targets)},
        required_resource_keys={"lake", "sftp"} if uses_sftp else {"lake"},
        description=f"{spec.name} partitions as files: "
        + ", ".join(f"{t.format} -> {t.uri}" for t in targets),
    )
    def _export(context: AssetExecutionContext) -> dg.MaterializeResult:
        lake: LakeResource = context.resources.lake
        sftp: SFTPResource | None = context.resources.sftp if uses_sftp else None
        store = lake.get_lake()
        for key in store.remove_stale_temporaries():
            context.log.info(f"removed a stale temporary left by an earlier run: {key}")
        tw = context.partition_time_window
        periods = list(Window.of(tw.start, tw.end).periods(spec.grain.step))
        total = 0
        for key, period in zip(context.partition_keys, periods, strict=True):
            files = [
                export_partition(spec, spec.grain.partition_dir(period), key, t, store, sftp) for t in targets
            ]
            total += files[0]["rows"]
            context.add_asset_metadata(
                {"dagster/row_count": files[0]["rows"], "files": dg.MetadataValue.json(files)},
                partition_key=key,
            )
        return dg.MaterializeResult(metadata={"run_rows": total})

    return _export


def build_export_assets(
    targets_by_entity: Mapping[str, Sequence[ExportTarget]],
    start_date: str,
    entities: Sequence[EntitySpec] = ENTITIES,
) -> list[dg.AssetsDefinition]:
    by_name = {e.name: e for e in entities}
    return [
        build_export_asset(by_name[name], targets, start_date) for name, targets in targets_by_entity.items()
    ]
