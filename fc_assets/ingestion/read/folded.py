"""A chunk's attribute keys folded into one column: per record the list of its `{name, value}` entries (the
key as in the file, its text), in the record's order, null values included (the mapper drops them as it
drops empty attribute columns). A chunk with an element of Fluent's attribute list that gave a type
(read/attribute_list.py) has a third field, `type` (null: the feed's); other chunks do not carry it.

Why: JSON, JSONL and XML readers made a column per distinct key of a chunk, and a catalogue's attribute
keys (`attr_<name>`, a few per record out of thousands) are all keys the products feed reads; a column each
is keys x records cells (source_keys.py). Folded, a chunk holds one entry per value present. The mapper
(`mapping.folded_attribute_lists`) makes of it exactly what the per-column path makes of the same records.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from fc_assets.ingestion.read.arrow_values import numbers
from fc_assets.ingestion.read.text_arrays import STRING

ENTRY = pa.struct([("name", STRING), ("value", STRING)])
FOLDED_TYPE = pa.list_(ENTRY)
# a chunk with records whose attributes came from Fluent's attribute list (read/attribute_list.py): each
# entry's type as the list gave it (null: the feed's); only such chunks carry the field
TYPED_ENTRY = pa.struct([("name", STRING), ("value", STRING), ("type", STRING)])


def folded(counts: np.ndarray, names: pa.Array, values: pa.Array) -> pa.ListArray:
    """Record i's entries: the next `counts[i]` of `names` and `values` (in record order)."""
    offsets = np.zeros(len(counts) + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    entries = pa.StructArray.from_arrays([names, values], fields=list(ENTRY))
    return pa.ListArray.from_arrays(numbers(offsets), entries)


def from_records(
    counts: list[int], names: list[str], values: list[str | None], types: list[str | None] | None = None
) -> pa.ListArray:
    """`folded` from Python lists (the line-by-line readers' `BatchBuilder`); with `types`, typed entries."""
    if types is None:
        return folded(np.array(counts, np.int64), pa.array(names, STRING), pa.array(values, STRING))
    offsets = np.zeros(len(counts) + 1, np.int32)
    np.cumsum(np.array(counts, np.int64), out=offsets[1:])
    arrays = [pa.array(names, STRING), pa.array(values, STRING), pa.array(types, STRING)]
    entries = pa.StructArray.from_arrays(arrays, fields=list(TYPED_ENTRY))
    return pa.ListArray.from_arrays(numbers(offsets), entries)


def empty(n: int) -> pa.ListArray:
    """n records without attribute keys."""
    return folded(np.zeros(n, np.int64), pa.nulls(0, STRING), pa.nulls(0, STRING))


def repeated(names: list[str], times: int) -> pa.Array:
    """`names`, `times` over (the keys of records that all have the same ones): bytes repeated, not taken."""
    encoded = [n.encode() for n in names]
    lengths = np.array([len(e) for e in encoded], np.int32)
    offsets = np.zeros(len(names) * times + 1, np.int32)
    np.cumsum(np.tile(lengths, times), out=offsets[1:])
    data = b"".join(encoded) * times
    return pa.Array.from_buffers(
        STRING, len(names) * times, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def joined(parts: list[pa.ListArray]) -> pa.ListArray:
    return parts[0] if len(parts) == 1 else pa.concat_arrays(parts)
