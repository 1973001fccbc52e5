"""`fc-assets sandbox` / `python -m fc_assets.sandbox`: run the Fluent API sandbox with uvicorn.

Prints one line once the socket listens (`Fluent sandbox listening on http://HOST:PORT ...`; with
`--port 0` the port is the one the OS chose) and stops cleanly on SIGTERM or Ctrl-C (exit code 0).
"""

from __future__ import annotations

import ipaddress
import sys
import time
from datetime import UTC, datetime

import click

from fc_assets.sandbox.config import SandboxConfig, Volumes, today_midnight_ms
from fc_assets.sandbox.datetimes import ms_of


def parse_anchor(value: str | None) -> int:
    if not value:
        return today_midnight_ms()
    day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC)
    return ms_of(day)


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8099, show_default=True, type=int, help="0: any free port (printed).")
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--orders", default=Volumes.orders, show_default=True, type=int)
@click.option(
    "--large-orders",
    default=Volumes.large_orders,
    show_default=True,
    type=int,
    help="Orders with 120 items (more than one page of nested items).",
)
@click.option("--locations", default=Volumes.locations, show_default=True, type=int)
@click.option(
    "--products",
    default=Volumes.products,
    show_default=True,
    type=int,
    help="Standard products; each has 1-4 variants (the SKUs).",
)
@click.option(
    "--inventory-positions",
    default=Volumes.inventory_positions,
    show_default=True,
    type=int,
    help="At most SKUs x locations; ~20% also get a RESERVED quantity.",
)
@click.option("--virtual-catalogues", default=Volumes.virtual_catalogues, show_default=True, type=int)
@click.option("--virtual-positions", default=Volumes.virtual_positions, show_default=True, type=int)
@click.option(
    "--days",
    default=Volumes.days,
    show_default=True,
    type=int,
    help="updatedOn is spread over this many days before the anchor.",
)
@click.option(
    "--anchor-date",
    default=None,
    help="YYYY-MM-DD (UTC midnight, exclusive end of the spread); default today.",
)
@click.option("--retailer-id", default=1, show_default=True, type=int)
@click.option("--client-id", default="fc-sandbox", show_default=True)
@click.option("--client-secret", default="fc-sandbox-secret", show_default=True)
@click.option("--username", default="sandbox", show_default=True)
@click.option("--password", default="sandbox", show_default=True)
@click.option("--token-ttl", default=86_400, show_default=True, type=int, help="Access token lifetime (s).")
@click.option(
    "--default-page-size",
    default=10,
    show_default=True,
    type=int,
    help="Page size of a connection queried without first/last.",
)
@click.option("--complexity-limit", default=11_111, show_default=True, type=int)
@click.option(
    "--batch-delay-ms",
    default=200,
    show_default=True,
    type=int,
    help="PENDING -> RUNNING after this, RUNNING -> COMPLETE after as long again.",
)
@click.option(
    "--bulk-intake",
    is_flag=True,
    help="For first loads of millions of rows: Batch API inventory is validated as usual, then kept as "
    "16 bytes an entity (key hash and qty) instead of store positions and received dicts (~3 KB an entity, "
    "at most 4,194,303 positions); GraphQL does not see it, GET /_sandbox/received sums it up "
    "(bulk_inventory: entities, qty_sum, digest, positions, on_hand_sum).",
)
@click.option(
    "--graphql-workers",
    default=0,
    show_default=True,
    type=int,
    help="Execute GraphQL queries in N forked processes, so concurrent requests do not queue behind each "
    "other's execution on the event loop (query_workers.py); 0: in-process.",
)
@click.option(
    "--latency-ms", default=0, show_default=True, type=int, help="Fault: added to every API request."
)
@click.option("--rate-limit", default=0, type=int, help="Fault: the first N API requests answer 429.")
@click.option(
    "--retry-after", default=1, show_default=True, type=int, help="Retry-After of --rate-limit (s)."
)
@click.option("--server-errors", default=0, type=int, help="Fault: the first N API requests answer 5xx.")
@click.option("--server-error-status", default=503, show_default=True, type=int)
@click.option("--drop-connections", default=0, type=int, help="Fault: the first N API requests are dropped.")
@click.option("--stuck-cursor", is_flag=True, help="Fault: connections never advance.")
@click.option("--stuck-batches", is_flag=True, help="Fault: batches stay RUNNING.")
@click.option("--reject-rate", default=0.0, type=float, help="Fault: share of batch entities rejected.")
@click.option("--reject-sku", multiple=True, help="Fault: batch entities of this skuRef are rejected.")
@click.option("--log-level", default="warning", show_default=True)
def sandbox(
    host: str,
    port: int,
    seed: int,
    orders: int,
    large_orders: int,
    locations: int,
    products: int,
    inventory_positions: int,
    virtual_catalogues: int,
    virtual_positions: int,
    days: int,
    anchor_date: str | None,
    retailer_id: int,
    client_id: str,
    client_secret: str,
    username: str,
    password: str,
    token_ttl: int,
    default_page_size: int,
    complexity_limit: int,
    batch_delay_ms: int,
    bulk_intake: bool,
    graphql_workers: int,
    latency_ms: int,
    rate_limit: int,
    retry_after: int,
    server_errors: int,
    server_error_status: int,
    drop_connections: int,
    stuck_cursor: bool,
    stuck_batches: bool,
    reject_rate: float,
    reject_sku: tuple[str, ...],
    log_level: str,
) -> None:
    """Run the local Fluent Commerce API sandbox (auth, GraphQL, Batch, Event APIs and faults)."""
    import uvicorn

    from fc_assets.sandbox.app import build_app

    faults: dict = {}
    if latency_ms:
        faults["latency_ms"] = latency_ms
    if rate_limit:
        faults["rate_limit"] = {"count": rate_limit, "retry_after": retry_after}
    if server_errors:
        faults["server_errors"] = {"count": server_errors, "status": server_error_status}
    if drop_connections:
        faults["drop_connections"] = drop_connections
    if stuck_cursor:
        faults["stuck_cursor"] = True
    if stuck_batches:
        faults["stuck_batches"] = True
    if reject_rate or reject_sku:
        faults["reject_entities"] = {"skuRefs": list(reject_sku), "rate": reject_rate}
    volumes = Volumes(
        orders=orders,
        large_orders=large_orders,
        locations=locations,
        products=products,
        inventory_positions=inventory_positions,
        virtual_catalogues=virtual_catalogues,
        virtual_positions=virtual_positions,
        days=days,
    )
    config = SandboxConfig(
        seed=seed,
        volumes=volumes,
        anchor_ms=parse_anchor(anchor_date),
        retailer_id=retailer_id,
        client_id=client_id,
        client_secret=client_secret,
        username=username,
        password=password,
        token_ttl_s=token_ttl,
        default_page_size=default_page_size,
        complexity_limit=complexity_limit,
        batch_delay_ms=batch_delay_ms,
        bulk_intake=bulk_intake,
        graphql_workers=graphql_workers,
        faults=faults,
    )
    started = time.perf_counter()
    try:
        app = build_app(config)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    generated = time.perf_counter() - started
    counts = {k: t.n for k, t in app.state.store.tables.items()}

    class AnnouncingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: object) -> None:
            super().handle_exit(sig, frame)  # type: ignore[arg-type]
            self._captured_signals.clear()  # shut down gracefully, then exit 0 (uvicorn would re-raise)

        async def startup(self, sockets: list | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.should_exit:
                return
            bound = self.servers[0].sockets[0].getsockname() if self.servers else (host, port)
            if not is_loopback(host):
                print(
                    f"WARNING: the sandbox is bound to {host}, beyond loopback: anyone who can reach this port "
                    "can use its API and its /_sandbox/ admin routes (no real authentication). Use "
                    "--host 127.0.0.1 unless you need it.",
                    file=sys.stderr,
                    flush=True,
                )
            print(
                f"Fluent sandbox listening on http://{host}:{bound[1]} (seed {seed}, "
                f"{counts['orders']} orders, {counts['inventory_positions']} inventory positions, "
                f"generated in {generated:.2f}s)",
                flush=True,
            )

    server = AnnouncingServer(
        uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, lifespan="off")
    )
    server.run()
    sys.exit(0 if server.started else 1)
