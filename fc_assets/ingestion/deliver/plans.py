"""From a feed declaration (feeds.py) to what the ingestion flow runs: `plan_for(feed)`, with the feed's
delta spec (`delta_spec`) and the sensors' `FileLocation`s of its inboxes (`locations`).

`validate_into_lake` is the bridge to validation (validate.py): it streams the downloaded file through
`validate_file`, writes the accepted rows (typed, with `_row`) as Parquet into the lake for the delta, and the
rejects file to `<lake>/rejects/<feed>/<partition>.csv`, and the keys of the rejected rows beside the accepted
rows (`rejected_keys.parquet`: the delta must not take a rejected row for a disappeared one). A file that cannot be read at all (`FileUnreadable`)
is a failed validation with its reason in the rejects file, not a crashed run: it goes to `error/`.
"""

from __future__ import annotations

import csv
import io
import tempfile
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from fc_assets.ingestion.deliver.delta import DeltaSpec
from fc_assets.ingestion.deliver.files import FileLocation
from fc_assets.ingestion.deliver.pipeline import FeedPlan, ValidationSummary
from fc_assets.ingestion.feeds import Feed
from fc_assets.resources.storage import Lake
from fc_assets.settings import get_settings

if TYPE_CHECKING:  # imported when a file is validated, not at code-location load
    import pyarrow as pa
    import pyarrow.parquet as pq


def validate_into_lake(
    feed: Feed, path: Path, name: str, lake: Lake, accepted_rel: str, rejects_rel: str
) -> ValidationSummary:
    import pyarrow.parquet as pq

    from fc_assets.ingestion.read.rejects import RejectsWriter
    from fc_assets.ingestion.read.unreadable import FileUnreadable
    from fc_assets.ingestion.read.validate import validate_file

    keys_rel = rejected_keys_rel(accepted_rel)
    with tempfile.TemporaryDirectory(prefix="fc-rejects-") as tmp:
        local_rejects = Path(tmp) / "rejects.csv"
        writer = RejectsWriter(local_rejects)
        keys = RejectedKeys(Path(tmp) / "rejected_keys.parquet")
        try:
            run = validate_file(feed, path, name=name, rejects_sink=writer, rejected_keys_sink=keys.write)
            with lake.atomic_write(accepted_rel) as out, pq.ParquetWriter(out, feed.arrow_schema) as pw:
                for batch in run:
                    pw.write_batch(batch)
        except FileUnreadable as e:
            writer.close()
            buf = io.StringIO()
            csv.writer(buf).writerows(
                [
                    ("row", "field", "value", "reason"),
                    (e.row if e.row is not None else "", e.field or "_file", "", e.message),
                ]
            )
            lake.write_bytes(buf.getvalue().encode(), rejects_rel)
            return ValidationSummary(
                0,
                0,
                0,
                failed=True,
                reason=f"unreadable: {e.message}",
                rejects_rel=rejects_rel,
                metadata={"unreadable": e.message},
            )
        finally:
            writer.close()
            keys.close()
        report = run.report
        if report.rejected:
            lake.write_bytes(local_rejects.read_bytes(), rejects_rel)
        if keys.rows:
            lake.write_bytes(keys.path.read_bytes(), keys_rel)
        elif lake.exists(keys_rel):  # from an earlier attempt at this file
            lake.delete(keys_rel)
    reason = None
    if report.failed:
        reason = (
            f"{report.rejected} of {report.rows} rows rejected ({report.reject_rate:.1%} > "
            f"{report.threshold:.0%}); nothing sent"
        )
    md = {
        k: v
        for k, v in report.as_metadata().items()
        if k in ("format", "reject_rate", "reasons", "seconds", "unknown_keys")
    }
    return ValidationSummary(
        report.rows,
        report.accepted,
        report.rejected,
        report.failed,
        reason,
        rejects_rel if report.rejected else None,
        md,
        keys_rel if keys.rows else None,
    )


def rejected_keys_rel(accepted_rel: str) -> str:
    return accepted_rel.rsplit("/", 1)[0] + "/rejected_keys.parquet"


class RejectedKeys:
    """A local Parquet file of the rejected rows' keys, opened on the first rows."""

    def __init__(self, path: Path) -> None:
        self.path, self.rows = path, 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def plan_for(feed: Feed) -> FeedPlan:
    return FeedPlan(
        name=feed.name,
        locations=locations(feed),
        columns=feed.columns,
        delta=delta_spec(feed),
        sender=feed.sender,
        validate=partial(validate_into_lake, feed),
        reject_threshold=feed.threshold,
        job_strategy=feed.job_strategy,
    )


def delta_spec(feed: Feed) -> DeltaSpec:
    """The feed's delta strategy as the delta step runs it (checked against the feed's columns)."""
    d = feed.delta
    spec = DeltaSpec(
        keys=feed.keys,
        strategy=d.strategy,
        timestamp_column=d.timestamp_column,
        change_column=d.change_column,
        send_disappeared=d.send_disappeared or feed.name in get_settings().send_disappeared_feeds,
        hash_columns=d.hash_columns,
    )
    spec.check(list(feed.columns))
    return spec


def locations(feed: Feed) -> tuple[FileLocation, ...]:
    """The inboxes as the sensors' `FileLocation`s (default paths from the settings)."""
    s = get_settings()
    out = []
    for box in feed.inboxes:
        if box.kind == "s3":
            default = s.inbox_s3_uri.removeprefix("s3://").rstrip("/") + f"/{feed.name}/"
        else:
            default = f"{s.sftp_inbox_dir.rstrip('/')}/{feed.name}"
        stability = box.stability or ("atomic" if box.kind == "s3" else "size_stable")
        out.append(
            FileLocation(
                name=box.name or box.kind,
                kind=box.kind,
                path=box.path or default,
                glob=box.glob,
                stability=stability,
            )
        )
    return tuple(out)
