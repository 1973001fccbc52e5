"""Unit tests (MockTransport): GraphQL errors and partial data, query analysis, cursor paging guards."""

from __future__ import annotations

import pytest

from fc_assets.resources.fluent import (
    DecodedPage,
    FluentGraphQLError,
    FluentPagingError,
    FluentValidationError,
    GraphQLResult,
)
from fc_assets.resources.fluent_errors import classify_graphql_error
from fc_assets.resources.fluent_query import connection_plan
from fc_assets_tests.client.mock_fluent import MockFluent, connection

NODES = [{"id": str(i), "ref": f"R{i}"} for i in range(250)]

ORDERS = """
query Orders($updated: DateRange, $n: Int, $cursor: String) {
  orders(updatedOn: $updated, first: $n, after: $cursor) {
    edges { cursor node { id ref } }
    pageInfo { hasNextPage }
  }
}"""

TWO_ROOTS = """
query Two($first: Int, $after: String, $locFirst: Int) {
  locations(first: $locFirst) { edges { cursor node { id } } pageInfo { hasNextPage } }
  orders(first: $first, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage } }
}"""


def serve_orders(fluent: MockFluent, nodes=NODES, log: list | None = None) -> None:
    def graphql(body):
        v = body["variables"]
        if log is not None:
            log.append(v)
        data = {"orders": connection(nodes, v.get("n") or v.get("first"), v.get("cursor") or v.get("after"))}
        if "locations" in body["query"]:
            data["locations"] = connection(NODES[:3], v["locFirst"], None)
        return {"data": data}

    fluent.graphql = graphql


def test_paging_finds_variables_by_use_and_counts_pages_exactly():
    fluent, sent = MockFluent(), []
    serve_orders(fluent, log=sent)
    client = fluent.client(page_size=100)
    pages = list(client.paginate(ORDERS, {"updated": {"from": "2025-01-01T00:00:00Z"}}))
    assert [p.number for p in pages] == [1, 2, 3] and [len(p.nodes) for p in pages] == [100, 100, 50]
    assert [n["id"] for p in pages for n in p.nodes] == [n["id"] for n in NODES]
    assert pages[-1].has_next_page is False and pages[0].end_cursor == "c99"
    assert [v["cursor"] for v in sent] == [None, "c99", "c199"] and all(v["n"] == 100 for v in sent)
    assert client.stats.pages == 3 == fluent.calls("/graphql")


def test_page_size_argument_and_caller_first_win():
    fluent, sent = MockFluent(), []
    serve_orders(fluent, log=sent)
    client = fluent.client()
    assert len(list(client.iter_nodes(ORDERS, page_size=125))) == 250 and len(sent) == 2
    assert len(list(client.iter_nodes(ORDERS, {"n": 250}, page_size=10))) == 250 and len(sent) == 3


def test_two_root_connections_page_only_the_one_asked_for():
    fluent = MockFluent()
    serve_orders(fluent)
    client = fluent.client()
    orders = list(client.iter_nodes(TWO_ROOTS, {"locFirst": 3}, connection_path="orders", page_size=100))
    assert len(orders) == 250 and client.stats.pages == 3
    with pytest.raises(FluentPagingError, match="after: \\$variable"):
        list(client.iter_nodes(TWO_ROOTS, {"locFirst": 3}))  # the first connection (locations) has no after


def test_stuck_cursor_raises_instead_of_stopping():
    fluent = MockFluent()
    fluent.graphql = lambda body: {
        "data": {
            "orders": {"edges": [{"cursor": "same", "node": {"id": "1"}}], "pageInfo": {"hasNextPage": True}}
        }
    }
    pages = fluent.client().paginate(ORDERS)
    assert next(pages).end_cursor == "same"
    with pytest.raises(FluentPagingError, match="did not advance") as info:
        next(pages)
    assert info.value.page == 2


@pytest.mark.parametrize(
    "conn, message",
    [
        ({"edges": [{"node": {"id": "1"}}], "pageInfo": {"hasNextPage": True}}, "no cursor"),
        ({"edges": [], "pageInfo": {"hasNextPage": True}}, "no edges"),
        (
            {"edges": [{"cursor": "a", "node": {"id": "1"}}], "pageInfo": {"hasNextPage": None}},
            "not a boolean",
        ),
        ({"edges": [{"cursor": "a", "node": None}], "pageInfo": {"hasNextPage": False}}, "no node"),
        (None, "null or missing"),
    ],
)
def test_malformed_pages_raise(conn, message):
    fluent = MockFluent()
    fluent.graphql = lambda body: {"data": {"orders": conn}}
    with pytest.raises(FluentPagingError, match=message):
        list(fluent.client().paginate(ORDERS))


def test_connection_plan_reads_the_query():
    plan = connection_plan(ORDERS)
    assert (plan.path, plan.after_var, plan.first_var) == (("orders",), "cursor", "n")
    nested = """query Q($ref: String!, $f: Int, $a: String) {
      vc: virtualCatalogue(ref: $ref) { ...VP }
    }
    fragment VP on VirtualCatalogue {
      virtualPositions(first: $f, after: $a) { edges { cursor node { id } } pageInfo { hasNextPage } }
    }"""
    plan = connection_plan(nested)
    assert (plan.dotted, plan.after_var, plan.first_var) == ("vc.virtualPositions", "a", "f")
    assert connection_plan(nested, "vc.virtualPositions") == plan
    literal = "query($a: String) { orders(first: 50, after: $a) { edges { cursor node { id } } pageInfo { hasNextPage } } }"
    assert connection_plan(literal).first_literal == 50


@pytest.mark.parametrize(
    "query, message",
    [
        (
            "query($a: String) { orders(after: $a) { edges { cursor node { id } } pageInfo { hasNextPage } } }",
            "first",
        ),
        (
            "query($f: Int, $a: String) { orders(first: $f, after: $a) { edges { node { id } } pageInfo { hasNextPage } } }",
            "cursor",
        ),
        (
            "query($f: Int) { orders(first: $f, after: $a) { edges { cursor node { id } } pageInfo { hasNextPage } } }",
            "not declared",
        ),
        ("query { me { ref } }", "no connection"),
    ],
)
def test_unpageable_queries_are_refused_up_front(query, message):
    with pytest.raises(FluentPagingError, match=message):
        connection_plan(query, None)
    with pytest.raises(FluentPagingError, match="no field 'nope'"):
        connection_plan(ORDERS, "nope")


def test_syntax_error_is_a_validation_error():
    with pytest.raises(FluentValidationError, match="syntax"):
        MockFluent().client().graphql("query { me { ref }")


def test_graphql_errors_are_typed_and_partial_mode_keeps_data():
    fluent = MockFluent()
    body = {
        "data": {"a1": {"id": "1"}, "a2": None},
        "errors": [{"message": "C0121E Order ref already exists", "path": ["a2"]}],
    }
    fluent.graphql = lambda _: body
    client = fluent.client()
    mutation = "mutation { a1: createLocation(input: {}) { id } a2: createLocation(input: {}) { id } }"
    with pytest.raises(FluentGraphQLError) as info:
        client.graphql(mutation)
    err = info.value
    assert err.codes == ["C0121E"] and not err.retryable and err.data == body["data"]
    assert err.classification.action == "VERIFY_PAYLOAD" and "C0121E" in str(err)
    result = client.graphql(mutation, partial=True)
    assert (
        isinstance(result, GraphQLResult) and result.data == body["data"] and result.errors == body["errors"]
    )
    assert result.error.codes == ["C0121E"]
    assert client.graphql("query { me { ref } }", partial=True) == GraphQLResult(body["data"], body["errors"])


def test_rate_limit_graphql_error_retried_for_queries_only():
    fluent = MockFluent()
    answers = [{"data": None, "errors": [{"message": "rate limit", "extensions": {"code": "C0011E"}}]}] * 2
    answers = iter([*answers, {"data": {"me": {"ref": "u"}}}])
    fluent.graphql = lambda _: next(answers)
    client = fluent.client()
    assert client.graphql("query { me { ref } }") == {"me": {"ref": "u"}}
    assert client.stats.retries == 2

    fluent.graphql = lambda _: {"data": None, "errors": [{"message": "C0011E too many requests"}]}
    with pytest.raises(FluentGraphQLError) as info:
        client.graphql("mutation { createLocation(input: {}) { id } }")
    assert info.value.retryable and info.value.codes == ["C0011E"] and fluent.calls("/graphql") == 4


@pytest.mark.parametrize(
    "error, code, retryable, action",
    [
        ({"message": "x", "extensions": {"code": "C0001E"}}, "C0001E", False, "FIX_AND_RETRY"),
        ({"message": "C0003E view initialising"}, "C0003E", True, "RETRY_LATER"),
        ({"message": "C0020E missing permissions: ORDER_VIEW"}, "C0020E", False, "CONTACT_SUPPORT"),
        ({"message": "C0101E date"}, "C0101E", False, "FIX_AND_RETRY"),
        ({"message": "S0002E"}, "S0002E", True, "RETRY_LATER"),
        ({"message": "S0005E"}, "S0005E", False, "CONTACT_SUPPORT"),
        ({"message": "T0001E upstream"}, "T0001E", True, "RETRY_LATER"),
        ({"message": "Connection reset by peer"}, None, True, "RETRY_LATER"),
        ({"message": "Order not found"}, None, False, "VERIFY_PAYLOAD"),
        ({"message": "Cannot query field 'x' on type 'OrderConnection'."}, None, False, "FIX_AND_RETRY"),
        (
            {"message": "connection timed out", "extensions": {"classification": "ValidationError"}},
            None,
            False,
            "FIX_AND_RETRY",
        ),
        (
            {
                "message": "Invalid syntax with offending token",
                "extensions": {"classification": "InvalidSyntax"},
            },
            None,
            False,
            "FIX_AND_RETRY",
        ),
        (
            {"message": "Internal server error", "extensions": {"classification": "DataFetchingException"}},
            None,
            True,
            "RETRY_LATER",
        ),
        ({"message": "Unknown type 'OrderConnectionz'"}, None, False, "FIX_AND_RETRY"),
    ],
)
def test_classification_table(error, code, retryable, action):
    cls = classify_graphql_error(error)
    assert (cls.code, cls.retryable, cls.action) == (code, retryable, action)


def _decoder(decoded: list[bytes]):
    """A `decode` reading `{"data":{"orders":...}}` with orjson into a `DecodedPage` (nodes kept as dicts),
    declining bodies with errors, as json_pages does."""
    import orjson

    def decode(body: bytes):
        doc = orjson.loads(body)
        if "errors" in doc:
            return None
        conn = doc["data"]["orders"]
        edges = conn["edges"]
        decoded.append(body)
        return DecodedPage(
            0, [e["node"] for e in edges], conn["pageInfo"]["hasNextPage"], edges[-1]["cursor"]
        )

    return decode


def test_decoded_paging_counts_and_follows_cursors_as_plain_paging():
    fluent, sent, decoded = MockFluent(), [], []
    serve_orders(fluent, log=sent)
    client = fluent.client(page_size=100)
    pages = list(client.paginate(ORDERS, {}, decode=_decoder(decoded)))
    assert [p.number for p in pages] == [1, 2, 3] and [len(p.nodes) for p in pages] == [100, 100, 50]
    assert [n["id"] for p in pages for n in p.nodes] == [n["id"] for n in NODES] and len(decoded) == 3
    assert [v["cursor"] for v in sent] == [None, "c99", "c199"]
    assert client.stats.pages == 3 == fluent.calls("/graphql")


def test_decoded_pages_get_the_same_cursor_guards():
    fluent = MockFluent()
    fluent.graphql = lambda body: {
        "data": {
            "orders": {"edges": [{"cursor": "same", "node": {"id": "1"}}], "pageInfo": {"hasNextPage": True}}
        }
    }
    pages = fluent.client().paginate(ORDERS, decode=_decoder([]))
    assert next(pages).end_cursor == "same"
    with pytest.raises(FluentPagingError, match="did not advance"):
        next(pages)
    fluent.graphql = lambda body: {"data": {"orders": {"edges": [], "pageInfo": {"hasNextPage": True}}}}
    with pytest.raises(FluentPagingError, match="no edges"):
        list(fluent.client().paginate(ORDERS, decode=lambda body: DecodedPage(0, [], True, None)))


def test_declined_bodies_get_the_plain_error_handling_and_retries():
    """A body `decode` declines (here: GraphQL errors) is read as `graphql` reads it: retryable errors
    are retried, the answer after them decoded."""
    fluent, decoded = MockFluent(), []
    answers = [{"data": None, "errors": [{"message": "rate limit", "extensions": {"code": "C0011E"}}]}]
    answers = iter([*answers, {"data": {"orders": connection(NODES[:5], 100, None)}}])
    fluent.graphql = lambda _: next(answers)
    client = fluent.client()
    pages = list(client.paginate(ORDERS, decode=_decoder(decoded)))
    assert [len(p.nodes) for p in pages] == [5] and len(decoded) == 1 and client.stats.retries == 1
    fluent.graphql = lambda _: {"data": None, "errors": [{"message": "Order not found"}]}
    with pytest.raises(FluentGraphQLError):
        list(client.paginate(ORDERS, decode=_decoder(decoded)))
