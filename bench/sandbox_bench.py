"""Sandbox benchmark: how fast the Fluent sandbox serves pages, against baselines measured in the same run.

    python bench/sandbox_bench.py            # 20k orders, 25k inventory positions, then a 200k-order start-up
    python bench/sandbox_bench.py --quick    # fewer pages, no 200k start-up

1. A page of 100 orders with their items (the extraction query, orders.graphql) over HTTP from one
   keep-alive client: ms per page p50/p95 and pages/s; baseline: `GET /health` round trips.
2. The same page in process (no HTTP): the fast executor against graphql-core's reference `execute`.
3. Crawling a 25,000-node connection (inventory positions, first=500 and first=100): pages/s, ms per page.
4. Start-up (data generation) of a 200k-order sandbox: seconds to `/health`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import table_rows  # noqa: E402

from fc_assets.sandbox.runner import SandboxServer  # noqa: E402

ORDERS_QUERY = (ROOT / "fc_assets" / "extraction" / "queries" / "orders.graphql").read_text()
POSITIONS_QUERY = (
    "query($first: Int, $after: String) { inventoryPositions(first: $first, after: $after) "
    "{ edges { cursor node { id ref productRef locationRef onHand updatedOn catalogue { ref } } } "
    "pageInfo { hasNextPage } } }"
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def report(name: str, ms: list[float]) -> float:
    p50 = statistics.median(ms)
    print(f"  {name:<44} p50 {p50:7.2f} ms   p95 {pct(ms, 0.95):7.2f} ms   {1000 / p50:8.1f} /s")
    return p50


def bearer(http: httpx.Client) -> dict[str, str]:
    """The Authorization header of a client-credentials token from the sandbox's default client."""
    token = http.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "fc-sandbox",
            "client_secret": "fc-sandbox-secret",
        },
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def http_pages(sb: SandboxServer, pages: int) -> tuple[float, float]:
    print("== 1. a page of 100 orders with items over HTTP (one keep-alive client)")
    with httpx.Client(base_url=sb.base_url, timeout=30) as http:
        headers = bearer(http)
        health = report("GET /health (baseline)", timed(lambda: http.get("/health"), pages))
        cursor: list[str | None] = [None]
        sizes: list[int] = []

        def page() -> None:
            r = http.post(
                "/graphql",
                headers=headers,
                json={
                    "query": ORDERS_QUERY,
                    "variables": {"first": 100, "after": cursor[0], "itemsFirst": 50},
                },
            )
            body = r.json()
            conn = body["data"]["orders"]
            sizes.append(len(r.content))
            cursor[0] = conn["edges"][-1]["cursor"] if conn["pageInfo"]["hasNextPage"] else None

        page()  # warm-up: parse/validate cache
        p50 = report("POST /graphql orders(first: 100) + items", timed(page, pages))
        print(
            f"  page size {statistics.median(sizes) / 1024:.0f} KiB; page / health round trip = {p50 / health:.1f}x"
        )
    return p50, health


def in_process(pages: int) -> tuple[float, float]:
    from graphql import execute, parse

    from fc_assets.sandbox.clock import SandboxClock
    from fc_assets.sandbox.config import SandboxConfig, Volumes
    from fc_assets.sandbox.graphql_api import GraphQLService
    from fc_assets.sandbox.resolvers import RequestContext
    from fc_assets.sandbox.store import Store

    print("== 2. the same page in process (no HTTP)")
    config = SandboxConfig(volumes=Volumes(orders=20_000))
    service = GraphQLService(10, 11_111)
    ctx = RequestContext(store=Store(config, SandboxClock()), config=config, user={})
    body = {"query": ORDERS_QUERY, "variables": {"first": 100, "itemsFirst": 50}}
    service.run(body, ctx)
    fast = report("fast executor (sandbox)", timed(lambda: service.run(body, ctx), pages))
    doc = parse(ORDERS_QUERY)
    ref = report(
        "graphql-core execute (reference)",
        timed(
            lambda: execute(service.schema, doc, variable_values=body["variables"], context_value=ctx),
            max(5, pages // 10),
        ),
    )
    print(f"  graphql-core / fast executor = {ref / fast:.1f}x")
    return fast, ref


def crawl(sb: SandboxServer) -> None:
    print("== 3. crawling a 25,000-node connection (inventory positions)")
    with httpx.Client(base_url=sb.base_url, timeout=30) as http:
        headers = bearer(http)
        for first in (500, 100):
            after, nodes, times = None, 0, []
            started = time.perf_counter()
            while True:
                t = time.perf_counter()
                conn = http.post(
                    "/graphql",
                    headers=headers,
                    json={"query": POSITIONS_QUERY, "variables": {"first": first, "after": after}},
                ).json()["data"]["inventoryPositions"]
                times.append((time.perf_counter() - t) * 1000)
                nodes += len(conn["edges"])
                if not conn["pageInfo"]["hasNextPage"]:
                    break
                after = conn["edges"][-1]["cursor"]
            total = time.perf_counter() - started
            print(
                f"  first={first:<4} {nodes} nodes in {len(times)} pages, {total:.2f} s: "
                f"{len(times) / total:.0f} pages/s, {nodes / total:,.0f} nodes/s, "
                f"p50 {statistics.median(times):.1f} ms/page, p95 {pct(times, 0.95):.1f} ms/page"
            )


def startup(orders: int) -> float:
    print(f"== 4. start-up with {orders:,} orders")
    started = time.perf_counter()
    with SandboxServer(["--orders", str(orders)]) as sb:
        elapsed = time.perf_counter() - started
        line = next(ln for ln in sb.output().splitlines() if "listening" in ln)
        print(f"  healthy after {elapsed:.2f} s  ({line.split('(', 1)[1].rstrip(')')})")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pages", type=int, help="pages timed (default 300; 50 quick)")
    parser.add_argument("--no-crawl", action="store_true", help="skip the 25,000-node crawl")
    parser.add_argument("--startup-orders", type=int, default=200_000, help="0: skip the start-up part")
    table_rows.add_argument(parser)
    args = parser.parse_args()
    pages = args.pages or (50 if args.quick else 300)
    with SandboxServer(["--orders", "20000", "--inventory-positions", "25000"]) as sb:
        p50, health = http_pages(sb, pages)
        fast, ref = in_process(pages)
        if not args.no_crawl:
            crawl(sb)
    out = [
        table_rows.row(
            "sandbox: a page of 100 orders with items over HTTP (p50) vs GET /health",
            p50,
            health,
            "(shown)",
            None,
            unit="ms",
            note=f"{pages} pages",
        ),
        table_rows.row(
            "sandbox: the same page in process, fast executor vs graphql-core execute",
            fast,
            ref,
            "(shown)",
            None,
            unit="ms",
        ),
    ]
    if not args.quick and args.startup_orders:
        elapsed = startup(args.startup_orders)
        out.append(
            table_rows.row(
                f"sandbox start-up with {args.startup_orders:,} orders", elapsed, None, "(shown)", None
            )
        )
    table_rows.emit(args.rows_json, out)


if __name__ == "__main__":
    main()
