"""Declarative mapping: a feed's canonical fields and where each one's text comes from.

A `Field` (`spec.py`) is declared once and drives three steps: mapping (this module: which source column, default,
constant, transform), conversion (`conversions.py`: text → Arrow type, with a reason when the text is not
a value of that type) and the rules of the pandera schema (`validate.py`: required, ranges, allowed
values, lengths, patterns).

Source columns are matched to a field by its name or one of its aliases, ignoring case and punctuation
(`skuRef`, `SKU_REF`, `sku-ref` and a JSON `sku.ref` all match `sku_ref`); when several match (an XML
attribute `location` in some records, a nested `<Location><Ref>` in others), a row takes the first
non-empty one in the order of the field's names. Two columns that differ only in case or punctuation
are ambiguous and refused. A required field with no
matching column makes the file unreadable (the error names the field, the accepted names and the columns
found). Every mapped value is trimmed and an empty value is null, whatever the format; text is otherwise
kept exactly (leading zeros stay).

Order of evaluation per field: `constant` (source ignored), else `compute(columns)` (a function over the
source columns: `join`, or any vectorised custom function), else the matched column; then `transform`
(a vectorised function of the text: `value_map`, `pandas_transform`, any `pa.Array -> pa.Array`); then
`fallback` (another field's value) and `default` fill what is still empty.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fc_assets.ingestion.read.arrow_values import (
    as_batch,
    bools,
    numbers,
    scalar,
    strings,
    to_bools,
    to_numbers,
)
from fc_assets.ingestion.read.text_arrays import STRING, as_text, clean, constant
from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets.ingestion.spec import (
    ATTRIBUTE_TYPE,
    ERROR,
    FOLDED,
    RAW,
    ROW,
    TECHNICAL,
    AttributeColumns,
    Field,
)

if TYPE_CHECKING:
    import pandas as pd

    from fc_assets.ingestion.feeds import Feed
    from fc_assets.ingestion.read.readers import RawFile


def normalise(name: str) -> str:
    """The form column names are compared in: lower case, letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


class Columns:
    """The source columns of one batch as cleaned text, looked up by any spelling of their name."""

    def __init__(self, batch: pa.RecordBatch, index: dict[str, int]) -> None:
        self._batch, self._index, self._cache = batch, index, {}

    def __len__(self) -> int:
        return self._batch.num_rows

    def __contains__(self, name: str) -> bool:
        return normalise(name) in self._index

    def __getitem__(self, name: str) -> pa.Array:
        """The column's text (nulls when the file has no such column)."""
        key = normalise(name)
        if key not in self._cache:
            i = self._index.get(key)
            self._cache[key] = (
                constant(None, len(self)) if i is None else clean(as_text(self._batch.column(i)))
            )
        return self._cache[key]


@dataclass
class _Plan:
    sources: dict[str, list[int]]  # field → matching source columns, in the order of the field's names
    attributes: list[tuple[str, int]] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    folded: int | None = None  # the reader's folded attribute column (read/folded.py), else per column


class FieldMapper:
    """Maps a reader's raw batches (source columns) onto a feed's canonical text columns."""

    def __init__(self, fields: Iterable[Field], attributes: AttributeColumns | None = None) -> None:
        self.fields = tuple(fields)
        self.attributes = attributes
        self._attribute_name = attribute_namer(attributes) if attributes else None
        self._plans: dict[tuple[tuple[str, ...], bool], _Plan] = {}
        names = [f.name for f in self.fields]
        self.schema = pa.schema(
            [(n, STRING) for n in names]
            + ([(attributes.field, pa.list_(ATTRIBUTE_TYPE))] if attributes else [])
            + [(ROW, pa.int64()), (ERROR, STRING), (RAW, STRING)]
        )

    def plan(self, columns: list[str], file: str, *, strict: bool, fold: bool = False) -> _Plan:
        """`fold`: the reader folds attribute keys into the `FOLDED` column (`SourceKeys.fold`); its other
        columns are then no attributes."""
        key = (tuple(columns), fold)
        if key in self._plans:
            return self._plans[key]
        folded = columns.index(FOLDED) if fold and FOLDED in columns else None
        index: dict[str, int] = {}
        clashes: dict[str, list[str]] = {}
        for i, col in enumerate(columns):
            if col in TECHNICAL or i == folded:
                continue
            norm = normalise(col)
            if norm in index:
                clashes.setdefault(norm, [columns[index[norm]]]).append(col)
            else:
                index[norm] = i
        sources: dict[str, list[int]] = {}
        for f in self.fields:
            found = list(dict.fromkeys(normalise(n) for n in f.names() if normalise(n) in index))
            for name in found:  # (not `key`: that is the cache's key, which this loop overwrote)
                if name in clashes:
                    raise FileUnreadable(
                        file, f"columns {clashes[name]} all match field {f.name}", field=f.name
                    )
            sources[f.name] = [index[name] for name in found]
        missing = [f for f in self.fields if f.needs_column and not sources[f.name]]
        if strict and missing:
            wanted = "; ".join(f"{f.name} (as {' / '.join(f.names())})" for f in missing)
            found_cols = [c for i, c in enumerate(columns) if c not in TECHNICAL and i != folded]
            raise FileUnreadable(
                file,
                f"missing required column(s): {wanted}; columns found: {found_cols}",
                field=missing[0].name,
            )
        attributes: list[tuple[str, int]] = []
        if self._attribute_name is not None and not fold:
            used = {i for found in sources.values() for i in found}
            for i, col in enumerate(columns):
                if i in used or col in TECHNICAL:
                    continue
                name = self._attribute_name(col)
                if name is not None:
                    attributes.append((name, i))
        plan = _Plan(sources, attributes, index, folded)
        if strict or not missing:  # a lenient plan (later JSON/XML chunks) is not cached for a strict check
            self._plans[key] = plan
        return plan

    def map_batch(
        self,
        raw: pa.RecordBatch | pa.Table,
        plan: _Plan,
        verify: Callable[[pa.RecordBatch], None] | None = None,
    ) -> pa.RecordBatch:
        """One chunk onto the canonical fields (`verify`: the reader's check of the chunk, `RawFile.verify`)."""
        raw = as_batch(raw)
        if verify is not None:
            verify(raw)
        n = raw.num_rows
        cols = Columns(raw, plan.index)
        out: dict[str, pa.Array] = {}
        for f in self.fields:
            if f.constant is not None:
                out[f.name] = constant(f.constant, n)
                continue
            if f.compute is not None:
                arr = clean(as_text(f.compute(cols)))
            else:  # the first non-empty of the matching columns (JSON/XML records may use either)
                found = [clean(as_text(raw.column(i))) for i in plan.sources[f.name]]
                arr = found[0] if len(found) == 1 else pc.coalesce(*found) if found else constant(None, n)
            if f.transform is not None and arr.null_count < n:
                arr = clean(as_text(f.transform(arr)))
            out[f.name] = arr
        for f in self.fields:
            if f.fallback is not None and out[f.name].null_count:
                out[f.name] = pc.coalesce(out[f.name], out[f.fallback])
            if f.default is not None and out[f.name].null_count:
                out[f.name] = pc.coalesce(out[f.name], scalar(f.default, STRING))
        arrays = list(out.values())
        if self.attributes:
            if plan.folded is not None:
                lists = folded_attribute_lists(
                    raw.column(plan.folded), self._attribute_name, self.attributes.type
                )
            else:  # (each column's own values: two spellings of one name, `attr_x` and `ATTR_X`, are two)
                names = [name for name, _ in plan.attributes]
                values = [clean(as_text(raw.column(i))) for _, i in plan.attributes]
                keys = [raw.schema.names[i] for _, i in plan.attributes]
                lists = attribute_lists(names, values, n, self.attributes.type, keys)
            arrays.append(lists)
        names = raw.schema.names
        for tech, typ in ((ROW, pa.int64()), (ERROR, STRING), (RAW, STRING)):
            arrays.append(raw.column(names.index(tech)) if tech in names else pa.nulls(n, typ))
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def map_file(self, raw: RawFile) -> Iterator[pa.RecordBatch]:
        """Mapped batches of a file. Columns known up front (CSV header, Parquet) are checked at once; for
        JSON/XML the first chunk must have every required column (else the file is the wrong one), later
        chunks may lack some (those rows are then rejected as missing the value)."""
        return (self.map_batch(batch, plan, raw.verify) for batch, plan in self.plan_file(raw))

    def plan_file(self, raw: RawFile) -> Iterator[tuple[pa.RecordBatch, _Plan]]:
        """`map_file` before the mapping: each raw batch with its plan, for `map_batch` to run elsewhere
        (validate.py maps chunks on worker threads while the next ones are parsed)."""
        if raw.columns is not None:  # (CSV, Parquet: attributes by column, a header is bounded)
            plan = self.plan(raw.columns, raw.name, strict=True)
            if not any(f.compute for f in self.fields):  # computed fields may read any column
                used = {i for found in plan.sources.values() for i in found} | {i for _, i in plan.attributes}
                raw.only([raw.columns[i] for i in sorted(used)])
        return self._plan_batches(raw)

    def _plan_batches(self, raw: RawFile) -> Iterator[tuple[pa.RecordBatch, _Plan]]:
        first, fold = True, raw.keys is not None and raw.keys.fold
        for batch in raw.batches:
            # a chunk none of whose records could be read (each has its `_error`) shows no columns: its rows
            # are rejected with their reasons, and the next chunk is the first to be checked for columns
            unread = ERROR in batch.schema.names and batch.num_rows and not batch.column(ERROR).null_count
            try:
                plan = self.plan(batch.schema.names, raw.name, strict=first and not unread, fold=fold)
            except FileUnreadable as e:
                # the readers keep only the columns the feed can use: the file's other keys, for the user
                if raw.keys is None or not raw.keys.shown:
                    raise
                more = ", …" if raw.keys.distinct > len(raw.keys.shown) else ""
                message = f"{e.message}; keys the feed does not use: {raw.keys.shown}{more}"
                raise FileUnreadable(e.file, message, row=e.row, field=e.field) from e
            yield batch, plan
            first = first and bool(unread)


_MAPPERS: dict[int, tuple[Feed, FieldMapper]] = {}


def mapper_for(feed: Feed) -> FieldMapper:
    """The feed's mapper, built once per feed object (it keeps a plan per header it has seen)."""
    hit = _MAPPERS.get(id(feed))
    if hit is None or hit[0] is not feed:
        hit = _MAPPERS[id(feed)] = (feed, FieldMapper(feed.fields, feed.attributes))
    return hit[1]


def text_schema(feed: Feed) -> pa.Schema:
    """What `read_file` yields for the feed: canonical fields as text, plus `_row`, `_error`, `_raw`."""
    return mapper_for(feed).schema


def attribute_namer(attributes: AttributeColumns) -> Callable[[str], str | None]:
    """A source key's attribute name (the rest after a prefix, or a listed column's own name), else None."""
    return namer(attributes.prefixes, attributes.columns)


def namer(prefixes: Iterable[str], columns: Iterable[str]) -> Callable[[str], str | None]:
    """`attribute_namer` of these prefixes and listed columns (also `SourceKeys.attribute_name`)."""
    listed = {normalise(c) for c in columns}
    prefixes = tuple(p.lower() for p in prefixes)

    def name(col: str) -> str | None:
        low = col.lower()
        prefix = next((p for p in prefixes if low.startswith(p) and len(col) > len(p)), None)
        if prefix is not None:
            return col[len(prefix) :]
        return col if normalise(col) in listed else None

    return name


def _no_attributes(n: int) -> pa.ListArray:
    empty = pa.StructArray.from_arrays(
        [pa.nulls(0, f.type) for f in ATTRIBUTE_TYPE], fields=list(ATTRIBUTE_TYPE)
    )
    return pa.ListArray.from_arrays(numbers(np.zeros(n + 1), pa.int32()), empty)


def attribute_lists(
    names: list[str], values: list[pa.Array], n: int, type_: str, keys: list[str] | None = None
) -> pa.ListArray:
    """K text columns → per row the list of `{name, type, value}` for its non-empty values, ordered by name,
    then by the column's own name (`keys`; see `folded_attribute_lists`)."""
    k = len(values)
    if k == 0:
        return _no_attributes(n)
    keys = keys or names
    by_name = sorted(range(k), key=lambda i: (names[i], keys[i]))
    names, values = [names[i] for i in by_name], [values[i] for i in by_name]
    order = np.arange(n * k).reshape(k, n).T.ravel()  # row-major over the stacked columns
    vals = pa.concat_arrays(values).take(numbers(order))
    keep = pc.is_valid(vals)
    counts = to_bools(keep).reshape(n, k).sum(axis=1)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    name_arr = strings(names).take(numbers(np.tile(np.arange(k), n))).filter(keep)
    kept = vals.filter(keep)
    struct = pa.StructArray.from_arrays(
        [name_arr, constant(type_, len(kept)), kept], fields=list(ATTRIBUTE_TYPE)
    )
    return pa.ListArray.from_arrays(numbers(offsets), struct)


def folded_attribute_lists(
    folded: pa.ListArray, attribute_name: Callable[[str], str | None], type_: str
) -> pa.ListArray:
    """A reader's folded attribute keys (read/folded.py) → what `attribute_lists` makes of the same records
    read as one column per key: the key's prefix stripped, values trimmed, empty ones left out, and within a
    record the attributes ordered by name (code point order), then by key where keys give one name
    (`attr_x` before `attribute_x`, whatever their values: where Fluent keeps a name's last entry, it is
    always `attribute_x`'s). Ordered so, not by the record's key order or the chunk's column order: the same
    record in another file, next to other records or in another format, has the same attributes, so the
    delta does not see a change (and send it again) where there is none. An entry's type is `type_` unless
    the folded column has types (an attribute list's) and the entry one."""
    n = len(folded)
    entries = folded.flatten()
    if not len(entries):
        return _no_attributes(n)
    keys, texts, *typed = entries.flatten()
    types = typed[0] if typed else None  # the types an attribute list gave (read/attribute_list.py)
    encoded = pc.dictionary_encode(keys)  # ids in order of first occurrence
    ids = to_numbers(encoded.indices)
    offsets = to_numbers(folded.offsets)
    offsets = offsets - offsets[0]  # (a slice's offsets point into the whole array's entries)
    values = clean(texts)
    keys_text = encoded.dictionary.to_pylist()
    renamed = [attribute_name(k) for k in keys_text]
    by_name = sorted(range(len(renamed)), key=lambda i: (renamed[i] or "", keys_text[i]))
    position = np.empty(len(renamed), np.int64)
    position[by_name] = np.arange(len(renamed))
    ranks = position[ids]
    starts = np.zeros(len(ids), bool)
    starts[offsets[:-1][offsets[1:] > offsets[:-1]]] = True
    if (~starts[1:] & (ranks[1:] < ranks[:-1])).any():  # a record's attributes not in name order
        parents = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets))
        order = np.argsort(parents * len(position) + ranks, kind="stable")
        ids, values = ids[order], values.take(numbers(order))
        types = None if types is None else types.take(numbers(order))
    keep = to_bools(pc.is_valid(values))
    if None in renamed:  # (the readers fold only attribute keys)
        keep &= np.array([r is not None for r in renamed])[ids]
    if not keep.all():
        ids, values = ids[keep], values.filter(bools(keep))
        types = None if types is None else types.filter(bools(keep))
        kept = np.zeros(len(keep) + 1, np.int32)
        np.cumsum(keep, out=kept[1:])
        offsets = kept[offsets]
    names = strings([r or "" for r in renamed]).take(numbers(ids))
    given = constant(type_, len(values))
    if types is not None:
        given = pc.coalesce(types, given)
    struct = pa.StructArray.from_arrays([names, given, values], fields=list(ATTRIBUTE_TYPE))
    return pa.ListArray.from_arrays(numbers(offsets, pa.int32()), struct)


# ------------------------------------------------------------------ declarative helpers for Field(...)


def join(*names: str, sep: str = " ") -> Callable[[Columns], pa.Array]:
    """`compute=join("street", "street2", sep=", ")`: the non-empty columns joined."""

    def _join(cols: Columns) -> pa.Array:
        parts = [cols[n] for n in names]
        # pyarrow 26 leaves out a row whose parts are all null (its result is shorter than its input): such
        # rows get one empty part, so their join is empty (null once mapped)
        some = to_bools(pc.is_valid(parts[0]))
        for part in parts[1:]:
            some |= to_bools(pc.is_valid(part))
        if not some.all():
            parts[0] = pc.if_else(bools(some), parts[0], scalar("", STRING))
        return pc.binary_join_element_wise(*parts, scalar(sep, STRING), null_handling="skip")

    _join.columns = names  # type: ignore[attr-defined] - what it reads (source_keys.SourceKeys.for_feed)
    return _join


def value_map(mapping: dict[str, str]) -> Callable[[pa.Array], pa.Array]:
    """`transform=value_map({"Y": "true", "N": "false"})`: replace whole values (case-insensitive); others
    pass through unchanged (so the rules still see, and reject, unknown ones)."""
    keys = strings([k.upper() for k in mapping])
    targets = strings(list(mapping.values()))

    def _map(arr: pa.Array) -> pa.Array:
        idx = pc.index_in(pc.utf8_upper(arr), value_set=keys)
        return pc.coalesce(targets.take(idx), arr)

    return _map


def pandas_transform(fn: Callable[[pd.Series], pd.Series]) -> Callable[[pa.Array], pa.Array]:
    """A custom vectorised pandas function as a transform (the Series is Arrow-backed; no row loop)."""

    def _apply(arr: pa.Array) -> pa.Array:
        import pandas as pd

        result = fn(pd.Series(pd.arrays.ArrowExtensionArray(arr)))
        return pa.array(result.array).cast(STRING)

    return _apply
