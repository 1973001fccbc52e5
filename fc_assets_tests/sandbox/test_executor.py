"""The fast executor answers exactly what graphql-core's reference `execute` answers (data and errors),
on the project's extraction queries and on the GraphQL features a client may use."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import execute, parse

from fc_assets.sandbox.clock import SandboxClock
from fc_assets.sandbox.config import SandboxConfig, Volumes
from fc_assets.sandbox.executor import execute_fast, operation_of
from fc_assets.sandbox.graphql_api import GraphQLService
from fc_assets.sandbox.resolvers import RequestContext
from fc_assets.sandbox.store import Store

QUERIES = Path(__file__).resolve().parents[2] / "fc_assets" / "extraction" / "queries"
CONFIG = SandboxConfig(
    volumes=Volumes(orders=300, locations=10, products=30, inventory_positions=200, virtual_positions=100)
)


@pytest.fixture(scope="module")
def service():
    return GraphQLService(10, 11_111)


@pytest.fixture(scope="module")
def context():
    store = Store(CONFIG, SandboxClock())
    return RequestContext(
        store=store, config=CONFIG, user={"id": "1", "ref": "sandbox", "username": "sandbox", "type": "ADMIN"}
    )


def both(service, context, query: str, variables: dict | None = None):
    doc = parse(query)
    fast = execute_fast(service.schema, doc, operation_of(doc, None), variables, context)
    ref = execute(service.schema, doc, variable_values=variables, context_value=context)
    reference = {"data": ref.data} | ({"errors": [e.formatted for e in ref.errors]} if ref.errors else {})
    return fast, reference


@pytest.mark.parametrize(
    "name", sorted(p.name for p in QUERIES.glob("*.graphql")) if QUERIES.exists() else []
)
def test_extraction_queries(service, context, name):
    variables = {
        "first": 25,
        "itemsFirst": 3,
        "id": "7",
        "catalogue": {"ref": "BASE:1"},
        "updated": {"from": "2000-01-01T00:00:00Z"},
    }
    query = (QUERIES / name).read_text()
    doc = parse(query)
    used = {v.variable.name.value for v in operation_of(doc, None).variable_definitions}
    fast, reference = both(service, context, query, {k: v for k, v in variables.items() if k in used})
    assert "errors" not in fast
    assert fast == reference


@pytest.mark.parametrize(
    "query",
    [
        # aliases, fragments, inline fragments on an interface, __typename, @skip/@include
        """query($skip: Boolean!) { a: orders(first: 3) { edges { node { ...O } } pageInfo { hasNextPage } }
       b: orders(first: 1, status: ["COMPLETE"]) { edges { cursor node { id status } } } }
       fragment O on Order { id __typename ref @skip(if: $skip) customer { firstName @include(if: $skip) }
         items(first: 2) { edges { node { product { __typename ref ... on VariantProduct { product { ref } } } } } } }""",
        # abstract fields and nested lookups
        """{ locations(first: 2) { edges { node { primaryAddress { __typename ... on StoreAddress { location { ref } } } } } }
       inventoryPositions(first: 2) { edges { node { ref location { city } product { ref ... on VariantProduct { gtin } }
         quantities(first: 5) { edges { node { ref type quantity position { ref } } } } } } } }""",
        # field errors: bad cursor (nullable field → null + error with path), empty DateRange (C0101E)
        """{ orders(after: "bm9wZQ==") { edges { cursor } } fulfilments(updatedOn: {}) { edges { cursor } } me { ref } }""",
    ],
)
def test_features_and_errors(service, context, query):
    fast, reference = both(service, context, query, {"skip": False})
    assert fast == reference


def test_a_null_in_a_non_null_field_nulls_the_nearest_nullable_parent(service, context):
    original = service.schema.get_type("OrderItem").fields["product"].resolve
    service.schema.get_type("OrderItem").fields["product"].resolve = lambda *_: None
    try:
        fast, reference = both(
            service,
            context,
            "{ orders(first: 1) { edges { node { id items(first: 1) "
            "{ edges { node { id product { ref } } } } } } } }",
        )
    finally:
        service.schema.get_type("OrderItem").fields["product"].resolve = original
    assert fast["data"] == reference["data"]
    assert fast["data"]["orders"]["edges"][0]["node"]["items"]["edges"] == [{"node": None}]
    assert fast["errors"] == reference["errors"]


def test_resolver_errors_keep_their_code(service, context):
    fast, _ = both(service, context, "{ orders(updatedOn: {}) { edges { cursor } } }")
    assert fast["data"] == {"orders": None}
    assert fast["errors"][0]["path"] == ["orders"]
    assert fast["errors"][0]["extensions"]["code"] == "C0101E"
