"""Fluent's list-shaped inputs built from flat, validated columns: `prices` = `[{type, currency, value}]`.

Validation runs on flat columns (one pandera column per price value and currency, so ranges and codes are
ordinary checks); the accepted rows are then folded, one list entry per declared price type whose value
is present. Vectorised: the K value columns are interleaved row-major and filtered, offsets from counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fc_assets.ingestion.read.arrow_values import numbers, strings, to_bools
from fc_assets.ingestion.spec import PRICE_TYPE

if TYPE_CHECKING:
    from fc_assets.ingestion.feeds import PriceColumns


def fold_prices(batch: pa.RecordBatch, specs: tuple[PriceColumns, ...]) -> pa.ListArray:
    n, k = batch.num_rows, len(specs)
    order = numbers(np.arange(n * k).reshape(k, n).T.ravel())
    values = pa.concat_arrays([batch.column(s.value) for s in specs]).take(order)
    currencies = pa.concat_arrays([batch.column(s.currency) for s in specs]).take(order)
    types = strings([s.type for s in specs]).take(numbers(np.tile(np.arange(k), n)))
    keep = pc.is_valid(values)
    counts = to_bools(keep).reshape(n, k).sum(axis=1) if n else np.zeros(0, np.int64)
    offsets = numbers(np.concatenate([[0], np.cumsum(counts)]), pa.int32())
    struct = pa.StructArray.from_arrays(
        [types.filter(keep), currencies.filter(keep), values.filter(keep)], fields=list(PRICE_TYPE)
    )
    return pa.ListArray.from_arrays(offsets, struct)
