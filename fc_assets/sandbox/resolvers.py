"""Resolvers of the served schema: searches (Relay connections over `Table`), lookups, nested connections
and mutations. Attached to the schema's fields by `attach`, so graphql-core and the fast executor run the
same code.

Connection rules (as Fluent): `first` defaults to the configured page size (10) when neither `first` nor
`last` is given; a negative size is an error; `DateRange` bounds are inclusive and one is required
(`C0101E`); `pageInfo.hasNextPage`/`hasPreviousPage` are always booleans. Order: `updatedOn` ascending,
then `id` ascending (see table.py). Filters on a list argument match any of its values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError, GraphQLSchema

from fc_assets.sandbox.config import SandboxConfig
from fc_assets.sandbox.store import FluentError, Store
from fc_assets.sandbox.table import CursorError, Page, page_list


@dataclass
class RequestContext:
    """What resolvers see: the store, the settings, the active faults and the caller."""

    store: Store
    config: SandboxConfig
    stuck_cursor: bool = False
    user: dict[str, Any] = field(default_factory=dict)
    record_mutation: Callable[[str, str, Any, bool], None] | None = None
    mutation_error: Callable[[str | None], str | None] | None = None  # the fail_mutations fault


def coded(code: str, message: str) -> GraphQLError:
    return GraphQLError(f"{code}: {message}", extensions={"code": code})


def date_bounds(name: str, value: dict[str, Any] | None) -> tuple[int | None, int | None] | None:
    if value is None:
        return None
    lo, hi = value.get("from"), value.get("to")
    if lo is None and hi is None:
        raise coded("C0101E", f"Date range '{name}' needs at least one of 'from' or 'to'")
    return lo, hi


def page_size(ctx: RequestContext, first: int | None, last: int | None) -> tuple[int | None, int | None]:
    for name, v in (("first", first), ("last", last)):
        if v is not None and v < 0:
            raise GraphQLError(f"'{name}' must not be negative, got {v}")
    if first is None and last is None:
        return ctx.config.default_page_size, None
    return first, last


def connection(table_name: str, nodes: list[dict[str, Any]], page: Page) -> dict[str, Any]:
    return {
        "edges": [{"cursor": c, "node": n} for c, n in zip(page.cursors, nodes, strict=True)],
        "pageInfo": {"hasNextPage": bool(page.has_next), "hasPreviousPage": bool(page.has_previous)},
    }


# catalogue-scoped kinds: the catalogue table their `catalogue` argument and ref keys refer to
SCOPED = {
    "standard_products": "product_catalogues",
    "variant_products": "product_catalogues",
    "inventory_positions": "inventory_catalogues",
    "inventory_quantities": "inventory_catalogues",
    "virtual_positions": "virtual_catalogues",
}
EQUALS = ("type", "status", "productRef", "locationRef", "groupRef")


def search(table_name: str) -> Callable[..., dict[str, Any]]:
    """A root search field (`orders(...)`, `inventoryPositions(...)` ...)."""

    def resolve(_source: Any, info: Any, **args: Any) -> dict[str, Any]:
        ctx: RequestContext = info.context
        table = ctx.store.tables[table_name]
        first, last = page_size(ctx, args.get("first"), args.get("last"))
        equals = {k: args[k] for k in EQUALS if args.get(k) is not None}
        if args.get("retailerId") is not None:
            equals["retailerId"] = [str(r) for r in args["retailerId"]]
        catalogue = (args.get("catalogue") or {}).get("ref")
        if catalogue is not None:
            equals["catalogue"] = [catalogue]
        refs = args.get("ref")
        if refs is not None and table_name in SCOPED:
            refs = ctx.store.scoped_keys(SCOPED[table_name], refs, catalogue)
        try:
            page = table.search(
                first=first,
                last=last,
                after=args.get("after"),
                before=args.get("before"),
                updated=date_bounds("updatedOn", args.get("updatedOn")),
                created=date_bounds("createdOn", args.get("createdOn")),
                equals=equals,
                refs=refs,
                stuck=ctx.stuck_cursor,
            )
        except CursorError as exc:
            raise GraphQLError(str(exc)) from None
        return connection(table_name, [table.node(r) for r in page.rows], page)

    return resolve


def nested(
    items: list[dict[str, Any]], args: dict[str, Any], ctx: RequestContext, kind: str
) -> dict[str, Any]:
    """A connection inside a node (items, quantities, variants): filtered in Python, keyset-paged by id."""
    first, last = page_size(ctx, args.get("first"), args.get("last"))
    for name in ("ref", "status", "type"):
        if args.get(name) is not None:
            items = [i for i in items if i.get(name) in args[name]]
    for name in ("updatedOn", "createdOn"):
        bounds = date_bounds(name, args.get(name))
        if bounds is not None:
            lo, hi = bounds
            items = [i for i in items if (lo is None or i[name] >= lo) and (hi is None or i[name] <= hi)]
    try:
        nodes, cursors, has_next, has_prev = page_list(
            items,
            [int(i["id"]) for i in items],
            first=first,
            last=last,
            after=args.get("after"),
            before=args.get("before"),
            kind=kind,
        )
    except CursorError as exc:
        raise GraphQLError(str(exc)) from None
    return {
        "edges": [{"cursor": c, "node": n} for c, n in zip(cursors, nodes, strict=True)],
        "pageInfo": {"hasNextPage": has_next, "hasPreviousPage": has_prev},
    }


# ----------------------------------------------------------------------------------------- lookups


def by_id(table_name: str) -> Callable[..., Any]:
    def resolve(_source: Any, info: Any, id: str | None = None, ref: str | None = None) -> Any:
        table = info.context.store.tables[table_name]
        if id is not None:
            row = table.row_of_id(id)
            node = table.node(row) if row is not None else None
            return node if node is not None and (ref is None or node.get("ref") == ref) else None
        return table.find(ref) if ref is not None else None

    return resolve


def by_ref(table_name: str) -> Callable[..., Any]:
    def resolve(_source: Any, info: Any, ref: str, catalogue: dict[str, Any] | None = None) -> Any:
        key = (catalogue["ref"], ref) if catalogue is not None else ref
        return info.context.store.tables[table_name].find(key)

    return resolve


def resolve_product(_source: Any, info: Any, ref: str, catalogue: dict[str, Any]) -> Any:
    return info.context.store.product(catalogue["ref"], ref)


def resolve_me(_source: Any, info: Any) -> dict[str, Any]:
    return info.context.user


# ------------------------------------------------------------------------------------ object fields


def order_items(order: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
    ch = info.context.store.children
    start, end = ch["items_of"](order["_row"])
    items = [ch["build_item"](k, order["_row"]) for k in range(start, end)]
    return nested(items, args, info.context, "orderItems")


def order_fulfilments(order: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
    store = info.context.store
    table = store.tables["fulfilments"]
    return nested(
        [table.node(f) for f in store.children["fulfilments_of"](order["_row"])],
        args,
        info.context,
        "orderFulfilments",
    )


def fulfilment_items(ful: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
    ch = info.context.store.children
    order_row = ful["_order"]
    start, end = ch["items_of"](order_row)
    status = ch["fulfilment_item_status"](ful["_row"])
    items = []
    for k in range(start, end):
        item = ch["build_item"](k, order_row)
        filled = item["quantity"] if status == "FULFILLED" else 0
        items.append(
            {
                "id": item["id"],
                "ref": item["ref"],
                "status": status,
                "requestedQuantity": item["quantity"],
                "filledQuantity": filled,
                "rejectedQuantity": item["quantity"] if status == "REJECTED" else 0,
                "_ful": ful["_row"],
                "_item": k,
                "_order": order_row,
            }
        )
    return nested(items, args, info.context, "fulfilmentItems")


def order_of(node: dict[str, Any], info: Any) -> Any:
    return info.context.store.tables["orders"].node(node["_order"])


def item_product(item: dict[str, Any], info: Any) -> Any:
    return info.context.store.tables["variant_products"].node(item["_product"])


def item_fulfilment_choice(item: dict[str, Any], info: Any) -> Any:
    return order_of(item, info)["fulfilmentChoice"]


def fulfilment_item_order_item(fi: dict[str, Any], info: Any) -> Any:
    return info.context.store.children["build_item"](fi["_item"], fi["_order"])


def fulfilment_item_fulfilment(fi: dict[str, Any], info: Any) -> Any:
    return info.context.store.tables["fulfilments"].node(fi["_ful"])


def fulfilment_from_address(ful: dict[str, Any], info: Any) -> Any:
    loc = info.context.store.location_by_ref(ful.get("_location"))
    return loc["primaryAddress"] if loc else None


def store_address_location(addr: dict[str, Any], info: Any) -> Any:
    return info.context.store.location_by_ref(addr.get("_location"))


def variant_standard(variant: dict[str, Any], info: Any) -> Any:
    key = variant.get("_standard")
    return info.context.store.tables["standard_products"].find(key) if key else None


def standard_variants(std: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
    store = info.context.store
    table = store.tables["variant_products"]
    rows = store.variants_of.get((std["catalogue"]["ref"], std["ref"]), [])
    return nested([table.node(r) for r in sorted(rows)], args, info.context, "variants")


def position_product(pos: dict[str, Any], info: Any, catalogue: dict[str, Any] | None = None) -> Any:
    store = info.context.store
    cat = catalogue["ref"] if catalogue else f"PC:MASTER:{store.retailer_id}"
    return store.product(cat, pos["productRef"])


def position_location(pos: dict[str, Any], info: Any) -> Any:
    loc = info.context.store.location_by_ref(pos.get("locationRef"))
    return loc["primaryAddress"] if loc else None


def position_quantities(pos: dict[str, Any], info: Any, **args: Any) -> dict[str, Any]:
    store = info.context.store
    table = store.tables["inventory_quantities"]
    rows = store.quantities_of.get((pos["catalogue"]["ref"], pos["ref"]), [])
    if args.get("catalogue") is not None and args["catalogue"]["ref"] != pos["catalogue"]["ref"]:
        rows = []
    return nested([table.node(r) for r in sorted(rows)], args, info.context, "quantities")


def quantity_position(q: dict[str, Any], info: Any) -> Any:
    return info.context.store.tables["inventory_positions"].find(q.get("_position"))


# ---------------------------------------------------------------------------------------- mutations


def _location_ref(store: Store, input: dict[str, Any]) -> str | None:
    if input.get("ref"):
        return str(input["ref"])
    table = store.tables["locations"]
    row = table.row_of_id(input["id"]) if input.get("id") is not None else None
    return table.node(row)["ref"] if row is not None else None


def mutation(name: str, write: Callable[[Store, dict[str, Any]], dict[str, Any]]) -> Callable[..., Any]:
    """A mutation resolver that records what it received (`/_sandbox/received`) and whether it worked."""

    def resolve(_source: Any, info: Any, input: dict[str, Any] | None = None) -> Any:
        ctx: RequestContext = info.context
        alias = info.path.key
        try:
            if input is None:
                raise GraphQLError(f"'input' is required for {name}")
            injected = ctx.mutation_error(_location_ref(ctx.store, input)) if ctx.mutation_error else None
            if injected:
                raise FluentError("S0001E", injected)
            node = write(ctx.store, input)
        except FluentError as exc:
            if ctx.record_mutation:
                ctx.record_mutation(name, alias, input, False)
            raise GraphQLError(str(exc), extensions={"code": exc.code}) from None
        except Exception:
            if ctx.record_mutation:
                ctx.record_mutation(name, alias, input, False)
            raise
        if ctx.record_mutation:
            ctx.record_mutation(name, alias, input, True)
        return node

    return resolve


MUTATIONS: dict[str, Callable[[Store, dict[str, Any]], dict[str, Any]]] = {
    "createLocation": Store.create_location,
    "updateLocation": Store.update_location,
    "createStandardProduct": lambda s, i: s.create_product(False, i),
    "updateStandardProduct": lambda s, i: s.update_product(False, i),
    "createVariantProduct": lambda s, i: s.create_product(True, i),
    "updateVariantProduct": lambda s, i: s.update_product(True, i),
    "createInventoryPosition": Store.create_position,
    "updateInventoryPosition": Store.update_position,
    "createInventoryQuantity": Store.create_quantity,
    "updateInventoryQuantity": Store.update_quantity,
}

SEARCHES = {
    "orders": "orders",
    "fulfilments": "fulfilments",
    "locations": "locations",
    "productCatalogues": "product_catalogues",
    "standardProducts": "standard_products",
    "variantProducts": "variant_products",
    "inventoryCatalogues": "inventory_catalogues",
    "inventoryPositions": "inventory_positions",
    "inventoryQuantities": "inventory_quantities",
    "virtualCatalogues": "virtual_catalogues",
    "virtualPositions": "virtual_positions",
}

QUERY_FIELDS: dict[str, Callable[..., Any]] = {
    "me": resolve_me,
    "order": by_id("orders"),
    "orderById": by_id("orders"),
    "fulfilmentById": by_id("fulfilments"),
    "location": by_id("locations"),
    "locationById": by_id("locations"),
    "productCatalogue": by_ref("product_catalogues"),
    "standardProduct": by_ref("standard_products"),
    "variantProduct": by_ref("variant_products"),
    "product": resolve_product,
    "inventoryCatalogue": by_ref("inventory_catalogues"),
    "inventoryPosition": by_ref("inventory_positions"),
    "inventoryQuantity": by_ref("inventory_quantities"),
    "virtualCatalogue": by_ref("virtual_catalogues"),
    "virtualPosition": by_ref("virtual_positions"),
} | {name: search(table) for name, table in SEARCHES.items()}

OBJECT_FIELDS: dict[tuple[str, str], Callable[..., Any]] = {
    ("Order", "items"): order_items,
    ("Order", "fulfilments"): order_fulfilments,
    ("OrderItem", "product"): item_product,
    ("OrderItem", "order"): order_of,
    ("OrderItem", "fulfilmentChoice"): item_fulfilment_choice,
    ("Fulfilment", "order"): order_of,
    ("Fulfilment", "items"): fulfilment_items,
    ("Fulfilment", "fromAddress"): fulfilment_from_address,
    ("FulfilmentItem", "orderItem"): fulfilment_item_order_item,
    ("FulfilmentItem", "fulfilment"): fulfilment_item_fulfilment,
    ("StoreAddress", "location"): store_address_location,
    ("VariantProduct", "product"): variant_standard,
    ("StandardProduct", "variants"): standard_variants,
    ("InventoryPosition", "product"): position_product,
    ("InventoryPosition", "location"): position_location,
    ("InventoryPosition", "quantities"): position_quantities,
    ("InventoryQuantity", "position"): quantity_position,
}


def attach(schema: GraphQLSchema) -> None:
    """Set every resolver on `schema` (and the `__typename` resolution of `Address` and `Product`)."""
    query, mutation_type = schema.query_type, schema.mutation_type
    assert query is not None and mutation_type is not None
    for name, fn in QUERY_FIELDS.items():
        query.fields[name].resolve = fn
    for name, write in MUTATIONS.items():
        mutation_type.fields[name].resolve = mutation(name, write)
    for (type_name, field_name), fn in OBJECT_FIELDS.items():
        schema.get_type(type_name).fields[field_name].resolve = fn  # type: ignore[union-attr]
    for iface in ("Address", "Product"):
        schema.get_type(iface).resolve_type = lambda value, *_: value["__typename"]  # type: ignore[union-attr]
    missing = set(query.fields) - set(QUERY_FIELDS)
    if missing:
        raise RuntimeError(f"no resolver for Query fields {sorted(missing)}")
