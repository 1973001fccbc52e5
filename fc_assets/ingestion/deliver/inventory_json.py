"""A delta chunk's Batch API inventory entities as JSON bytes, built by Arrow column by column.

Why: building a dict per entity and serialising it took most of the inventory sender's CPU (at 1M rows
about 1.8 s of dicts, validation and `orjson.dumps` against the 0.8 s the bare client spends posting), and
with the GIL that CPU sat between two POSTs. Here each column becomes its JSON text with Arrow compute and
the entities are concatenated as strings, so the prefetch thread hands the main thread bytes to post.

The bytes are exactly `orjson.dumps(senders.inventory_entities(table, rid))` (the differential test in
fc_assets_tests/ingestion_flow/test_inventory_json.py checks it on hostile values): text values that need
JSON escaping (quotes, backslashes, control characters; rare) are escaped by orjson itself, one value at a
time, and every other value is copied as is (orjson writes UTF-8 unescaped). A chunk whose columns have
types this does not handle (qty not an integer, refs not text, dates other than UTC microseconds, a
missing qty on an upsert, text that is not valid UTF-8) is serialised from `inventory_entities`, which
keeps today's results and errors for it.
"""

from __future__ import annotations

import functools
import struct
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import pyarrow as pa

NEEDS_ESCAPE = r'[\x00-\x1f"\\]'  # what JSON (and orjson) escapes in a string; everything else is copied


def _text(t: pa.DataType) -> bool:
    import pyarrow as pa

    return pa.types.is_string(t) or pa.types.is_large_string(t)


def arrow_entities_json(table: pa.Table, retailer_id: str) -> bytes | None:
    """`entities_json` by Arrow compute, or None when a column is of a kind it leaves to Python."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = table.num_rows
    if n == 0:
        return b"[]"
    cols = {name: table.column(name).combine_chunks() for name in table.column_names}
    if not all(name in cols for name in ("sku_ref", "location_ref", "qty")):
        return None
    for name, col in cols.items():
        if _text(col.type):
            try:
                col.validate(full=True)  # valid UTF-8, as Python's str needed it
            except pa.ArrowInvalid:
                return None
            cols[name] = col.cast(pa.string())
        elif name in ("sku_ref", "location_ref") or (
            name in ("status", "condition", "_op") and col.null_count < n
        ):
            return None  # refs, status, condition and _op other than text (or all null): left to Python

    qty = cols["qty"]
    if not pa.types.is_integer(qty.type):
        return None
    op = cols.get("_op")
    delete = _known(pc.equal(op, _lit("delete"))) if op is not None and op.null_count < n else None
    if delete is not None:
        if pc.any(pc.and_(pc.is_null(qty), pc.invert(delete))).as_py():
            return None  # an upsert without qty: `inventory_entities` raises as it always did
        qty_text = pc.if_else(delete, _lit("0"), pc.cast(qty, pa.string()))
    else:
        if qty.null_count:
            return None
        qty_text = pc.cast(qty, pa.string())

    eta_text: Any = None
    if "expected_on" in cols and cols["expected_on"].null_count < n:
        eta = cols["expected_on"]
        if _text(eta.type):
            eta_text = _quoted(eta)
        else:
            iso = iso_array(eta)
            if iso is None:
                return None
            eta_text = _concat('"', iso, '"')

    status = cols.get("status")
    if status is None or status.null_count == n:
        status_part: list[Any] = ['"AVAILABLE"']
    elif status.null_count == 0 and not pc.any(pc.equal(status, _lit(""))).as_py():
        status_part = _text_part(status)
    else:
        given = _known(pc.not_equal(status, _lit("")))
        status_part = [pc.if_else(given, _quoted(status), _lit('"AVAILABLE"'))]

    attributes: list[Any] = []
    condition = cols.get("condition")
    has_condition = condition is not None and condition.null_count < n
    if eta_text is not None or has_condition:
        fields = []
        if eta_text is not None:
            fields.append(_concat('"expectedOn":', eta_text))
        if has_condition:
            given = _known(pc.not_equal(condition, _lit("")))
            named = _concat('"condition":', _quoted(condition))
            fields.append(pc.if_else(given, named, pa.nulls(1, pa.string())[0]))
        # the fields present, comma-separated (not `null_handling="skip"`: pyarrow 26 drops rows with it)
        both = [pc.binary_join_element_wise(*fields, _lit(","))] if len(fields) == 2 else []
        inner = pc.coalesce(*both, *fields, _lit(""))
        wrapped = _concat(',"attributes":{', inner, "}")
        attributes = [pc.if_else(pc.equal(inner, _lit("")), _lit(""), wrapped)]

    rid_json = orjson.dumps(str(retailer_id)).decode()
    entity = _concat(
        '{"skuRef":',
        *_text_part(cols["sku_ref"]),
        ',"locationRef":',
        *_text_part(cols["location_ref"]),
        ',"qty":',
        qty_text,
        ',"type":"LAST_ON_HAND","status":',
        *status_part,
        f',"retailerId":{rid_json}',
        *attributes,
        "}",
    )
    offsets = pa.Int32Array.from_buffers(pa.int32(), 2, [None, pa.py_buffer(struct.pack("=2i", 0, n))])
    joined = pc.binary_join(pa.ListArray.from_arrays(offsets, entity), _lit(","))
    return b"[" + joined[0].as_buffer().to_pybytes() + b"]"


@functools.cache
def _lit(text: str) -> pa.StringScalar:
    """A text scalar for compute calls, made from buffers: `pa.scalar` (which compute applies to a Python
    str) imports pandas, a third of a second of CPU in a sending process that otherwise never needs it."""
    import pyarrow as pa

    data = text.encode()
    offsets = pa.py_buffer(struct.pack("=2i", 0, len(data)))
    return pa.StringArray.from_buffers(1, offsets, pa.py_buffer(data))[0]


def _known(mask: pa.Array) -> pa.Array:
    """A boolean mask with null read as false (fill_null with a scalar made without `pa.scalar`)."""
    import pyarrow.compute as pc

    return pc.fill_null(mask, pc.is_null(_lit("")))


def _concat(*parts: Any) -> pa.Array:
    """Element-wise concatenation of text arrays and literals (adjacent literals merged: fewer arguments)."""
    import pyarrow.compute as pc

    merged: list[Any] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return pc.binary_join_element_wise(*(_lit(p) if isinstance(p, str) else p for p in merged), _lit(""))


def iso_array(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray | None:
    """`datetime.isoformat()` of UTC microsecond timestamps (the canonical `expected_on`), by Arrow; None for
    other types. Building a tz-aware datetime per row cost more than the rest of the entity."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = column.type
    if not (pa.types.is_timestamp(t) and t.unit == "us" and t.tz in ("UTC", "+00:00")):
        return None
    text = column.cast(pa.string())  # 2025-03-01 12:30:00.000000Z ("+0000" instead of Z for tz +00:00)
    return pc.replace_substring_regex(text, r"^(\S+) (\S+?)(\.000000)?(?:Z|\+0000)$", r"\1T\2+00:00")


def _escaped(column: pa.Array) -> pa.Array:
    """Each text value escaped as orjson escapes it inside a JSON string (null stays null): values holding a
    character JSON escapes (found by one scan of the value bytes; rare) are escaped by orjson itself."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    offsets, data = column.buffers()[1:3]
    if data is None:
        return column
    ends = np.frombuffer(offsets, np.int32, len(column) + 1, column.offset * 4)
    raw = np.frombuffer(data, np.uint8)[ends[0] : ends[-1]]
    if not ((raw < 0x20) | (raw == 0x22) | (raw == 0x5C)).any():
        return column
    needs = _known(pc.match_substring_regex(column, NEEDS_ESCAPE))
    escaped = pa.array(
        [orjson.dumps(v).decode()[1:-1] for v in column.filter(needs).to_pylist()], column.type
    )
    return pc.replace_with_mask(column, needs, escaped)


def _quoted(column: pa.Array) -> pa.Array:
    """Each text value as a JSON string literal; null stays null."""

    return _concat('"', _escaped(column), '"')


def _text_part(column: pa.Array) -> list[Any]:
    """A text column as `_concat` parts of JSON: quotes as literals when no value is null, else null → null."""
    import pyarrow.compute as pc

    if column.null_count == 0:
        return ['"', _escaped(column), '"']
    return [pc.fill_null(_quoted(column), _lit("null"))]
