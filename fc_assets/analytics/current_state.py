"""The current-state layer: per extracted entity, the newest extracted version of each id, across partitions.

Partitions are update-time windows, so one entity can have a version in several partitions (counted twice
if read naively), and re-extracting a day can *remove* an entity whose `updatedOn` has since moved past
midnight, while its new version lands only when the next day is extracted, hours later (missing if read
naively). Reading "the newest version per id over all partitions" fixes the first; the second needs a
memory of what was extracted before: `<lake>/current/<entity>/part-0.parquet`.

That object is refreshed by the `<entity>_current` asset, which every extraction job materializes right
after the entity's partitions (so a version is remembered before any later run can re-extract it away):
newest version per id over (the previous object ∪ the partition files written since the previous refresh
— all of them the first time), by `updated_on`, then by the partition file it came from (`source_file`,
later partitions win). An entity is therefore always present exactly once, at the newest version ever
extracted. Fluent does not delete entities (they change status), so nothing needs to leave the layer;
deleting the object rebuilds it from all partitions.

Readers (the analytics) use `current_sql`, the same query without the write, so they are right even if the
object is behind the partitions. Refreshes are serialized by the `lake_current_state` pool (limit 1 in
both instance configs): two overlapping refreshes could otherwise each drop what the other remembered.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg

from fc_assets.extraction.entities import EntitySpec
from fc_assets.resources.storage import Lake, LakeResource

CURRENT_DIR = "current"
CURRENT_GROUP = "current_state"
CURRENT_POOL = "lake_current_state"
SOURCE_COLUMN = "source_file"
"""Column of the current-state object: the partition file each version was read from."""
REREAD_MARGIN = timedelta(hours=1)
"""A refresh re-reads the partition objects modified up to this long before the previous refresh wrote."""


def current_key(spec: EntitySpec) -> str:
    return f"{CURRENT_DIR}/{spec.name}/part-0.parquet"


def current_asset_name(spec: EntitySpec) -> str:
    return f"{spec.name}_current"


def partition_files(lake: Lake, spec: EntitySpec) -> list[tuple[str, datetime | None]]:
    """(URI, last modified) of every partition object of the entity, daily (`dt=`) or hourly (`dt=/hour=`)."""
    import pyarrow.fs as pafs

    infos = lake.fs.get_file_info(
        pafs.FileSelector(lake.path(spec.lake_dir), recursive=True, allow_not_found=True)
    )
    return sorted(
        (lake.uri_for(i.path[len(lake.root) + 1 :]), i.mtime)
        for i in infos
        if i.type == pafs.FileType.File and i.path.endswith(".parquet")
    )


def _quoted(uris: list[str]) -> str:
    return "[" + ", ".join("'" + u.replace("'", "''") + "'" for u in uris) + "]"


def _newest_versions_sql(lake: Lake, spec: EntitySpec, files: list[str]) -> str | None:
    """The newest version per id over `files` and the remembered state, `from_state` telling which won."""
    parts = []
    if files:
        parts.append(
            f"SELECT * EXCLUDE (filename), filename AS {SOURCE_COLUMN}, false AS from_state "
            f"FROM read_parquet({_quoted(files)}, union_by_name = true, hive_partitioning = false, "
            "filename = true)"
        )
    if lake.exists(current_key(spec)):
        parts.append(f"SELECT *, true AS from_state FROM read_parquet('{lake.uri_for(current_key(spec))}')")
    if not parts:
        return None
    versions = "\nUNION ALL BY NAME\n".join(parts)
    return f"""
SELECT * FROM ({versions})
QUALIFY row_number() OVER (
    PARTITION BY "{spec.key}"
    ORDER BY "{spec.updated_column}" DESC NULLS LAST, {SOURCE_COLUMN} DESC, from_state) = 1
"""


def current_sql(lake: Lake, spec: EntitySpec) -> str | None:
    """A DuckDB query: every entity once, at its newest extracted version, over the remembered state and
    every partition (None when nothing was extracted). Its columns are the entity's plus `source_file`."""
    sql = _newest_versions_sql(lake, spec, [uri for uri, _ in partition_files(lake, spec)])
    return None if sql is None else f"SELECT * EXCLUDE (from_state) FROM ({sql})"


def refresh_current_state(lake: Lake, spec: EntitySpec) -> dict[str, int]:
    """Rewrite `current/<entity>/part-0.parquet` from itself and the partition objects written since the
    last refresh (minus `REREAD_MARGIN`: clock skew, objects written while it ran); the first refresh, or
    one after the object was deleted, reads every partition. Returns counts for the asset's metadata."""
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    files = partition_files(lake, spec)
    state = lake.fs.get_file_info(lake.path(current_key(spec)))
    since = state.mtime - REREAD_MARGIN if state.type == pafs.FileType.File and state.mtime else None
    read = [uri for uri, mtime in files if since is None or mtime is None or mtime >= since]
    sql = _newest_versions_sql(lake, spec, read)
    if sql is None:
        return {"entities": 0, "partition_files": 0, "partition_files_read": 0}
    with lake.duckdb() as con:
        con.sql("SET TimeZone = 'UTC'")
        table = con.sql(f'{sql} ORDER BY {SOURCE_COLUMN}, "{spec.key}"').to_arrow_table()
    table = table.drop_columns(["from_state"])
    with lake.atomic_write(current_key(spec)) as out:
        pq.write_table(table, out, compression="zstd")
    return {"entities": table.num_rows, "partition_files": len(files), "partition_files_read": len(read)}


def remember_before_replacing(
    lake: Lake, spec: EntitySpec, partition_keys: list[str]
) -> dict[str, int] | None:
    """Refresh the state before a run replaces partition objects that exist (`partition_keys`: lake keys),
    so that a version the re-extraction removes is remembered even if the objects were written by a run
    that did not refresh the state (an asset materialized alone from the UI or CLI). None when there is
    nothing to replace. This refresh is outside the `lake_current_state` pool: a concurrent refresh of the
    same entity may overwrite it, which loses a version only if a third run replaced its partition between."""
    if not any(lake.exists(key) for key in partition_keys):
        return None
    return refresh_current_state(lake, spec)


def build_current_state_asset(spec: EntitySpec) -> dg.AssetsDefinition:
    @dg.asset(
        name=current_asset_name(spec),
        group_name=CURRENT_GROUP,
        deps=[spec.name],
        pool=CURRENT_POOL,
        kinds={"duckdb", "parquet"},
        description=f"Every {spec.name} entity once, at its newest extracted version (across partitions, "
        "remembering versions a re-extraction removed until their newer version is extracted).",
        metadata={"lake_path": f"<FC_LAKE_URI>/{current_key(spec)}"},
    )
    def _current(lake: LakeResource) -> dg.MaterializeResult:
        store = lake.get_lake()
        counts = refresh_current_state(store, spec)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": counts["entities"],
                **counts,
                "uri": dg.MetadataValue.path(store.uri_for(current_key(spec))),
            }
        )

    return _current
