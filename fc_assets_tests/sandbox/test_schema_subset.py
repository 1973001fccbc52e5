"""The served SDL is a subset of Fluent's real schema: every type, field, argument, input field and enum
value the sandbox serves exists in the 23.10.1 introspection with the same type, and every argument the
real field requires is served (so a query valid here is valid against Fluent)."""

from __future__ import annotations

from pathlib import Path

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
    build_schema,
)

from fc_assets.sandbox.graphql_api import SDL_PATH
from fc_assets.sandbox.schema_subset import derive_sdl, load_real_schema

REAL = load_real_schema(Path(__file__).resolve().parents[1] / "data" / "fluent-schema-23.10.1.json")
SERVED = build_schema(SDL_PATH.read_text())


def served_types():
    return [t for name, t in SERVED.type_map.items() if not name.startswith("__")]


def test_every_served_type_field_and_argument_exists_in_the_real_schema_with_the_same_type():
    problems: list[str] = []
    for t in served_types():
        real = REAL.type_map.get(t.name)
        if real is None or type(real) is not type(t):
            problems.append(f"type {t.name}: {type(t).__name__} here, {type(real).__name__} in Fluent")
            continue
        if isinstance(t, GraphQLObjectType | GraphQLInterfaceType):
            if not {i.name for i in t.interfaces} <= {i.name for i in real.interfaces}:
                problems.append(f"{t.name} implements more interfaces than in Fluent")
            for fname, f in t.fields.items():
                rf = real.fields.get(fname)
                if rf is None or str(rf.type) != str(f.type):
                    problems.append(f"{t.name}.{fname}: {f.type} here, {rf and rf.type} in Fluent")
                    continue
                for aname, a in f.args.items():
                    ra = rf.args.get(aname)
                    if ra is None or str(ra.type) != str(a.type):
                        problems.append(
                            f"{t.name}.{fname}({aname}): {a.type} here, {ra and ra.type} in Fluent"
                        )
                required = {n for n, a in rf.args.items() if str(a.type).endswith("!")}
                if not required <= set(f.args):
                    problems.append(f"{t.name}.{fname} does not serve required args {required - set(f.args)}")
        elif isinstance(t, GraphQLInputObjectType):
            for fname, f in t.fields.items():
                rf = real.fields.get(fname)
                if rf is None or str(rf.type) != str(f.type):
                    problems.append(f"input {t.name}.{fname}: {f.type} here, {rf and rf.type} in Fluent")
            if set(t.fields) != set(real.fields):
                problems.append(f"input {t.name} must be served whole (all of Fluent's input fields)")
        elif isinstance(t, GraphQLEnumType):
            if not set(t.values) <= set(real.values):
                problems.append(
                    f"enum {t.name} has values Fluent does not: {set(t.values) - set(real.values)}"
                )
        else:
            assert isinstance(t, GraphQLScalarType)
    assert problems == []
    assert SERVED.query_type.name == REAL.query_type.name == "Query"
    assert SERVED.mutation_type.name == REAL.mutation_type.name == "Mutation"


def test_the_entities_and_mutations_the_platform_needs_are_served():
    query = set(SERVED.query_type.fields)
    assert {
        "orders",
        "order",
        "orderById",
        "fulfilments",
        "fulfilmentById",
        "locations",
        "location",
        "inventoryPositions",
        "inventoryQuantities",
        "inventoryCatalogues",
        "virtualCatalogues",
        "virtualPositions",
        "standardProducts",
        "variantProducts",
        "product",
        "productCatalogues",
        "me",
    } <= query
    assert {
        "createLocation",
        "updateLocation",
        "createStandardProduct",
        "updateStandardProduct",
        "createVariantProduct",
        "updateVariantProduct",
        "createInventoryPosition",
        "updateInventoryPosition",
        "createInventoryQuantity",
        "updateInventoryQuantity",
    } <= set(SERVED.mutation_type.fields)
    page_info = SERVED.get_type("PageInfo")
    assert set(page_info.fields) == {"hasNextPage", "hasPreviousPage"}  # no start/endCursor, as Fluent


def test_the_committed_sdl_is_what_the_generator_derives_from_the_real_schema():
    assert SDL_PATH.read_text() == derive_sdl(REAL)
