"""Injected faults: the state behind `POST/GET/DELETE /_sandbox/faults` and the `--latency-ms`... flags.

Keys (a POST merges them into the current faults; `null` removes one):

| key | effect |
|---|---|
| `latency_ms: int` | added to every request except `/health` and `/_sandbox/*` |
| `rate_limit: {"count": N, "retry_after": s}` | the next N API requests answer 429 with `Retry-After: s` (`null`: no header) |
| `server_errors: {"count": N, "status": 503, "message"?: s}` | the next N API requests answer that status (any 4xx/5xx), body `{"message"}` |
| `drop_connections: N` | the next N API requests: the connection is closed with no response |
| `lose_responses: N` | the next N API requests are processed, then the connection is closed with no answer |
| `fail_mutations: {"<location ref>": n, ...}` | the next n create/updateLocation of that ref fail on their alias (code `S0001E`) |
| `expire_tokens: true` | every token issued so far expires now (an action, not kept) |
| `expire_tokens_after: N` | after N more API requests (token requests not counted), every token issued so far expires (once) |
| `graphql_errors: {"message": s, "code"?: c, "classification"?: k, "match"?: t, "count"?: N}` | `/graphql` requests whose raw body contains `t` (all when absent) answer HTTP 200 `{"data": null, "errors": [{"message": s, "extensions": {"code": c, "classification": k}}]}`; the next N of them, or every one without `count` |
| `stuck_cursor: true` | connections return the page ending at `after` again, `hasNextPage` true |
| `stuck_batches: true` | new batches stay RUNNING forever |
| `reject_entities: {"skuRefs": [...], "rate": 0.1}` | those batch entities (and that share, seeded) fail |
| `paths: [prefix, ...]` | counted faults (429, 5xx, drops) hit only paths with these prefixes |

`graphql_errors` is answered after the token check (a client sees it as Fluent's GraphQL error); it
ignores `paths`. Without `paths`, counted faults hit every API path except `/oauth/token` (and never `/health` or
`/_sandbox`). A request consumes one count of the first counted fault that applies, in the order
drop → lost answer → 429 → 5xx.
"""

from __future__ import annotations

import copy
from typing import Any

KNOWN = {
    "latency_ms",
    "rate_limit",
    "server_errors",
    "drop_connections",
    "lose_responses",
    "fail_mutations",
    "expire_tokens",
    "expire_tokens_after",
    "graphql_errors",
    "stuck_cursor",
    "stuck_batches",
    "reject_entities",
    "paths",
}
UNCOUNTED_BY_DEFAULT = ("/oauth/token",)


class FaultError(ValueError):
    """A faults document the sandbox does not understand (answered with 400)."""


class Faults:
    def __init__(self) -> None:
        self.state: dict[str, Any] = {}

    def merge(self, patch: dict[str, Any]) -> None:
        if not isinstance(patch, dict):
            raise FaultError("faults must be a JSON object")
        unknown = set(patch) - KNOWN
        if unknown:
            raise FaultError(f"unknown fault(s): {sorted(unknown)}; known: {sorted(KNOWN)}")
        for key, value in patch.items():
            if key == "expire_tokens":
                continue  # an action: the caller performs it
            if value is None or value is False:
                self.state.pop(key, None)
                continue
            if key == "rate_limit":
                value = {"count": int(value.get("count", 1)), "retry_after": value.get("retry_after", 1)}
            elif key == "server_errors":
                value = {
                    "count": int(value.get("count", 1)),
                    "status": int(value.get("status", 503)),
                    **({"message": str(value["message"])} if value.get("message") else {}),
                }
            elif key == "graphql_errors":
                if not value.get("message"):
                    raise FaultError("graphql_errors needs a 'message'")
                value = {
                    k: v if k == "count" else str(v)
                    for k, v in value.items()
                    if k in ("message", "code", "classification", "match", "count") and v is not None
                }
                if "count" in value:
                    value["count"] = int(value["count"])
            elif key == "fail_mutations":
                value = {str(ref): int(n) for ref, n in value.items()}
            elif key in ("latency_ms", "drop_connections", "lose_responses", "expire_tokens_after"):
                value = int(value)
            elif key == "paths":
                value = [str(p) for p in value]
            elif key == "reject_entities":
                value = {"skuRefs": list(value.get("skuRefs") or []), "rate": float(value.get("rate") or 0)}
            self.state[key] = value

    def clear(self) -> None:
        self.state = {}

    def snapshot(self) -> dict[str, Any]:
        return copy.deepcopy(self.state)

    @property
    def latency_s(self) -> float:
        return self.state.get("latency_ms", 0) / 1000

    def flag(self, name: str) -> bool:
        return bool(self.state.get(name))

    def _counted_applies(self, path: str) -> bool:
        prefixes = self.state.get("paths")
        if prefixes:
            return any(path.startswith(p) for p in prefixes)
        return not path.startswith(UNCOUNTED_BY_DEFAULT)

    def tokens_due(self, path: str) -> bool:
        """Count one API request against `expire_tokens_after`; True (once) when the tokens must expire now."""
        left = self.state.get("expire_tokens_after")
        if left is None or path.startswith(UNCOUNTED_BY_DEFAULT):
            return False
        if left <= 1:
            del self.state["expire_tokens_after"]
            return True
        self.state["expire_tokens_after"] = left - 1
        return False

    def graphql_error(self, raw_body: bytes) -> dict[str, Any] | None:
        """The GraphQL error to answer for this `/graphql` body (one count consumed), or None."""
        fault = self.state.get("graphql_errors")
        if not fault or fault.get("count", 1) <= 0:
            return None
        if fault.get("match") and fault["match"].encode() not in raw_body:
            return None
        if "count" in fault:
            fault["count"] -= 1
        ext = {k: fault[k] for k in ("code", "classification") if k in fault}
        return {"message": fault["message"], **({"extensions": ext} if ext else {})}

    def take(self, path: str) -> tuple[str, Any] | None:
        """Consume one count of the counted fault that hits this request: ("drop", None), ("lose", None),
        ("429", retry after) or ("5xx", (status, message)); None when no counted fault applies."""
        if not self._counted_applies(path):
            return None
        if self.state.get("drop_connections", 0) > 0:
            self.state["drop_connections"] -= 1
            return "drop", None
        if self.state.get("lose_responses", 0) > 0:
            self.state["lose_responses"] -= 1
            return "lose", None
        rate = self.state.get("rate_limit")
        if rate and rate["count"] > 0:
            rate["count"] -= 1
            return "429", rate["retry_after"]
        errors = self.state.get("server_errors")
        if errors and errors["count"] > 0:
            errors["count"] -= 1
            return "5xx", (errors["status"], errors.get("message"))
        return None

    def mutation_error(self, ref: str | None) -> str | None:
        """The `fail_mutations` fault for a mutation of this location ref (consumes one of its failures)."""
        left = self.state.get("fail_mutations") or {}
        if ref is None or left.get(ref, 0) <= 0:
            return None
        left[ref] -= 1
        return f"mutation of location {ref!r} failed (sandbox fail_mutations fault)"
