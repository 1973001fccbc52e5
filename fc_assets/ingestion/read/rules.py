"""A field's rules, declared once (`Field` in mapping.py) and run two ways from the same object:

- as Arrow compute masks over a whole chunk (`ColumnRule.failing`) — a few vectorised kernels per rule,
  which find the rejected cells of a chunk;
- as the checks of the feed's pandera `DataFrameSchema` (`ColumnRule.check`, built on first use), the
  same rules in pandera's terms: the schema a feed's rows are documented and tested against, and what
  validates a chunk when one of the feed's row rules has no Arrow form (validate.py).

Why both: pandera's own check calls are fast, but building its failure report for a chunk with a few
bad values costs ~10x a passing validation (measured: a 10M-row file with 0.5 % garbage spent 2 s in
pandera's error path alone), while the Arrow masks cost the same whatever they find; and importing
pandas + pandera costs ~0.6 s, most of `fc-assets check-file` on a small file. The two run the same
declarations with the same reasons, and tests hold them to the same verdicts (test_rules_agree.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from fc_assets.ingestion.read.arrow_values import scalar, strings
from fc_assets.ingestion.spec import Field

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pdv

MISSING = "required value is missing"
MINUTES = "minutes must be 00..59"


@dataclass(frozen=True)
class ColumnRule:
    field: str
    reason: str
    failing: Callable[[pa.Array], pa.Array]  # True where the rule fails; null values never fail
    # the same rule as a pandera check, built when asked for (None: nullability, a Column flag)
    pandera: Callable[[], pdv.Check] | None

    @property
    def check(self) -> pdv.Check | None:
        """The rule in the pandera schema (imports pandera)."""
        return self.pandera() if self.pandera is not None else None


def _check(name: str, *args, **kwargs) -> Callable[[], pdv.Check]:
    """A pandera `Check` (or its constructor `name`) with these arguments, made when called."""

    def make() -> pdv.Check:
        import pandera.pandas as pdv

        return (pdv.Check if name == "Check" else getattr(pdv.Check, name))(*args, **kwargs)

    return make


def _number(value: float, typ: pa.DataType) -> pa.Scalar:
    return scalar(int(value) if pa.types.is_integer(typ) else float(value), typ)


def range_error(lo: float | None, hi: float | None) -> str:
    def fmt(v: float | None) -> str:
        return f"{v:g}" if isinstance(v, float) else str(v)

    if lo is not None and hi is not None:
        return f"must be between {fmt(lo)} and {fmt(hi)}"
    return f"must be at least {fmt(lo)}" if lo is not None else f"must be at most {fmt(hi)}"


def _minutes_ok(s: pd.Series) -> pd.Series:
    return (s - (s // 100) * 100) < 60


def allowed_values(f: Field) -> tuple[str, ...]:
    return tuple(f.values() if callable(f.values) else f.values)


def column_rules(f: Field) -> list[ColumnRule]:
    """The rules of one field, in the order their reasons are reported."""
    rules: list[ColumnRule] = []
    if f.required:
        rules.append(ColumnRule(f.name, MISSING, pc.is_null, None))
    if f.kind in ("int", "decimal", "time") and (f.min is not None or f.max is not None):
        lo, hi, reason = f.min, f.max, range_error(f.min, f.max)

        def out_of_range(v: pa.Array, lo: float | None = lo, hi: float | None = hi) -> pa.Array:
            below = pc.less(v, _number(lo, v.type)) if lo is not None else None
            above = pc.greater(v, _number(hi, v.type)) if hi is not None else None
            if below is None or above is None:  # (not `below or above`: an empty array is falsy)
                return below if above is None else above
            return pc.or_kleene(below, above)

        if lo is not None and hi is not None:
            check = _check("in_range", lo, hi, error=reason)
        else:
            check = _check("ge", lo, error=reason) if lo is not None else _check("le", hi, error=reason)
        rules.append(ColumnRule(f.name, reason, out_of_range, check))
    if f.kind == "time":

        def bad_minutes(v: pa.Array) -> pa.Array:
            hundred = scalar(100, v.type)
            minutes = pc.subtract(v, pc.multiply(pc.divide(v, hundred), hundred))
            return pc.greater_equal(minutes, scalar(60, v.type))

        rules.append(ColumnRule(f.name, MINUTES, bad_minutes, _check("Check", _minutes_ok, error=MINUTES)))
    if f.values:
        values = allowed_values(f)
        reason = f.values_error or f"must be one of {', '.join(values)}"
        value_set = strings(values)

        def not_allowed(v: pa.Array, value_set: pa.Array = value_set) -> pa.Array:
            return pc.and_(pc.is_valid(v), pc.invert(pc.is_in(v, value_set=value_set)))

        rules.append(ColumnRule(f.name, reason, not_allowed, _check("isin", list(values), error=reason)))
    if f.pattern:
        full, reason = f"^(?:{f.pattern})$", f"must match {f.pattern}"

        def mismatch(v: pa.Array, full: str = full) -> pa.Array:
            return pc.invert(pc.match_substring_regex(v, full))

        rules.append(ColumnRule(f.name, reason, mismatch, _check("str_matches", full, error=reason)))
    if f.max_length:
        limit, reason = f.max_length, f"longer than {f.max_length} characters"

        def too_long(v: pa.Array, limit: int = limit) -> pa.Array:
            if (pc.max(pc.binary_length(v)).as_py() or 0) <= limit:  # bytes >= characters: none too long
                return pa.nulls(len(v), pa.bool_())
            return pc.greater(pc.utf8_length(v), scalar(limit, pa.int32()))

        rules.append(
            ColumnRule(f.name, reason, too_long, _check("str_length", max_value=limit, error=reason))
        )
    return rules
