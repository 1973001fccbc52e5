"""Reading a file's delta back for sending: streamed from Parquet in file order, a chunk at a time.

`delta.parquet` is written once per prepare and read back in file order, so chunk `i` of `size` rows is
always rows `[i*size, (i+1)*size)`: a rerun maps a chunk ordinal recorded in the send log to the same rows.
Only the chunk being sent becomes Python objects; memory is bounded by the chunk size, not the delta's.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

from fc_assets.resources.storage import Lake

if TYPE_CHECKING:  # imported when a delta is read (not at code-location load)
    import pyarrow as pa

SCAN_ROWS = 10_000  # read size of the scans that pick a few rows by position
NOT_SENT = ("_h",)  # the row hash: the delta's business, never sent — not read back


class DeltaFile:
    def __init__(self, lake: Lake, rel: str) -> None:
        self.lake, self.rel = lake, rel

    @cached_property
    def num_rows(self) -> int:
        import pyarrow.parquet as pq

        with self.lake.fs.open_input_file(self.lake.path(self.rel)) as f:
            return pq.ParquetFile(f).metadata.num_rows

    def chunks(self, size: int, columns: list[str] | None = None) -> Iterator[tuple[int, pa.Table]]:
        """(ordinal, rows) for every chunk of exactly `size` rows (the last may be shorter), in file order.
        Parquet batches stop at row-group ends, so they are re-cut to `size`. Memory: one row group (DuckDB
        writes 122,880 rows a group) plus the chunk — each row group is read by its own reader, because one
        reader over the whole file keeps every row group it pre-buffered until it is done (at 10M rows the
        sender held the whole delta), while pre-buffering one group still reads it in few requests on S3."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        size = max(1, size)
        if columns == []:  # a table without columns keeps its row count through slicing: no end
            raise ValueError("DeltaFile.chunks needs at least one column")
        with self.lake.fs.open_input_file(self.lake.path(self.rel)) as f:
            pf = pq.ParquetFile(f)
            if columns is None:
                columns = [n for n in pf.schema_arrow.names if n not in NOT_SENT]
            pending: list[pa.RecordBatch] = []
            held, ordinal = 0, 0
            batches = (
                b
                for group in range(pf.num_row_groups)
                for b in pf.iter_batches(batch_size=size, columns=columns, row_groups=[group])
            )
            for batch in batches:
                pending.append(batch)
                held += batch.num_rows
                while held >= size:
                    table = pa.Table.from_batches(pending)
                    yield ordinal, table.slice(0, size)
                    ordinal += 1
                    rest = table.slice(size)
                    pending, held = rest.to_batches(), rest.num_rows
            if held:
                yield ordinal, pa.Table.from_batches(pending)

    def rows_at(self, positions: Iterable[int]) -> dict[int, dict[str, Any]]:
        """The rows at these positions in the file (few: retries, rejections), in one streaming pass."""
        wanted = sorted(set(positions))
        out: dict[int, dict[str, Any]] = {}
        if not wanted:
            return out
        for ordinal, table in self.chunks(SCAN_ROWS):
            lo = ordinal * SCAN_ROWS
            hi = lo + table.num_rows
            picked = wanted[bisect.bisect_left(wanted, lo) : bisect.bisect_left(wanted, hi)]
            if picked:
                rows = table.take([p - lo for p in picked]).to_pylist()
                out.update(zip(picked, rows, strict=True))
            if hi > wanted[-1]:
                break
        return out
