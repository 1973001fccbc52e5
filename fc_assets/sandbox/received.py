"""What the sandbox received, for exactly-once tests (`GET /_sandbox/received`).

Shape: `{"jobs": [job], "batches": [{"id", "jobId", "entities", "status"}], "entity_count": n,
"events": [event], "mutations": [{"name", "alias", "input", "ok"}], "requests": {"<METHOD> <path>": n}}`.
Requests count every call except `/health` and `/_sandbox/*`, including the ones a fault answered.
Batch entries are live: their `status` follows the batch.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


class Received:
    def __init__(self) -> None:
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
            "batches": [{k: b[k] for k in ("id", "jobId", "entities", "status")} for b in self.batches],
            "entity_count": sum(len(b["entities"]) for b in self.batches),
            "events": list(self.events),
            "mutations": list(self.mutations),
            "requests": dict(self.requests),
        }
