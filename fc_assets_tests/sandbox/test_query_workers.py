"""`--graphql-workers`: queries executed in forked processes answer exactly what the in-process sandbox
answers, see every write (mutation, admin touch, reset), honour the faults, and run in parallel."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fc_assets.extraction.entities import ORDERS
from fc_assets.extraction.extract import extract_periods
from fc_assets.extraction.windows import DAY, Window
from fc_assets.resources.fluent import FluentClient
from fc_assets.resources.storage import Lake
from fc_assets.sandbox.runner import SandboxServer
from fc_assets_tests.fixtures.sandbox import SANDBOX_ARGS
from fc_assets_tests.sandbox.api import Api

ORDER_FIELDS = "id ref updatedOn status items(first: 50) { edges { node { id ref quantity } } }"


@pytest.fixture(scope="module")
def pair():
    """The session sandbox's arguments twice: in-process (0 workers) and with 2 query workers."""
    with SandboxServer(SANDBOX_ARGS) as plain, SandboxServer([*SANDBOX_ARGS, "--graphql-workers", "2"]) as w:
        yield plain, w


@pytest.fixture
def workers(pair):
    sandbox = pair[1]
    yield sandbox
    sandbox.admin.clear_faults()
    sandbox.admin.reset()


def worker_pids(sandbox: SandboxServer) -> set[int]:
    pid = sandbox.process.pid
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        children |= {int(c) for c in (task / "children").read_text().split()}
    return children


def test_answers_equal_the_in_process_sandbox(pair):
    plain, workers = (Api(s.base_url) for s in pair)
    try:
        a = plain.crawl("orders", ORDER_FIELDS, first=37)
        b = workers.crawl("orders", ORDER_FIELDS, first=37)
        assert len(a) == 1500 and a == b
        bad = "query { orders(first: 5) { edges { node { nope } } } }"
        assert plain.gql(bad) == workers.gql(bad)  # validation errors come back the same way
        assert len(worker_pids(pair[1])) == 2  # and the queries did run in the workers
    finally:
        plain.close()
        workers.close()


def test_extraction_counts_exact_over_split_windows(pair, tmp_path):
    """30 daily objects, 4 streams (the last days split into sub-windows): every order of the window once."""
    sandbox = pair[1]
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    periods = list(Window(today - 30 * DAY, today).periods(DAY))
    expected = sandbox.admin.counts("orders", periods[0].start.isoformat(), today.isoformat())["ids"]
    with FluentClient(sandbox.base_url, "fc-sandbox", "fc-sandbox-secret", page_size=25) as client:
        results = list(
            extract_periods(
                ORDERS, periods, client=client, lake=Lake(f"file://{tmp_path}/lake"), concurrency=4
            )
        )
    import pyarrow.parquet as pq

    ids = [i for r in results for i in pq.read_table(f"{tmp_path}/lake/{r.key}").column("id").to_pylist()]
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == {str(i) for i in expected}


def test_writes_are_seen_by_the_next_query(workers):
    api = Api(workers.base_url)
    try:
        query = '{ location(ref: "LOC-0001") { id name } }'
        before = api.data(query)["location"]
        renamed = api.data(
            "mutation($i: UpdateLocationInput) { updateLocation(input: $i) { id name } }",
            {"i": {"id": before["id"], "name": "Renamed by a mutation"}},
        )
        assert renamed["updateLocation"]["name"] == "Renamed by a mutation"
        assert api.data(query)["location"]["name"] == "Renamed by a mutation"  # not the workers' old copy

        order = api.data("{ orders(first: 1) { edges { node { id updatedOn } } } }")["orders"]["edges"][0]
        workers.admin.touch("orders", order["node"]["id"], "2001-02-03T04:05:06.789Z")
        got = api.data("query($id: ID) { order(id: $id) { updatedOn } }", {"id": order["node"]["id"]})[
            "order"
        ]
        assert got["updatedOn"] == "2001-02-03T04:05:06.789Z"

        workers.admin.reset()
        assert api.data(query)["location"] == before
    finally:
        api.close()


def test_faults_apply_with_workers(workers):
    api = Api(workers.base_url)
    try:
        workers.admin.set_faults(stuck_cursor=True)
        q = "query($a: String) { orders(first: 3, after: $a) { edges { cursor } pageInfo { hasNextPage } } }"
        first = api.data(q)["orders"]
        again = api.data(q, {"a": first["edges"][-1]["cursor"]})["orders"]
        assert (
            again["edges"][-1]["cursor"] == first["edges"][-1]["cursor"] and again["pageInfo"]["hasNextPage"]
        )
        workers.admin.set_faults(stuck_cursor=None, graphql_errors={"message": "boom", "count": 1})
        assert api.gql(q)["errors"][0]["message"] == "boom"
        assert "errors" not in api.gql(q)
    finally:
        api.close()


def test_concurrent_queries_run_in_parallel(workers):
    """Four page requests in flight: with 2 workers the sandbox's CPU is not one event loop's."""
    api = Api(workers.base_url)
    q = "query($a: String) { orders(first: 100, after: $a) { edges { node { " + ORDER_FIELDS + " } } } }"
    try:
        api.data(q)  # workers forked
        pids = worker_pids(workers)
        assert len(pids) == 2

        def cpu(pid: int) -> float:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        before = {p: cpu(p) for p in pids}
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                api.data(q)

        with ThreadPoolExecutor(4) as pool:
            for _ in range(4):
                pool.submit(load)
            time.sleep(3)
            stop.set()
        used = [cpu(p) - before[p] for p in pids]
        assert all(u > 0.05 for u in used), used  # both workers executed queries
    finally:
        api.close()
