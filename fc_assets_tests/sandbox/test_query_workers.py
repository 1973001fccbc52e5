"""`--graphql-workers`: queries executed in forked processes answer exactly what the in-process sandbox
answers, see every write (mutation, admin touch, reset), honour the faults, and run in parallel."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
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


def test_a_crashed_worker_is_replaced(workers):
    """A worker killed (OOM killer, segfault) breaks its pool: the next query forks new workers, not a 500
    for every query until an admin POST."""
    api = Api(workers.base_url)
    try:
        q = "{ orders(first: 2) { edges { node { id } } } }"
        expected = api.data(q)
        os.kill(min(worker_pids(workers)), signal.SIGKILL)
        time.sleep(0.3)
        assert api.data(q) == expected
        assert api.data(q) == expected
        assert len(worker_pids(workers)) == 2
    finally:
        api.close()


def test_admin_write_arriving_while_a_query_forks_is_seen(workers):
    """An admin POST whose body is still arriving while a query forks the workers: the write lands after
    that fork, so the next query must not run on the copy taken before it."""
    api = Api(workers.base_url)
    try:
        order = api.data("{ orders(first: 1) { edges { node { id } } } }")["orders"]["edges"][0]["node"]
        workers.admin.set_faults(stuck_cursor=None)  # drop the workers: the next query forks

        def slow_body():
            time.sleep(0.5)  # the query below forks new workers meanwhile
            yield orjson.dumps(
                {"entity": "orders", "id": order["id"], "updatedOn": "2001-02-03T04:05:06.789Z"}
            )

        def touch() -> int:
            headers = {"X-Sandbox-Admin": "1", "Content-Type": "application/json"}
            return httpx.post(
                f"{workers.base_url}/_sandbox/touch", content=slow_body(), headers=headers
            ).status_code

        with ThreadPoolExecutor(1) as pool:
            touched = pool.submit(touch)
            time.sleep(0.2)
            api.data("{ orders(first: 1) { edges { node { id } } } }")  # forks while the touch is in flight
            assert touched.result() == 200
        got = api.data("query($id: ID) { order(id: $id) { updatedOn } }", {"id": order["id"]})["order"]
        assert got["updatedOn"] == "2001-02-03T04:05:06.789Z"
    finally:
        api.close()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_do_not_outlive_the_sandbox(sig):
    """Workers end with the sandbox even when it is killed (no orphan holding a copy of the store), and a
    worker sent SIGTERM ends (it must not inherit uvicorn's graceful-shutdown handler)."""
    with SandboxServer([*SANDBOX_ARGS, "--graphql-workers", "2"]) as sandbox:
        api = Api(sandbox.base_url)
        try:
            api.data("{ orders(first: 1) { edges { node { id } } } }")
        finally:
            api.close()
        pids = worker_pids(sandbox)
        assert len(pids) == 2
        one = min(pids)
        os.kill(one, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while alive(one) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not alive(one), "a worker ignored SIGTERM"
        os.kill(sandbox.process.pid, sig)
        sandbox.process.wait(10)
        deadline = time.monotonic() + 5
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [p for p in pids if alive(p)]
        for p in left:
            os.kill(p, signal.SIGKILL)
        assert not left, f"workers {left} outlived the sandbox ({sig.name})"


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # (reaped between the open and the read: ESRCH)
        return False
