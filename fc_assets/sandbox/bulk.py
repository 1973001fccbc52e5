"""Bulk intake (`--bulk-intake`): Batch API inventory kept as numbers, for first loads of millions of rows.

Why: by default every batch entity is upserted into the store as position and quantity dicts and kept in
`received.batches` — about 3 KB an entity, so 1M rows hold ~3 GB and 10M would need ~30 GB (and the store
holds at most 4,194,303 positions). In bulk mode a valid entity is validated exactly as before and then
becomes two 64-bit numbers: the hash of its quantity key `(skuRef, locationRef, type)` and its qty, in
numpy arrays (16 bytes an entity); the batch keeps only its count. What this proves over HTTP
(`GET /_sandbox/received` → `bulk_inventory`):

- `entities`: valid entities received (a batch sent twice counts twice), `qty_sum`: the sum of their qty;
- `digest`: the sum mod 2**64 of `entity_digest(skuRef, locationRef, type, qty)` over them, independent of
  order, so a sender can compare it with the same sum over its delta (a changed, lost or doubled row shows);
- `positions`: distinct quantity keys, and `on_hand_sum`: the sum of each key's latest qty (upsert semantics).

What it does not do: bulk-loaded inventory is not written to the store, so GraphQL does not see it.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

import numpy as np

MASK = (1 << 64) - 1


def _h64(text: str) -> int:
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "little")


def entity_digest(sku: str, loc: str, qtype: str, qty: int) -> int:
    """One entity's share of `digest`: a 64-bit hash of its key and qty."""
    return _h64(f"{sku}\x1f{loc}\x1f{qtype}\x1f{qty}")


def key_hash(sku: str, loc: str, qtype: str) -> int:
    return _h64(f"{sku}\x1f{loc}\x1f{qtype}")


class BulkInventory:
    """The valid entities of every bulk batch: key hashes and qtys (numpy chunks, one per batch)."""

    def __init__(self) -> None:
        self.keys: list[np.ndarray] = []
        self.qtys: list[np.ndarray] = []
        self.entities = 0
        self.qty_sum = 0
        self.digest = 0

    def add(self, entities: list[dict[str, Any]]) -> None:
        """Validated entities (`qty` already an int) of one batch."""
        keys, qtys, digest = [], [], 0
        for e in entities:
            sku, loc, qtype, qty = e["skuRef"], e["locationRef"], e.get("type") or "LAST_ON_HAND", e["qty"]
            keys.append(key_hash(sku, loc, qtype))
            qtys.append(qty)
            digest += entity_digest(sku, loc, qtype, qty)
        self.keys.append(np.array(keys, dtype=np.uint64))
        self.qtys.append(np.array(qtys, dtype=np.int64))
        self.entities += len(entities)
        self.qty_sum += sum(qtys)
        self.digest = (self.digest + digest) & MASK

    def summary(self) -> dict[str, Any]:
        keys = np.concatenate(self.keys) if self.keys else np.zeros(0, np.uint64)
        qtys = np.concatenate(self.qtys) if self.qtys else np.zeros(0, np.int64)
        # each key's latest qty: the first occurrence in the reversed arrays
        _, first = np.unique(keys[::-1], return_index=True)
        return {
            "entities": self.entities,
            "qty_sum": self.qty_sum,
            "digest": str(self.digest),  # a decimal string: JSON readers may not keep 64-bit integers
            "positions": len(first),
            "on_hand_sum": int(qtys[::-1][first].sum()),
        }
