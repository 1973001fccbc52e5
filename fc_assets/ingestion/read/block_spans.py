"""Spans of records in tokenised blocks, as the fast readers (xml_fast, jsonl_fast) hand them out in chunks."""

from __future__ import annotations

from typing import TypeVar

B = TypeVar("B")


def take_spans(
    pending: list[tuple[B, int, int]], rows: int
) -> tuple[list[tuple[B, int, int]], list[tuple[B, int, int]]]:
    """The spans of the next `rows` records of `pending` (in file order), and the spans left after them."""
    parts: list[tuple[B, int, int]] = []
    left = rows
    while left:
        block, lo, hi = pending[0]
        k = min(left, hi - lo)
        parts.append((block, lo, lo + k))
        left -= k
        pending = pending[1:] if lo + k == hi else [(block, lo + k, hi), *pending[1:]]
    return parts, pending
