"""extract_periods through the real FluentClient (httpx MockTransport): the queries' paging variables,
nested follow-up queries and the client's retries work together; scripted 429/5xx bursts change nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest

from fc_assets.extraction.entities import ORDERS
from fc_assets.extraction.extract import extract_periods
from fc_assets.extraction.windows import DAY, Window
from fc_assets.resources.fluent_query import connection_plan
from fc_assets.resources.storage import Lake
from fc_assets_tests.client.mock_fluent import MockFluent, connection
from fc_assets_tests.extraction.fake_fluent import FakeFluent, make_orders

D1 = datetime(2025, 3, 1, tzinfo=UTC)


def graphql_over(fake: FakeFluent):
    """Answer GraphQL bodies from the fake's data, the way Fluent shapes them."""

    def answer(body: dict) -> dict:
        variables = body.get("variables") or {}
        plan = connection_plan(body["query"])
        if plan.path[-1] == "items":  # follow-up: the rest of one order's items
            items = fake._by_id(variables["id"])["items"]
            page = connection(items, variables[plan.first_var], f"c{variables[plan.after_var]}")
            return {"data": {plan.path[0]: {"items": page}}}
        rows = [fake._shape(n, variables) for n in fake.nodes[plan.path[0]] if fake._matches(n, variables)]
        page = connection(rows, variables[plan.first_var], variables.get(plan.after_var))
        for edge in page["edges"]:  # nested cursors as the follow-up expects them
            for i, item_edge in enumerate(edge["node"]["items"]["edges"]):
                item_edge["cursor"] = str(i)
        return {"data": {plan.path[0]: page}}

    return answer


@pytest.fixture
def file_lake(tmp_path) -> Lake:
    return Lake(f"file://{tmp_path}/lake")


def test_extraction_through_the_client_with_faults(file_lake):
    orders = make_orders(D1, 230, items=2) + make_orders(D1 + DAY, 40, items=75)
    mock = MockFluent()
    mock.graphql = graphql_over(FakeFluent({"orders": orders}))
    mock.then("/graphql", 503, (429, {"message": "slow down"}, {"Retry-After": "0"}), 502)
    with mock.client(page_size=50) as client:
        periods = list(Window(D1, D1 + 2 * DAY).periods(DAY))
        results = list(extract_periods(ORDERS, periods, client=client, lake=file_lake, concurrency=3))
        stats = client.stats_snapshot()
    assert [r.rows for r in results] == [230, 40]
    assert stats.retries == 3
    day2 = pq.read_table(file_lake.path(results[1].key))
    assert [len(i) for i in day2.column("items").to_pylist()] == [75] * 40  # 50 + a follow-up page of 25
    ids = [i for r in results for i in pq.read_table(file_lake.path(r.key)).column("id").to_pylist()]
    assert sorted(ids) == sorted(o["id"] for o in orders)
