"""Vectorised operations on Arrow text columns that the mapping and conversion steps share.

Written for speed on 10M-row files (performance-notes §3.1): every function is a handful of Arrow compute
kernels, with two habits that matter here — comparison scalars are typed (`scalar(0, pa.int32())`; a
bare Python `0` made one `greater` call 500x slower in a measurement), and values are nulled by replacing
the validity bitmap (zero-copy) instead of `if_else`, which copies every string. Arrays and scalars are
made with arrow_values.py (no pandas import).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from fc_assets.ingestion.read.arrow_values import FALSE, bools, scalar, strings

STRING = pa.string()
ZERO32 = scalar(0, pa.int32())


def is_ascii(arr: pa.Array) -> bool:
    """Whether every byte of a string array's data is ASCII (one pass over the buffer)."""
    data = arr.buffers()[2]
    return data is None or data.size == 0 or bool(np.frombuffer(data, np.uint8).max() < 128)


def with_validity(arr: pa.Array, keep: pa.Array | np.ndarray) -> pa.Array:
    """`arr` with the slots where `keep` is false set to null (zero-copy for offset-0 arrays)."""
    keep = keep if isinstance(keep, pa.Array) else bools(keep)
    keep = pc.and_kleene(keep, pc.is_valid(arr)) if arr.null_count else keep
    keep = pc.fill_null(keep, FALSE) if keep.null_count else keep
    if keep.offset == 0 and arr.offset == 0 and not pa.types.is_nested(arr.type):
        return pa.Array.from_buffers(arr.type, len(arr), [keep.buffers()[1], *arr.buffers()[1:]])
    return pc.if_else(keep, arr, pa.nulls(1, arr.type)[0])


def _offsets(arr: pa.Array) -> np.ndarray:
    return np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + len(arr) + 1]


_ASCII_SPACE = np.zeros(256, bool)
# what utf8_trim_whitespace (and `str.strip`) trims of ASCII: ascii_trim_whitespace keeps U+001C..U+001F, so
# the ASCII text of a column was trimmed otherwise than the same text next to a non-ASCII value
_ASCII_WHITESPACE = " \t\n\v\f\r\x1c\x1d\x1e\x1f"
_ASCII_SPACE[[ord(c) for c in _ASCII_WHITESPACE]] = True
_MAYBE_SPACE = _ASCII_SPACE.copy()
_MAYBE_SPACE[128:] = True  # a byte of a multi-byte character (which may be Unicode whitespace)
_HIGHEST_SPACE = 32


def trim(arr: pa.Array) -> pa.Array:
    """Whitespace trimmed from both ends (Unicode whitespace, with an ASCII fast path). The array itself
    when no value starts or ends with a byte that may be whitespace: one look at each value's ends instead
    of a copy of every string (measured: the copies were a third of reading and mapping a clean CSV)."""
    ascii = is_ascii(arr)
    if pa.types.is_string(arr.type) and arr.offset == 0 and not _padded(arr, ascii):
        return arr
    return pc.ascii_trim(arr, characters=_ASCII_WHITESPACE) if ascii else pc.utf8_trim_whitespace(arr)


def _padded(arr: pa.Array, ascii: bool) -> bool:
    """Whether a value (null slots too) starts or ends with a byte that may be whitespace (ASCII `ascii`:
    one of `_ASCII_WHITESPACE`; else also any byte of a multi-byte character, which may be Unicode
    whitespace). Text without such a byte anywhere (codes, refs, numbers, dates) is told by one pass over
    its bytes; otherwise each value's first and last byte are looked at (0.1 instead of 0.4 ms for 65k
    values: no boolean indexing, an empty value's neighbours stand in for its ends)."""
    data = arr.buffers()[2]
    if data is None or data.size == 0:
        return False
    offsets = _offsets(arr)
    lo, hi = int(offsets[0]), int(offsets[-1])
    if hi <= lo:
        return False
    text = np.frombuffer(data, np.uint8, count=hi - lo, offset=lo)
    if ascii and text.min() > _HIGHEST_SPACE:
        return False
    # an empty value's first byte (clipped) is the next value's first or the last value's last byte,
    # its last byte the previous value's last or the first value's first: all looked at anyway
    first = text.take(offsets[:-1] - lo, mode="clip")
    last = text.take(offsets[1:] - (lo + 1), mode="clip")
    space = _ASCII_SPACE if ascii else _MAYBE_SPACE
    return bool(space[first].any() or space[last].any())


def upper(arr: pa.Array) -> pa.Array:
    return pc.ascii_upper(arr) if is_ascii(arr) else pc.utf8_upper(arr)


def null_empty(arr: pa.Array) -> pa.Array:
    """Empty strings become null (a missing value, whatever the format wrote)."""
    if arr.null_count == len(arr):
        return arr
    if pa.types.is_string(arr.type) and arr.null_count == 0:
        if not (np.diff(_offsets(arr)) == 0).any():
            return arr
    elif pc.min(pc.binary_length(arr)).as_py() != 0:
        return arr
    return with_validity(arr, pc.greater(pc.binary_length(arr), ZERO32))


def clean(arr: pa.Array) -> pa.Array:
    """Trimmed text, empty as null: what every mapped field holds."""
    if arr.null_count == len(arr):
        return arr
    return null_empty(trim(arr))


def constant(value: str | None, n: int) -> pa.Array:
    if value is None:
        return pa.nulls(n, STRING)
    return pc.fill_null(pa.nulls(n, STRING), scalar(value, STRING))


def as_text(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Any Arrow column as text, keeping what a person would read in the file.

    Integers as digits; decimals and floats without a zero fraction (`12.00` → `12`, so a whole quantity
    stored as decimal passes, while `3.50` stays `3.50` and is rejected); dates and timestamps in ISO form
    (tz-aware ones with `Z`); nested values as JSON text."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_string(t):
        return arr
    if pa.types.is_dictionary(t):
        return as_text(arr.dictionary_decode())
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return arr.cast(STRING)
    if pa.types.is_null(t):
        return pa.nulls(len(arr), STRING)
    if pa.types.is_boolean(t):
        return pc.if_else(arr, scalar("true", STRING), scalar("false", STRING))
    if pa.types.is_integer(t):
        return arr.cast(STRING)
    if pa.types.is_decimal(t) or pa.types.is_floating(t):
        return pc.replace_substring_regex(arr.cast(STRING), r"\.0+$", "")
    if pa.types.is_timestamp(t):
        arr = arr.cast(pa.timestamp(t.unit, "UTC")) if t.tz else arr
        text = pc.strftime(arr, format="%Y-%m-%dT%H:%M:%S")
        return pc.binary_join_element_wise(text, scalar("Z", STRING)) if t.tz else text
    if pa.types.is_date(t) or pa.types.is_time(t):
        return arr.cast(STRING)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return arr.cast(STRING)
    return strings([_json_text(v) for v in arr.to_pylist()])


def _json_text(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value, default=str).decode()
