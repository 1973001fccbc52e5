"""Validation of a partition while it streams: per row group, plus checks that span row groups.

Each row group is checked against its entity's declared columns and checks (`EntitySpec`): required
columns not null, each `ColumnCheck`. They run as Arrow compute over the row group (`failing`), reported
under the names pandera gives them; the entity's pandera schema (the same declarations in pandera's
terms) validates a row group whose Arrow schema is not the declared one, and is the oracle the Arrow form
is tested against (test_validation_agrees.py). Importing pandas and pandera cost ~0.6 s of CPU in every
extraction process, and converting each row group to a pandas frame more.

Policy: rows are written as Fluent returned them and the result is reported through the blocking
`schema` asset check (failure counts per column/check and a sample). A failed blocking check fails the
step after the object is written, so downstream assets (analytics, exports) do not run on it and the
problem is visible next to the data that has it. Rows outside the queried window are the exception: they
would land in the wrong partition, so they are dropped before writing and counted as failures.

Key uniqueness across the whole partition is checked with 8-byte hashes of the keys (1.6 MB per 200k
rows), since a row group is validated at a time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:  # pandas and pandera (~0.6 s) are imported only when a row group needs pandera
    import pandera.pandas as pdv

    from fc_assets.extraction.entities import EntitySpec

SAMPLE_SIZE = 10


@dataclass
class ValidationReport:
    """Accumulated over the row groups of one or more partitions."""

    rows: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    sample: list[dict[str, Any]] = field(default_factory=list)
    _key_hashes: list[np.ndarray] = field(default_factory=list, repr=False)

    def validate_rows(self, spec: EntitySpec, table: pa.Table) -> None:
        """One row group of `spec`'s partition: Arrow checks when it has the declared schema, else pandera."""
        if not table.schema.equals(spec.arrow_schema):
            self.validate(spec.pandera_schema, table, spec.key)
            return
        self.rows += table.num_rows
        self._key_hashes.append(key_hashes(table.column(spec.key)))
        checks: dict[str, list] = {}
        for name, check in spec.column_checks:
            checks.setdefault(name, []).append(check)
        keys = table.column(spec.key)
        for i, column in enumerate(spec.columns):  # by position: the schema is the declared one
            values = table.column(i)
            if not column.nullable and values.null_count:
                self._count(column.name, "not_nullable", values.is_null(), values, keys, null_case=True)
            for check in checks.get(column.name, ()):
                self._count(column.name, check.report, check.failing(values), values, keys)

    def _count(
        self, column: str, check: str, failing: pa.Array, values, keys, null_case: bool = False
    ) -> None:
        import pyarrow.compute as pc

        rows = pc.indices_nonzero(failing).to_numpy()  # nulls in `failing` are not failures
        if not rows.size:
            return
        self.failures[f"{column}: {check}"] += int(rows.size)
        for i in rows[: max(0, SAMPLE_SIZE - len(self.sample))]:
            value = None if null_case else values[int(i)].as_py()
            self.add_sample(column=column, check=check, value=value, key=keys[int(i)].as_py())

    def validate(self, schema: pdv.DataFrameSchema, table: pa.Table, key: str) -> None:
        """One row group through pandera (a table that does not have its entity's declared Arrow schema)."""
        import pandas as pd
        import pandera.pandas as pdv

        self.rows += table.num_rows
        self._key_hashes.append(key_hashes(table.column(key)))
        frame = table.to_pandas(types_mapper=pd.ArrowDtype)  # Arrow-backed: views of the row group's buffers
        try:
            schema.validate(frame, lazy=True, inplace=True)  # no copy: the copy would get the cycle too
        except pdv.errors.SchemaErrors as exc:
            _drop_accessor_cycle(exc.data)
            cases = exc.failure_cases
            for (column, check), n in cases.groupby(["column", "check"], dropna=False).size().items():
                self.failures[f"{column}: {check}"] += int(n)
            keys = table.column(key)
            for row in cases.head(SAMPLE_SIZE - len(self.sample)).itertuples(index=False):
                index = row.index if isinstance(row.index, int | np.integer) else None
                self.add_sample(
                    column=row.column,
                    check=row.check,
                    value=row.failure_case,
                    key=keys[int(index)].as_py() if index is not None else None,
                )
        finally:
            _drop_accessor_cycle(frame)

    def add_failure(self, name: str, count: int, **sample: Any) -> None:
        if count:
            self.failures[name] += count
            self.add_sample(check=name, **sample)

    def add_sample(self, **case: Any) -> None:
        if len(self.sample) < SAMPLE_SIZE:
            self.sample.append({k: _plain(v) for k, v in case.items()})

    def finish_partition(self, key: str) -> None:
        """Count keys seen more than once in the partition (all row groups) and reset for the next one."""
        if self._key_hashes:
            hashes = np.concatenate(self._key_hashes)
            self._key_hashes.clear()
            duplicates = int(hashes.size - np.unique(hashes).size)
            self.add_failure(f"{key}: unique in partition", duplicates)

    @property
    def failure_count(self) -> int:
        return sum(self.failures.values())

    @property
    def passed(self) -> bool:
        return not self.failures

    def merge(self, other: ValidationReport) -> None:
        self.rows += other.rows
        self.failures.update(other.failures)
        for case in other.sample:
            self.add_sample(**case)


FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)


def key_hashes(keys: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """64-bit FNV-1a of each key's UTF-8 bytes (null keys all hash alike), vectorised over the keys: one
    numpy step per byte position, so a row group of 10,000 36-character ids costs ~36 short passes."""
    import pyarrow.compute as pc

    array = pc.cast(keys, pa.large_string())
    array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
    n = len(array)
    hashes = np.full(n, FNV_OFFSET, dtype=np.uint64)
    if n == 0:
        return hashes
    _, offsets_buf, data_buf = array.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64)[array.offset : array.offset + n + 1]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    starts, lengths = offsets[:-1], np.diff(offsets)
    live = np.arange(n)
    with np.errstate(over="ignore"):
        for j in range(int(lengths.max(initial=0))):
            live = live[lengths[live] > j]  # the keys at least j + 1 bytes long
            hashes[live] = (hashes[live] ^ data[starts[live] + j]) * FNV_PRIME
    if array.null_count:
        hashes[array.is_null().to_numpy(zero_copy_only=False)] = 0
    return hashes


def _drop_accessor_cycle(frame: Any) -> None:
    """Break the reference cycle pandera leaves on a validated frame, so the frame dies with its last name.

    pandas caches an accessor on first use (`frame.pandera`, set by `schema.validate`) in the frame's
    `__dict__`, and the accessor holds the frame: a cycle that only the cyclic GC frees, and that rarely runs a
    full collection. Until it did, every validated row group's frame, its cached columns and so the row
    group's Arrow buffers stayed alive: peak memory grew by one row group (~8 MB per 10k orders) per row
    group written.
    """
    import pandas as pd

    if isinstance(frame, pd.DataFrame | pd.Series):
        vars(frame).pop("pandera", None)
        cache = vars(frame).get("_item_cache")
        if isinstance(cache, dict):
            cache.clear()


def _plain(value: Any) -> Any:
    """Metadata-safe (JSON) form of a failure case value."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)[:200]
