"""Everything the sandbox is started with (CLI flags), in one frozen value so `/_sandbox/reset` can reseed
the store exactly as it was at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fc_assets.sandbox.datetimes import DAY_MS, ms_of


def today_midnight_ms() -> int:
    now = ms_of(datetime.now(UTC))
    return now - now % DAY_MS


@dataclass(frozen=True)
class Volumes:
    """How many entities of each kind are generated (defaults: a demo-sized store, generated in < 1 s)."""

    orders: int = 2_000
    large_orders: int = 3  # orders with 120 items (beyond a client's first page of nested items)
    locations: int = 50
    products: int = 300  # standard products; each has 1–4 variants (the SKUs)
    inventory_positions: int = 5_000
    virtual_catalogues: int = 2
    virtual_positions: int = 2_000
    days: int = 30  # updatedOn spread over the `days` days before the anchor


@dataclass(frozen=True)
class SandboxConfig:
    seed: int = 42
    volumes: Volumes = field(default_factory=Volumes)
    anchor_ms: int = field(
        default_factory=today_midnight_ms
    )  # end (exclusive) of the generated updatedOn spread
    retailer_id: int = 1
    client_id: str = "fc-sandbox"
    client_secret: str = "fc-sandbox-secret"
    username: str = "sandbox"
    password: str = "sandbox"
    token_ttl_s: int = 86_400
    default_page_size: int = 10
    complexity_limit: int = 11_111
    max_request_bytes: int = 2 * 1024 * 1024
    batch_delay_ms: int = 200  # PENDING → RUNNING after this, RUNNING → COMPLETE after as long again
    bulk_intake: bool = False  # batch inventory kept as numbers, not upserted into the store (bulk.py)
    graphql_workers: int = 0  # query_workers.py: queries run in this many forked processes (0: in-process)
    faults: dict[str, Any] = field(
        default_factory=dict
    )  # start-up faults, same keys as POST /_sandbox/faults
