"""Delta detection: which validated rows Fluent has to receive, computed by DuckDB over Parquet in the lake.

Strategies (declared per feed):

- `hash` (default): a row hash over the canonical columns (or the feed's `hash_columns`), compared per key
  with the last-sent snapshot; new or changed rows are sent. DuckDB joins the file's rows with the snapshot
  on the keys without either side passing through Python (performance-notes §2.8: ~5–7 M rows/s on 2 cores).
- `timestamp`: rows whose `timestamp_column` is newer than the feed's watermark, rows at exactly the mark
  whose key+hash was not sent at the mark (kept beside the mark, `watermark_ties.parquet`), and rows without
  a timestamp (always sent, counted `no_timestamp`). No snapshot: a row with an old timestamp is not sent.
- `hybrid`: the timestamp pre-filter (newer than the mark, at the mark or without a timestamp), then the
  hash comparison with the snapshot: only rows that really changed are sent. The hash leaves out the
  timestamp column unless `hash_columns` says otherwise (a touched but unchanged row is not a change).
- `change_column`: the source marks each row; values in `delete_values` are deletions, the rest upserts.
- `full`: every row, every time.

With `send_disappeared`, rows present in the snapshot but absent from the file become `delete` rows (the
inventory sender turns them into qty 0). Rows validation rejected are not absent: their keys (written by
validation beside the accepted rows) keep their snapshot row, and if any rejected row had no usable key
(a key field missing or unreadable, a malformed record) no row is treated as disappeared for that file
(counted `disappeared_not_sent`). `hash`, `hybrid` and `full` keep a snapshot; the others need none.

The hash is `md5` over the columns cast to text, joined by U+001F with NULL as U+0000 (U+001B, U+001F and
U+0000 inside a text escaped by U+001B, so no value imitates another split or NULL), so it is stable across
DuckDB versions (DuckDB's `hash()` is not) and NULL differs from an empty string. Hashing 10M rows is most
of a delta's CPU, so a snapshot written by `commit_snapshot` carries a mark (`hash_mark`: the hash's
definition, the hashed columns, the DuckDB version) saying every `_h` in it is the hash of its row; against
such a snapshot, columns whose types compare exactly as their text (`EXACT_TYPES`) are compared directly and
only the changed rows are hashed. Without the mark (older snapshots, other hash columns, a snapshot put back
by `reset --to`) the stored hashes are compared, and the commit hashes the snapshot's rows again and marks it. Every connection runs with
`TimeZone = 'UTC'`, so a timestamp's text (hash, watermark) does not depend on the machine's zone. Within
one file the last row of a key wins (duplicates counted).

The snapshot and the watermark advance in `commit_delta`, only after Fluent confirmed the send: rows Fluent
rejected keep their previous snapshot value and the watermark never passes them (it stays at or below the
earliest rejected row's timestamp, which is not among the mark's ties), so they are sent again with the next
file. The commit replaces rows by key and unions the ties, so applying it twice gives the same state: a
crash between writing it and recording it is harmless.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from fc_assets.resources.storage import TMP_DIR, Lake

if TYPE_CHECKING:  # connections come from `Lake.duckdb()`, which imports duckdb when a delta runs
    import duckdb

Strategy = Literal["hash", "timestamp", "hybrid", "change_column", "full"]
DELETE_VALUES = ("D", "DELETE", "DELETED", "d", "delete", "deleted")
# per-file counts of the delta that the feed asset reports as metadata
DELTA_METADATA = (
    "upserts",
    "inserts",
    "updates",
    "deletes",
    "unchanged",
    "duplicate_keys",
    "no_timestamp",
    "rejected_rows_kept",
    "rejected_without_key",
    "disappeared_not_sent",
)


@dataclass(frozen=True)
class DeltaSpec:
    keys: tuple[str, ...]
    strategy: Strategy = "hash"
    timestamp_column: str | None = None
    change_column: str | None = None
    delete_values: tuple[str, ...] = DELETE_VALUES
    send_disappeared: bool = False
    hash_columns: tuple[str, ...] | None = None  # None: every column (hybrid: all but the timestamp)

    @property
    def keeps_snapshot(self) -> bool:
        return self.strategy in ("hash", "hybrid", "full")

    @property
    def uses_watermark(self) -> bool:
        return self.strategy in ("timestamp", "hybrid")

    def check(self, columns: list[str]) -> None:
        """Raise ValueError if the spec names fields the feed does not have (at load, not at the first file)."""
        named = {"timestamp_column": self.timestamp_column, "change_column": self.change_column}
        needed = {
            "timestamp": "timestamp_column",
            "hybrid": "timestamp_column",
            "change_column": "change_column",
        }
        if self.strategy in needed and not named[needed[self.strategy]]:
            raise ValueError(f"delta strategy {self.strategy!r} needs {needed[self.strategy]}")
        if self.send_disappeared and not self.keeps_snapshot:
            raise ValueError(
                f"send_disappeared needs a strategy with a snapshot (hash, hybrid, full), not {self.strategy!r}"
            )
        for what, col in named.items():
            if col and col not in columns:
                raise ValueError(f"{what} {col!r} is not a column of the feed ({columns})")
        self.hashed(columns)

    def hashed(self, columns: list[str]) -> list[str]:
        if self.hash_columns:
            unknown = [c for c in self.hash_columns if c not in columns]
            if unknown:
                raise ValueError(f"hash_columns {unknown} are not columns of the feed ({columns})")
            return list(self.hash_columns)
        if self.strategy == "hybrid":
            return [c for c in columns if c != self.timestamp_column]
        return columns


@dataclass
class DeltaResult:
    rows: int  # distinct keys in the file
    duplicates: int  # rows dropped because a later row had the same key
    upserts: int
    deletes: int
    unchanged: int
    watermark: str | None  # the file's highest timestamp (timestamp/hybrid); the commit caps it
    inserts: int | None = None  # upserts of keys not in the snapshot (strategies with a snapshot)
    updates: int | None = None  # upserts of keys in the snapshot
    no_timestamp: int | None = None  # rows without a timestamp, sent (timestamp/hybrid)
    rejected_rows_kept: int | None = None  # snapshot rows kept because the file's row was rejected
    rejected_without_key: int | None = None  # rejected rows whose key is unknown
    disappeared_not_sent: int | None = None  # absent rows not deleted because of those

    @property
    def changed(self) -> int:
        return self.upserts + self.deletes

    def as_metadata(self) -> dict[str, int]:
        md = {
            "changed": self.changed,
            "upserts": self.upserts,
            "inserts": self.inserts,
            "updates": self.updates,
            "deletes": self.deletes,
            "unchanged": self.unchanged,
            "duplicate_keys": self.duplicates,
            "no_timestamp": self.no_timestamp,
            "rejected_rows_kept": self.rejected_rows_kept,
            "rejected_without_key": self.rejected_without_key,
            "disappeared_not_sent": self.disappeared_not_sent,
        }
        return {k: v for k, v in md.items() if v is not None}


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def duck_path(lake: Lake, rel: str) -> str:
    return lake.path(rel) if lake.scheme == "file" else lake.uri_for(rel)


def connect(lake: Lake) -> duckdb.DuckDBPyConnection:
    con = lake.duckdb()
    con.sql("SET preserve_insertion_order = false")
    con.sql("SET TimeZone = 'UTC'")  # timestamps as text (hashes, watermarks) independent of the machine
    return con


def hash_expr(columns: Iterable[str], alias: str = "") -> str:
    """md5 of the columns' texts joined by U+001F, NULL as U+0000. In a text, U+001B, U+001F and U+0000 are
    escaped by U+001B, so no value imitates a separator or NULL ('x␟y','z' vs 'x','y␟z'; '\\0' vs NULL); a
    text without them (nearly all) hashes as it did before the escape."""
    p = f"{alias}." if alias else ""

    def text(c: str) -> str:
        t = escaped = f"CAST({p}{ident(c)} AS VARCHAR)"
        for ch in (27, 31, 0):  # the escape itself first
            escaped = f"replace({escaped}, chr({ch}), chr(27) || chr({ch}))"
        # replace() only where needed: about 1.25x the hash's CPU instead of 2.2x (2M rows, 5 columns)
        found = " OR ".join(f"contains({t}, chr({ch}))" for ch in (27, 31, 0))
        return f"coalesce(CASE WHEN {found} THEN {escaped} ELSE {t} END, chr(0))"

    return f"md5(concat_ws(chr(31), {', '.join(text(c) for c in columns)}))"


HASH_MARK = "fc_assets_hash"  # Parquet key-value metadata key of deltas and snapshots (see hash_mark)
# DuckDB types whose values are equal exactly when their text (what hash_expr hashes) is equal; not floats
# (-0.0 = 0.0), intervals ('30 days' = '1 month') or nested types
EXACT_TYPES = frozenset(
    [
        "VARCHAR",
        "BOOLEAN",
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "UHUGEINT",
        "DATE",
        "TIME",
        "TIMESTAMP",
        "TIMESTAMP_S",
        "TIMESTAMP_MS",
        "TIMESTAMP_NS",
    ]
) | {"TIMESTAMP WITH TIME ZONE"}


def hash_mark(columns: Iterable[str]) -> str:
    """What a file's `_h` is the hash of: hash_expr's definition over these columns, with this DuckDB (its
    text casts are what is hashed). A snapshot carrying the current mark has `_h == hash of its columns` on
    every row, so comparing the columns decides what hashing them would (see `_column_compare`)."""
    import hashlib
    import json

    import duckdb

    definition = ["md5-text-v2", list(columns), duckdb.__version__]
    return hashlib.sha256(json.dumps(definition).encode()).hexdigest()[:32]


def _mark_of(con: duckdb.DuckDBPyConnection, lake: Lake, rel: str) -> str | None:
    row = con.sql(
        f"SELECT decode(value) FROM parquet_kv_metadata('{duck_path(lake, rel)}') "
        f"WHERE decode(key) = '{HASH_MARK}'"
    ).fetchone()
    return row[0] if row else None


def _column_compare(
    con: duckdb.DuckDBPyConnection, lake: Lake, feed: str, hashed: list[str], keys: tuple[str, ...]
) -> str | None:
    """A condition on the joined rows `c` (file) and `s` (snapshot) true exactly when their hashes differ,
    without hashing: only if the snapshot carries the current `hash_mark` and every hashed column has the
    same type on both sides, one of EXACT_TYPES. None: compare hashes."""
    if _mark_of(con, lake, snapshot_rel(feed)) != hash_mark(hashed):
        return None
    cur, snap = (con.sql(f"SELECT * FROM {t}") for t in ("cur", "snap"))
    cur_types = dict(zip(cur.columns, map(str, cur.types), strict=True))
    snap_types = dict(zip(snap.columns, map(str, snap.types), strict=True))
    for c in hashed:
        t = cur_types.get(c)
        if t is None or snap_types.get(c) != t or not (t in EXACT_TYPES or t.startswith("DECIMAL(")):
            return None
    # the keys are equal in a joined pair; `s._h IS NULL`: no snapshot row (an `_h` is never NULL)
    diffs = [f"c.{ident(c)} IS DISTINCT FROM s.{ident(c)}" for c in hashed if c not in keys]
    return " OR ".join(["s._h IS NULL", *diffs])


def _copy_to(con: duckdb.DuckDBPyConnection, lake: Lake, sql: str, rel: str, mark: str | None = None) -> None:
    """COPY a query to a temp object, then move it onto `rel` so readers never see a partial file. `mark`
    (`hash_mark`) is written in the file's key-value metadata: every `_h` in it is that hash of its row."""
    tmp = f"{TMP_DIR}/{uuid.uuid4().hex}.parquet"
    if lake.scheme == "file":
        import pathlib

        pathlib.Path(lake.path(TMP_DIR)).mkdir(parents=True, exist_ok=True)
        pathlib.Path(lake.path(rel)).parent.mkdir(parents=True, exist_ok=True)
    kv = f", KV_METADATA {{{HASH_MARK}: {_quote(mark)}}}" if mark else ""
    # zstd level 1: at 10M rows (snapshot) ~2 s less CPU than DuckDB's default level and 5 % smaller
    # (the `_h` text is what takes the room, and it does not compress)
    con.sql(
        f"COPY ({sql}) TO '{duck_path(lake, tmp)}' (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1{kv})"
    )
    try:
        lake.fs.move(lake.path(tmp), lake.path(rel))
    finally:
        lake.delete(tmp)


def snapshot_rel(feed: str) -> str:
    return f"state/{feed}/snapshot.parquet"


def snapshot_rows(con: duckdb.DuckDBPyConnection, lake: Lake, feed: str, columns: Iterable[str]) -> str:
    """SQL for the snapshot's rows with every one of `columns`: a column the snapshot lacks (written before
    the feed gained it, e.g. locations' `attributes`) is NULL, so its rows compare, union and commit as rows
    without that field (their stored `_h` differ from the new hashes: each is sent once more)."""
    return parquet_rows(con, lake, snapshot_rel(feed), columns)


def parquet_rows(con: duckdb.DuckDBPyConnection, lake: Lake, rel: str, columns: Iterable[str]) -> str:
    """SQL for a Parquet file's rows with every one of `columns`, NULL where the file lacks one (a snapshot,
    or a delta prepared before the feed gained the column for a file still in flight across the upgrade)."""
    src = f"read_parquet('{duck_path(lake, rel)}')"
    have = set(con.sql(f"SELECT * FROM {src} LIMIT 0").columns)
    missing = "".join(f", NULL AS {ident(c)}" for c in columns if c not in have)
    return f"SELECT *{missing} FROM {src}"


def ties_rel(feed: str) -> str:
    """Keys + hashes of the rows sent at exactly the watermark (`_mark`), for the timestamp strategy."""
    return f"state/{feed}/watermark_ties.parquet"


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    return con.sql(f"SELECT count(*) FROM ({sql})").fetchone()[0]


def _drop_duplicates(con: duckdb.DuckDBPyConnection, src: str, keys: tuple[str, ...]) -> int:
    """Rows a later row of the same key replaces, as temp table `dropped` (`_row` + keys); returns their count.

    Keys are nearly always unique, so a distinct count of a 64-bit hash of the keys first (~3x cheaper
    than a window over every row): equal counts prove there is no duplicate; otherwise (a duplicate, or
    a hash collision) the window finds the exact rows, the last row of a key winning as before."""
    k = ", ".join(ident(c) for c in keys)
    n, distinct = con.sql(f"SELECT count(*), count(DISTINCT hash({k})) FROM {src}").fetchone()
    if n == distinct:
        return 0
    con.sql(f"""
        CREATE TEMP TABLE dropped AS SELECT _row, {k} FROM (
            SELECT _row, {k}, row_number() OVER (PARTITION BY {k} ORDER BY _row DESC) AS _rn FROM {src}
        ) WHERE _rn > 1
    """)
    return con.sql("SELECT count(*) FROM dropped").fetchone()[0]


def _ts_type(con: duckdb.DuckDBPyConnection, table: str, ts: str) -> str:
    return str(con.sql(f"SELECT {ts} FROM {table}").types[0])


def compute_delta(
    lake: Lake,
    feed: str,
    spec: DeltaSpec,
    *,
    accepted_rel: str,
    delta_rel: str,
    columns: list[str],
    watermark: str | None = None,
    rejected_keys_rel: str | None = None,
) -> DeltaResult:
    """Write `delta_rel` (the rows to send, `_op` = upsert|delete, `_row`, `_h`) and count what changed.

    `accepted_rel` is the file's validated rows with a `_row` column (position in the file);
    `rejected_keys_rel` the key columns of the rows validation rejected (null where unknown)."""
    con = connect(lake)
    try:
        keys = ", ".join(ident(k) for k in spec.keys)
        cols = ", ".join(ident(c) for c in columns)
        src = f"read_parquet('{duck_path(lake, accepted_rel)}')"
        total = con.sql(f"SELECT count(*) FROM {src}").fetchone()[0]
        duplicates = _drop_duplicates(con, src, spec.keys)
        if duplicates:
            on = " AND ".join(f"a.{ident(c)} IS NOT DISTINCT FROM d.{ident(c)}" for c in ("_row", *spec.keys))
            src = f"(SELECT a.* FROM {src} a ANTI JOIN dropped d ON {on})"
        # views, not tables: each statement reads the Parquet again (cheap), hashing only where `_h` is used
        con.sql(f"CREATE TEMP VIEW cur_rows AS SELECT {cols}, _row FROM {src}")
        con.sql(f"CREATE TEMP VIEW cur AS SELECT *, {hash_expr(spec.hashed(columns))} AS _h FROM cur_rows")
        rows = total - duplicates
        has_snap = spec.keeps_snapshot and lake.exists(snapshot_rel(feed))
        if has_snap:
            con.sql(f"CREATE TEMP VIEW snap AS {snapshot_rows(con, lake, feed, columns)}")
        else:
            con.sql(f"CREATE TEMP TABLE snap AS SELECT {cols}, _h FROM cur WHERE false")

        no_timestamp, mark, ts = None, None, ""
        if spec.uses_watermark:
            ts = ident(_need(spec.timestamp_column, "timestamp_column"))
            cast = _ts_type(con, "cur", ts)
            no_timestamp = _count(con, f"SELECT 1 FROM cur WHERE {ts} IS NULL")
            mark = f"CAST({_quote(watermark)} AS {cast})" if watermark is not None else None
            new_watermark = con.sql(
                f"SELECT CAST(greatest(max({ts}), {mark or 'NULL'}) AS VARCHAR) FROM cur"
            ).fetchone()[0]
        else:
            new_watermark = watermark

        compare = (
            _column_compare(con, lake, feed, spec.hashed(columns), spec.keys)
            if has_snap and spec.strategy in ("hash", "hybrid")
            else None
        )
        if compare:  # the columns decide; only the rows that changed are hashed, after the join
            h = hash_expr(spec.hashed(columns), alias="c")
            changed_vs_snapshot = (
                f"SELECT c.*, {h} AS _h FROM {{src}} c LEFT JOIN snap s USING ({{keys}}) WHERE {compare}"
            )
            rows_view = "cur_rows"
        else:
            changed_vs_snapshot = (
                "SELECT c.* FROM {src} c LEFT JOIN snap s USING ({keys}) WHERE s._h IS DISTINCT FROM c._h"
            )
            rows_view = "cur"
        if spec.strategy == "hash":
            upserts = changed_vs_snapshot.format(src=rows_view, keys=keys)
        elif spec.strategy == "full":
            upserts = "SELECT * FROM cur"
        elif spec.strategy == "timestamp":
            if mark is None:
                upserts = "SELECT * FROM cur"
            else:
                _ties_view(con, lake, feed, spec, watermark)
                upserts = f"""
                    SELECT * FROM cur WHERE {ts} > {mark} OR {ts} IS NULL
                    UNION ALL
                    SELECT c.* FROM (SELECT * FROM cur WHERE {ts} = {mark}) c ANTI JOIN ties USING ({keys}, _h)
                """
        elif spec.strategy == "hybrid":
            src = rows_view
            if mark is not None:
                src = f"(SELECT * FROM {rows_view} WHERE {ts} >= {mark} OR {ts} IS NULL)"
            upserts = changed_vs_snapshot.format(src=src, keys=keys)
        elif spec.strategy == "change_column":
            ch = ident(_need(spec.change_column, "change_column"))
            dels = ", ".join(_quote(v) for v in spec.delete_values)
            upserts = f"SELECT * FROM cur WHERE coalesce(CAST({ch} AS VARCHAR), '') NOT IN ({dels})"
        else:
            raise ValueError(f"unknown delta strategy {spec.strategy!r}")

        kept = without_key = not_sent = None
        if spec.strategy == "change_column":
            ch = ident(spec.change_column or "")
            dels = ", ".join(_quote(v) for v in spec.delete_values)
            deletes = f"SELECT * FROM cur WHERE CAST({ch} AS VARCHAR) IN ({dels})"
        elif spec.send_disappeared and spec.keeps_snapshot:
            gone = f"SELECT s.* FROM snap s ANTI JOIN cur c USING ({keys})"
            if rejected_keys_rel and lake.exists(rejected_keys_rel):
                con.sql(
                    f"CREATE TEMP VIEW rejected AS SELECT {keys} "
                    f"FROM read_parquet('{duck_path(lake, rejected_keys_rel)}')"
                )
            else:
                con.sql(f"CREATE TEMP TABLE rejected AS SELECT {keys} FROM cur WHERE false")
            any_null = " OR ".join(f"{ident(k)} IS NULL" for k in spec.keys)
            without_key = _count(con, f"SELECT 1 FROM rejected WHERE {any_null}")
            kept = _count(con, f"SELECT 1 FROM ({gone}) g SEMI JOIN rejected USING ({keys})")
            gone = f"SELECT g.* FROM ({gone}) g ANTI JOIN rejected USING ({keys})"
            if without_key:  # any absent row may be one of those: delete nothing this time
                not_sent, gone = _count(con, gone), f"{gone} WHERE false"
            else:
                not_sent = 0
            # rows gone from the file get negative row numbers: unique ids for Fluent's per-entity results
            gcols = ", ".join(f"g.{ident(c)}" for c in columns)
            gkeys = ", ".join(f"g.{ident(k)}" for k in spec.keys)
            deletes = f"SELECT {gcols}, -row_number() OVER (ORDER BY {gkeys}) AS _row, g._h FROM ({gone}) g"
        else:
            deletes = "SELECT * FROM cur WHERE false"

        _copy_to(
            con,
            lake,
            f"""
            SELECT *, 'upsert' AS _op FROM ({upserts})
            UNION ALL
            SELECT *, 'delete' AS _op FROM ({deletes})
            ORDER BY _op DESC, _row
        """,
            delta_rel,
            mark=hash_mark(spec.hashed(columns)),  # of the upserts' `_h`, what the commit keeps
        )
        con.sql(f"CREATE TEMP VIEW delta AS SELECT * FROM read_parquet('{duck_path(lake, delta_rel)}')")
        n_up, n_del = con.sql("""
            SELECT count(*) FILTER (WHERE _op = 'upsert'), count(*) FILTER (WHERE _op = 'delete') FROM delta
        """).fetchone()
        updates = (
            _count(con, f"SELECT 1 FROM delta d SEMI JOIN snap USING ({keys}) WHERE d._op = 'upsert'")
            if spec.keeps_snapshot
            else None
        )
        return DeltaResult(
            rows=rows,
            duplicates=duplicates,
            upserts=n_up,
            deletes=n_del,
            unchanged=rows - n_up - (n_del if spec.strategy == "change_column" else 0),
            watermark=new_watermark,
            inserts=None if updates is None else n_up - updates,
            updates=updates,
            no_timestamp=no_timestamp,
            rejected_rows_kept=kept,
            rejected_without_key=without_key,
            disappeared_not_sent=not_sent,
        )
    finally:
        con.close()


def _ties_view(
    con: duckdb.DuckDBPyConnection, lake: Lake, feed: str, spec: DeltaSpec, mark: str | None
) -> None:
    """`ties`: keys + hash of the rows already sent at exactly `mark` (empty if none were recorded)."""
    keys = ", ".join(ident(k) for k in spec.keys)
    if mark is not None and lake.exists(ties_rel(feed)):
        con.sql(f"""
            CREATE TEMP TABLE ties AS SELECT {keys}, _h FROM read_parquet('{duck_path(lake, ties_rel(feed))}')
            WHERE _mark = {_quote(mark)}
        """)
    else:
        con.sql(f"CREATE TEMP TABLE ties AS SELECT {keys}, _h FROM cur WHERE false")


def commit_delta(
    lake: Lake,
    feed: str,
    spec: DeltaSpec,
    *,
    delta_rel: str,
    columns: list[str],
    failed_rows: Iterable[int] = (),
    watermark: str | None = None,
    file_watermark: str | None = None,
) -> str | None:
    """Apply the confirmed part of a delta: the snapshot (strategies with one) and the watermark (timestamp,
    hybrid). `watermark` is the feed's current mark, `file_watermark` the file's highest timestamp
    (`DeltaResult.watermark`); returns the new mark (never lower than `watermark`)."""
    failed = sorted(set(failed_rows))
    commit_snapshot(lake, feed, spec, delta_rel=delta_rel, columns=columns, failed_rows=failed)
    if not spec.uses_watermark:
        return watermark
    return commit_watermark(
        lake,
        feed,
        spec,
        delta_rel=delta_rel,
        failed_rows=failed,
        watermark=watermark,
        file_watermark=file_watermark,
    )


def commit_watermark(
    lake: Lake,
    feed: str,
    spec: DeltaSpec,
    *,
    delta_rel: str,
    failed_rows: Iterable[int],
    watermark: str | None,
    file_watermark: str | None,
) -> str | None:
    """The new mark: the file's highest timestamp, but not past the earliest row Fluent rejected (that row is
    left out of the mark's ties, so it goes again), and never below the current mark. For `timestamp` the
    ties at the new mark (confirmed rows at exactly it, plus earlier ties if the mark did not move) are
    written first: applying this twice gives the same result."""
    if file_watermark is None:
        return watermark
    con = connect(lake)
    try:
        import pyarrow as pa  # with numpy ~0.2 s: when a delta runs, not at code-location load

        ts = ident(_need(spec.timestamp_column, "timestamp_column"))
        con.register("failed", pa.table({"_row": pa.array(list(failed_rows), pa.int64())}))
        con.sql(f"CREATE TEMP TABLE cur AS SELECT * FROM read_parquet('{duck_path(lake, delta_rel)}')")
        cast = _ts_type(con, "cur", ts)

        def typed(v: str | None) -> str:
            return f"CAST({_quote(v)} AS {cast})" if v is not None else "NULL"

        new = con.sql(f"""
            SELECT CAST(greatest(least({typed(file_watermark)}, min({ts})), {typed(watermark)}) AS VARCHAR)
            FROM cur WHERE _op = 'upsert' AND _row IN (SELECT _row FROM failed)
        """).fetchone()[0]
        if spec.strategy == "timestamp":
            keys = ", ".join(ident(k) for k in spec.keys)
            _ties_view(con, lake, feed, spec, new)
            _copy_to(
                con,
                lake,
                f"""
                SELECT DISTINCT {keys}, _h, {_quote(new)} AS _mark FROM (
                    SELECT {keys}, _h FROM ties
                    UNION ALL
                    SELECT {keys}, _h FROM cur
                    WHERE _op = 'upsert' AND {ts} = {typed(new)} AND _row NOT IN (SELECT _row FROM failed)
                )
            """,
                ties_rel(feed),
            )
        return new
    finally:
        with contextlib.suppress(Exception):
            con.unregister("failed")
        con.close()


def commit_snapshot(
    lake: Lake,
    feed: str,
    spec: DeltaSpec,
    *,
    delta_rel: str,
    columns: list[str],
    failed_rows: Iterable[int] = (),
) -> int | None:
    """Apply the confirmed part of a delta to the snapshot (replace by key); returns its row count."""
    if not spec.keeps_snapshot:
        return None
    con = connect(lake)
    try:
        keys = ", ".join(ident(k) for k in spec.keys)
        cols = ", ".join(ident(c) for c in columns)
        import pyarrow as pa

        failed = pa.table({"_row": pa.array(sorted(set(failed_rows)), pa.int64())})
        con.register("failed", failed)
        # a delta prepared by older code may lack a column the feed has gained since (NULL: its rows are
        # committed without it, unmarked, so they are compared by their old hashes and sent once more)
        con.sql(f"""
            CREATE TEMP TABLE ok AS
            SELECT * FROM ({parquet_rows(con, lake, delta_rel, columns)}) d
            WHERE d._row NOT IN (SELECT _row FROM failed)
        """)
        hashed = spec.hashed(columns)
        mark = hash_mark(hashed)
        if lake.exists(snapshot_rel(feed)):
            # a snapshot without the current mark (older code, other hash columns, another DuckDB) gets its
            # rows' hashes computed again, once: from then on every `_h` is the hash of its row
            h = "_h" if _mark_of(con, lake, snapshot_rel(feed)) == mark else f"{hash_expr(hashed)} AS _h"
            base = f"SELECT {cols}, {h} FROM ({snapshot_rows(con, lake, feed, columns)})"
        else:
            base = f"SELECT {cols}, _h FROM ok WHERE false"
        sql = f"""
            SELECT b.* FROM ({base}) b ANTI JOIN ok USING ({keys})
            UNION ALL
            SELECT {cols}, _h FROM ok WHERE _op = 'upsert'
        """
        marked = _mark_of(con, lake, delta_rel) == mark  # a delta written before marks: not marked
        _copy_to(con, lake, sql, snapshot_rel(feed), mark=mark if marked else None)
        return con.sql(
            f"SELECT count(*) FROM read_parquet('{duck_path(lake, snapshot_rel(feed))}')"
        ).fetchone()[0]
    finally:
        with contextlib.suppress(Exception):
            con.unregister("failed")
        con.close()


def _need(value: str | None, what: str) -> str:
    if not value:
        raise ValueError(f"delta strategy needs {what}")
    return value


def _quote(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"
