"""What the sandbox received, for exactly-once tests (`GET /_sandbox/received`).

Shape: `{"jobs": [job], "batches": [{"id", "jobId", "entities", "status"}], "entity_count": n,
"events": [event], "mutations": [{"name", "alias", "input", "ok"}], "requests": {"<METHOD> <path>": n}}`.
Requests count every call except `/health` and `/_sandbox/*`, including the ones a fault answered.
Batch entries are live: their `status` follows the batch. With `--bulk-intake` a batch entry has `count`
instead of `entities`, and `bulk_inventory` sums up what the batches held (bulk.py); otherwise it is null.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from fc_assets.sandbox.bulk import BulkInventory


class Received:
    def __init__(self, bulk: bool = False) -> None:
        self.bulk = BulkInventory() if bulk else None
        self.jobs: list[dict[str, Any]] = []
        self.batches: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.mutations: list[dict[str, Any]] = []
        self.requests: Counter[str] = Counter()

    def mutation(self, name: str, alias: str, input: Any, ok: bool) -> None:
        self.mutations.append({"name": name, "alias": alias, "input": input, "ok": ok})

    def snapshot(self) -> dict[str, Any]:
        return {
            "jobs": list(self.jobs),
            "batches": [
                {k: b[k] for k in ("id", "jobId", "entities" if self.bulk is None else "count", "status")}
                for b in self.batches
            ],
            "entity_count": sum(b["count"] for b in self.batches),
            "bulk_inventory": None if self.bulk is None else self.bulk.summary(),
            "events": list(self.events),
            "mutations": list(self.mutations),
            "requests": dict(self.requests),
        }
