"""Streaming Parquet: pages go to row groups as they arrive, so memory is bounded by the row-group size.

- `Spool`: one fetch stream's batches on local disk (Arrow IPC stream), so parallel sub-windows can run
  ahead without holding rows in memory, and the final object is still written in a deterministic order.
- `RowGroupWriter`: a `pq.ParquetWriter` on an already open output stream (the lake's atomic write),
  writing one row group every `row_group_rows` rows and handing each row group to a callback (validation,
  preview) before it is written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

COMPRESSION = "zstd"


class Spool:
    """Record batches appended to a local Arrow IPC stream file and read back in order, one at a time."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = pa.ipc.new_stream(self._sink, schema)

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self._writer.write_batch(batch)
            self.rows += batch.num_rows

    def close(self) -> None:
        if not self._sink.closed:
            self._writer.close()
            self._sink.close()

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Read back (regular reads, not a memory map, so pages read earlier are not kept resident)."""
        with pa.OSFile(str(self.path), "rb") as source:
            yield from pa.ipc.open_stream(source)

    def delete(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


class RowGroupWriter:
    """Writes batches as row groups of `row_group_rows` rows to `sink` (left open: the caller owns it)."""

    def __init__(
        self,
        sink: pa.NativeFile,
        schema: pa.Schema,
        row_group_rows: int,
        on_row_group: Callable[[pa.Table], None] | None = None,
    ) -> None:
        self.schema = schema
        self.row_group_rows = max(1, row_group_rows)
        self.rows = 0
        self.row_groups = 0
        self._on_row_group = on_row_group
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self._writer = pq.ParquetWriter(sink, schema, compression=COMPRESSION)

    def write(self, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        self._buffer.append(batch)
        self._buffered += batch.num_rows
        if self._buffered >= self.row_group_rows:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        if not self._buffered:
            return
        table = pa.Table.from_batches(self._buffer, schema=self.schema)
        self._buffer, self._buffered = [], 0
        offset = 0
        while table.num_rows - offset >= self.row_group_rows or (final and offset < table.num_rows):
            group = table.slice(offset, self.row_group_rows)
            offset += group.num_rows
            if self._on_row_group is not None:
                self._on_row_group(group)
            self._writer.write_table(group, row_group_size=group.num_rows)
            self.rows += group.num_rows
            self.row_groups += 1
        if offset < table.num_rows:  # keep the remainder for the next row group
            rest = table.slice(offset)
            self._buffer = rest.to_batches()
            self._buffered = rest.num_rows

    def close(self) -> None:
        """Flush the last row group and write the footer (an empty partition is a valid, empty file)."""
        self._flush(final=True)
        self._writer.close()
