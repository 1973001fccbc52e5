"""arrow_values.py builds and reads Arrow arrays from numpy buffers so the CSV path never trips pyarrow's
pandas import: its arrays must equal what `pa.array` / `to_numpy` give, on sliced arrays and with nulls
(that `check-file` of a CSV imports no pandas is in test_startup_imports.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from fc_assets.ingestion.read.arrow_values import (
    as_batch,
    bools,
    numbers,
    scalar,
    strings,
    to_bools,
    to_numbers,
)
from fc_assets.ingestion.read.text_arrays import trim


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1000])
def test_arrays_from_numpy_equal_pyarrows(n):
    rng = np.random.default_rng(n)
    mask = rng.random(n) < 0.4
    ints = rng.integers(-(2**40), 2**40, n)
    assert bools(mask).equals(pa.array(mask, pa.bool_()))
    assert numbers(ints).equals(pa.array(ints, pa.int64()))
    assert numbers(ints.astype(np.int32), pa.int32()).equals(pa.array(ints.astype(np.int32), pa.int32()))
    assert numbers(ints / 7, pa.float64()).equals(pa.array(ints / 7, pa.float64()))
    words = [None if m else f"w{i}é" * (i % 3) for i, m in enumerate(mask)]
    assert strings(words).equals(pa.array(words, pa.string()))
    assert strings(words, pa.large_string()).equals(pa.array(words, pa.large_string()))


@pytest.mark.parametrize(("start", "length"), [(0, 20), (3, 11), (9, 0), (5, 15)])
def test_arrays_to_numpy_equal_pyarrows_on_slices_with_nulls(start, length):
    flags = pa.array([True, None, False, True, True, None, False, False, True, None] * 2, pa.bool_())
    ints = pa.array([1, None, 3, 4, 5, None, 7, 8, 9, None] * 2, pa.int32())
    floats = pa.array([0.5, None, 1.5, 2.0, 3.0, None, 4.0, 5.0, 6.0, None] * 2, pa.float64())
    f, i, x = (a.slice(start, length) for a in (flags, ints, floats))
    assert to_bools(f).tolist() == [bool(v) for v in f.to_pylist()]
    assert to_bools(pc.fill_null(f, False)).tolist() == [bool(v) for v in f.to_pylist()]
    assert to_numbers(i).tolist() == [v or 0 for v in i.to_pylist()]
    assert to_numbers(x, fill=-1.0).tolist() == [-1.0 if v is None else v for v in x.to_pylist()]
    assert to_numbers(pa.chunked_array([i, i])).tolist() == [v or 0 for v in i.to_pylist()] * 2
    assert to_bools(pa.nulls(3, pa.bool_())).tolist() == [False] * 3


@pytest.mark.parametrize(
    ("value", "typ"),
    [
        (True, pa.bool_()),
        (0, pa.int32()),
        (-5, pa.int64()),
        (2.5, pa.float64()),
        ("Zé", pa.string()),
        (None, pa.int64()),
    ],
)
def test_scalars_equal_pyarrows(value, typ):
    assert scalar(value, typ).equals(pa.scalar(value, typ))


@pytest.mark.parametrize(
    "values",
    [
        ["a", "b ", " c"],
        ["a", "b", "c"],
        ["é", "x\u00a0", "y"],
        ["é", "x", "y"],
        ["a", None, ""],
        ["\u3000z", "x"],
        ["\tq", "r\n"],
        [],
        ["", "", " "],
    ],
)
def test_trim_returns_the_array_itself_when_nothing_is_trimmed(values):
    arr = pa.array(values, pa.string())
    out = trim(arr)
    assert out.equals(pc.utf8_trim_whitespace(arr))
    if out is arr:  # never when something is trimmed
        assert pc.utf8_trim_whitespace(arr).to_pylist() == values
    if all(v is None or v.isascii() for v in values) and out.to_pylist() == values:
        assert out is arr  # (ASCII text with nothing to trim: not copied)
    assert trim(arr.slice(1)).equals(pc.utf8_trim_whitespace(arr.slice(1)))


_PIECES = ["a", "Z9", "-", " ", "\t", "\n", "\x0b", "\x1f", "\x00", "é", "\u00a0", "\u3000", "\u2003", "€"]


def _random_text(rng: np.random.Generator, n: int, pieces: list[str]) -> list[str | None]:
    return [
        None if rng.random() < 0.1 else "".join(rng.choice(pieces, rng.integers(0, 4)).tolist())
        for _ in range(n)
    ]


def _trimmed(arr: pa.Array) -> pa.Array:
    """What `trim` gives without its shortcut: Arrow's UTF-8 trim, ASCII text or not (its ASCII trim keeps
    `\\x1f`, which made a value's trim depend on whether another value of its column was ASCII)."""
    return pc.utf8_trim_whitespace(arr)


@pytest.mark.parametrize("seed", range(40))
def test_trim_equals_arrows_trim_on_random_text(seed):
    """`trim`'s shortcut (one pass over the bytes, then each value's first and last byte, an empty value's
    neighbours standing in for its ends) against Arrow's trim: on ASCII-only and Unicode text, with empty
    values at either end, null slots holding text and arrays whose first offset is not 0."""
    rng = np.random.default_rng(seed)
    pieces = _PIECES[: rng.integers(2, len(_PIECES) + 1)]  # (the first: no byte that may be whitespace)
    values = _random_text(rng, int(rng.integers(0, 40)), pieces)
    arr = pa.array(values, pa.string())
    expected = _trimmed(arr)
    out = trim(arr)
    assert out.equals(expected)
    if out is arr:
        assert expected.to_pylist() == values
    if len(arr) > 2:  # the same text behind a first offset that is not 0, and null slots over text
        offsets = np.frombuffer(arr.buffers()[1], np.int32)[: len(arr) + 1]
        shifted = pa.Array.from_buffers(
            pa.string(), len(arr) - 1, [None, pa.py_buffer(offsets[1:].copy()), arr.buffers()[2]]
        )
        assert shifted.offset == 0
        assert trim(shifted).equals(_trimmed(shifted))
        validity = bools(np.arange(len(shifted)) % 3 != 1)
        masked = pa.Array.from_buffers(
            pa.string(), len(shifted), [validity.buffers()[1], *shifted.buffers()[1:]]
        )
        assert trim(masked).equals(_trimmed(masked))


@pytest.mark.parametrize("parts", [0, 1, 2])
def test_as_batch_of_a_chunk_without_rows_keeps_its_schema(parts):
    """`readers._coalesce` hands on a table of the batches left at the end of a CSV; when those hold no rows
    (Arrow yields empty batches), `Table.to_batches()` is empty: the chunk must still be one batch."""
    schema = pa.schema([("sku", pa.string()), ("_row", pa.int64())])
    empty = pa.RecordBatch.from_pylist([], schema=schema)
    chunk = pa.Table.from_batches([empty] * parts, schema=schema)
    batch = as_batch(chunk)
    assert isinstance(batch, pa.RecordBatch) and batch.num_rows == 0 and batch.schema == schema


@pytest.mark.parametrize(
    "values",
    [["\x1fa", "a\u00e9a"], ["\x1ca", "\u00e9", "b"], ["x", "a\u3000b\x1e"], ["\x1da\u00e9"]],
)
def test_trim_of_unicode_text_trims_information_separators_as_arrow_does(values):
    """U+001C..U+001F are whitespace to Arrow's UTF-8 trim (and Python's `str.strip`), not to its ASCII trim:
    in text with a non-ASCII byte only inside values, the shortcut must still see them at a value's ends
    (it left `\\x1fa` untrimmed next to `aéa`, trimmed next to ` é`)."""
    arr = pa.array(values, pa.string())
    assert trim(arr).to_pylist() == pc.utf8_trim_whitespace(arr).to_pylist()
