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

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlparse

import dagster as dg
from dagster import AssetExecutionContext

from fc_assets.extraction.assets import partitions_def
from fc_assets.extraction.entities import ENTITIES, EntitySpec
from fc_assets.extraction.windows import Window
from fc_assets.resources.storage import LakeResource

if TYPE_CHECKING:
    from fc_assets.resources.sftp import SFTPResource


FORMATS = ("csv", "jsonl", "xml")
ENV_PREFIX = "FC_EXPORT_"


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
        from fc_assets.extraction.export_files import export_partition  # pyarrow, lxml: at run time

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
