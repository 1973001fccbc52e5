"""The part of Fluent's real GraphQL schema the sandbox serves, and the generator of `schema.graphql`.

The served SDL is *derived* from the real introspection (fluent-schema-23.10.1.json) by keeping only the
types, fields and arguments listed in `SERVED` below, so every name and type is Fluent's by construction
(fc_assets_tests/sandbox/test_schema_subset.py proves it independently). Rules of the derivation:

- a field keeps the arguments listed for it plus every non-null argument the real field has, so a query
  that is valid against the sandbox is valid against Fluent;
- input objects (mutation inputs, keys, `DateRange`) and enums are kept whole, recursively, so every input
  Fluent accepts is accepted here too;
- `implements` lists only the interfaces that are themselves served (`Address`, `Product`).

Regenerate after editing `SERVED`:

    python -m fc_assets.sandbox.schema_subset fc_assets_tests/data/fluent-schema-23.10.1.json \
        > fc_assets/sandbox/schema.graphql
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    build_client_schema,
    get_named_type,
)

PAGING = ["first", "last", "before", "after"]
DATES = ["createdOn", "updatedOn"]
SEARCH = [*DATES, "ref", "type", "status", *PAGING]
ADDRESS_FIELDS = [
    "id",
    "type",
    "createdOn",
    "updatedOn",
    "companyName",
    "name",
    "street",
    "street2",
    "city",
    "state",
    "postcode",
    "region",
    "country",
    "latitude",
    "longitude",
    "ref",
    "timeZone",
    "email",
]
"""Fields of `Address` and `CustomerAddress` (the same in the real schema)."""

# type -> field -> served arguments (None: the field takes no arguments or only its required ones)
SERVED: dict[str, dict[str, list[str] | None]] = {
    "Query": {
        "me": None,
        "orders": [*SEARCH, "retailerId"],
        "order": ["id", "ref"],
        "orderById": None,
        "fulfilments": [*SEARCH, "retailerId"],
        "fulfilmentById": None,
        "locations": SEARCH,
        "location": ["id", "ref"],
        "locationById": None,
        "productCatalogues": SEARCH,
        "productCatalogue": None,
        "standardProducts": [*SEARCH, "catalogue"],
        "standardProduct": None,
        "variantProducts": [*SEARCH, "catalogue"],
        "variantProduct": None,
        "product": None,
        "inventoryCatalogues": SEARCH,
        "inventoryCatalogue": None,
        "inventoryPositions": [*SEARCH, "productRef", "locationRef", "catalogue"],
        "inventoryPosition": None,
        "inventoryQuantities": [*SEARCH, "catalogue"],
        "inventoryQuantity": None,
        "virtualCatalogues": SEARCH,
        "virtualCatalogue": None,
        "virtualPositions": [*SEARCH, "productRef", "groupRef", "catalogue"],
        "virtualPosition": None,
    },
    "Mutation": {
        name: ["input"]
        for name in (
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
        )
    },
    "User": dict.fromkeys(
        [
            "id",
            "ref",
            "username",
            "title",
            "firstName",
            "lastName",
            "primaryEmail",
            "primaryPhone",
            "type",
            "status",
            "attributes",
            "department",
            "country",
            "timezone",
            "promotionOptIn",
            "primaryRetailer",
            "primaryLocation",
            "createdOn",
            "updatedOn",
        ]
    ),
    "Retailer": dict.fromkeys(
        [
            "id",
            "createdOn",
            "updatedOn",
            "status",
            "ref",
            "summary",
            "websiteUrl",
            "primaryEmail",
            "supportEmail",
            "supportPhone",
            "tradingName",
        ]
    ),
    "Attribute": dict.fromkeys(["name", "type", "value"]),
    "PageInfo": dict.fromkeys(["hasPreviousPage", "hasNextPage"]),
    "Order": dict.fromkeys(
        [
            "id",
            "ref",
            "type",
            "status",
            "workflowRef",
            "workflowVersion",
            "createdOn",
            "updatedOn",
            "attributes",
            "retailer",
            "totalPrice",
            "totalTaxPrice",
            "fulfilmentChoice",
            "customer",
            "customerLink",
        ]
    )
    | {"items": ["ref", "status", *PAGING], "fulfilments": ["ref", "status", *PAGING]},
    "OrderItem": dict.fromkeys(
        [
            "id",
            "ref",
            "fulfilmentChoice",
            "product",
            "status",
            "createdOn",
            "updatedOn",
            "quantity",
            "paidPrice",
            "currency",
            "price",
            "taxPrice",
            "taxType",
            "totalPrice",
            "totalTaxPrice",
            "order",
            "attributes",
        ]
    ),
    "Customer": dict.fromkeys(
        [
            "id",
            "ref",
            "status",
            "createdOn",
            "updatedOn",
            "attributes",
            "title",
            "country",
            "firstName",
            "lastName",
            "username",
            "primaryEmail",
            "primaryPhone",
            "timezone",
            "promotionOptIn",
            "retailer",
        ]
    ),
    "CustomerLink": dict.fromkeys(["ref"]),
    "FulfilmentChoice": dict.fromkeys(
        [
            "id",
            "ref",
            "type",
            "status",
            "workflowRef",
            "workflowVersion",
            "createdOn",
            "updatedOn",
            "currency",
            "deliveryFirstName",
            "deliveryLastName",
            "deliveryContact",
            "deliveryEmail",
            "deliverAfter",
            "deliverBefore",
            "dispatchOn",
            "attributes",
            "deliveryInstruction",
            "deliveryType",
            "fulfilmentPrice",
            "fulfilmentTaxPrice",
            "fulfilmentType",
            "pickupLocationRef",
            "deliveryAddress",
        ]
    ),
    "Address": dict.fromkeys(ADDRESS_FIELDS),
    "CustomerAddress": dict.fromkeys(ADDRESS_FIELDS),
    "StoreAddress": dict.fromkeys(
        [
            "id",
            "type",
            "createdOn",
            "updatedOn",
            "directions",
            "companyName",
            "name",
            "street",
            "street2",
            "city",
            "state",
            "postcode",
            "region",
            "country",
            "latitude",
            "longitude",
            "ref",
            "timeZone",
            "location",
            "email",
        ]
    ),
    "Fulfilment": dict.fromkeys(
        [
            "id",
            "ref",
            "status",
            "fulfilmentChoiceRef",
            "workflowRef",
            "workflowVersion",
            "createdOn",
            "updatedOn",
            "attributes",
            "deliveryType",
            "type",
            "eta",
            "expiryTime",
            "order",
            "fromAddress",
            "toAddress",
            "fromLocation",
        ]
    )
    | {"items": ["ref", "status", *PAGING]},
    "FulfilmentItem": dict.fromkeys(
        [
            "id",
            "ref",
            "status",
            "requestedQuantity",
            "filledQuantity",
            "rejectedQuantity",
            "fulfilment",
            "orderItem",
        ]
    ),
    "LocationLink": dict.fromkeys(["ref"]),
    "Location": dict.fromkeys(
        [
            "id",
            "ref",
            "createdOn",
            "updatedOn",
            "type",
            "status",
            "attributes",
            "name",
            "supportPhoneNumber",
            "defaultCarrier",
            "defaultCarrierName",
            "primaryAddress",
            "retailer",
            "openingSchedule",
            "workflowRef",
            "workflowVersion",
        ]
    ),
    "OpeningSchedule": dict.fromkeys(
        [
            "id",
            "createdOn",
            "updatedOn",
            "allHours",
            "monEnd",
            "monStart",
            "tueEnd",
            "tueStart",
            "wedEnd",
            "wedStart",
            "thuEnd",
            "thuStart",
            "friEnd",
            "friStart",
            "satEnd",
            "satStart",
            "sunEnd",
            "sunStart",
        ]
    ),
    "ProductCatalogue": dict.fromkeys(
        [
            "id",
            "createdOn",
            "updatedOn",
            "ref",
            "type",
            "workflowRef",
            "workflowVersion",
            "status",
            "attributes",
            "name",
            "description",
            "retailerRefs",
        ]
    ),
    "Product": dict.fromkeys(
        [
            "id",
            "ref",
            "type",
            "catalogue",
            "name",
            "summary",
            "prices",
            "tax",
            "createdOn",
            "updatedOn",
            "status",
            "attributes",
            "workflowRef",
            "workflowVersion",
        ]
    ),
    "StandardProduct": dict.fromkeys(
        [
            "id",
            "createdOn",
            "updatedOn",
            "ref",
            "type",
            "workflowRef",
            "workflowVersion",
            "status",
            "attributes",
            "gtin",
            "name",
            "summary",
            "prices",
            "tax",
            "catalogue",
        ]
    )
    | {"variants": [*SEARCH]},
    "VariantProduct": dict.fromkeys(
        [
            "id",
            "createdOn",
            "updatedOn",
            "ref",
            "type",
            "workflowRef",
            "workflowVersion",
            "status",
            "attributes",
            "product",
            "gtin",
            "name",
            "summary",
            "prices",
            "tax",
            "catalogue",
        ]
    ),
    "Price": dict.fromkeys(["type", "currency", "value"]),
    "TaxType": dict.fromkeys(["country", "group", "tariff"]),
    "InventoryCatalogue": dict.fromkeys(
        [
            "id",
            "createdOn",
            "updatedOn",
            "ref",
            "type",
            "workflowRef",
            "workflowVersion",
            "status",
            "attributes",
            "name",
            "description",
            "retailerRefs",
        ]
    ),
    "InventoryPosition": dict.fromkeys(
        [
            "id",
            "createdOn",
            "updatedOn",
            "ref",
            "type",
            "workflowRef",
            "workflowVersion",
            "status",
            "attributes",
            "productRef",
            "onHand",
            "locationRef",
            "location",
            "catalogue",
        ]
    )
    | {"product": ["catalogue"], "quantities": [*SEARCH]},
    "InventoryQuantity": dict.fromkeys(
        [
            "id",
            "createdOn",
            "updatedOn",
            "ref",
            "type",
            "workflowRef",
            "workflowVersion",
            "status",
            "attributes",
            "quantity",
            "condition",
            "expectedOn",
            "storageAreaRef",
            "catalogue",
            "position",
        ]
    ),
    "VirtualCatalogue": dict.fromkeys(
        [
            "id",
            "createdOn",
            "updatedOn",
            "ref",
            "type",
            "workflowRef",
            "workflowVersion",
            "status",
            "attributes",
            "name",
            "description",
            "inventoryCatalogueRef",
            "productCatalogueRef",
            "networkIds",
            "controlGroupRef",
            "retailerRefs",
        ]
    ),
    "VirtualPosition": dict.fromkeys(
        [
            "id",
            "createdOn",
            "updatedOn",
            "ref",
            "type",
            "workflowRef",
            "workflowVersion",
            "status",
            "attributes",
            "productRef",
            "quantity",
            "groupRef",
            "catalogue",
        ]
    ),
}

# Relay connections served, each with its edge type (all fields of both).
CONNECTIONS = [
    "Order",
    "OrderItem",
    "Fulfilment",
    "FulfilmentItem",
    "Location",
    "ProductCatalogue",
    "StandardProduct",
    "VariantProduct",
    "InventoryCatalogue",
    "InventoryPosition",
    "InventoryQuantity",
    "VirtualCatalogue",
    "VirtualPosition",
]
for _node in CONNECTIONS:
    SERVED[f"{_node}Connection"] = dict.fromkeys(["edges", "pageInfo"])
    SERVED[f"{_node}Edge"] = dict.fromkeys(["node", "cursor"])

BUILTIN_SCALARS = {"String", "Int", "Float", "Boolean", "ID"}


def load_real_schema(path: str | Path) -> GraphQLSchema:
    """Fluent's schema from an introspection result shaped `{"data": {"__schema": ...}}`."""
    return build_client_schema(json.loads(Path(path).read_text())["data"])


def derive_sdl(real: GraphQLSchema) -> str:
    """The SDL of the served subset of `real` (deterministic: same input, same text)."""
    from graphql.utilities.print_schema import print_deprecated, print_input_value

    inputs: set[str] = set()
    scalars: set[str] = set()

    def note(type_: object) -> None:
        named = get_named_type(type_)  # type: ignore[arg-type]
        if isinstance(named, GraphQLInputObjectType | GraphQLEnumType):
            if named.name not in inputs:
                inputs.add(named.name)
                if isinstance(named, GraphQLInputObjectType):
                    for f in named.fields.values():
                        note(f.type)
        elif isinstance(named, GraphQLScalarType):
            if named.name not in BUILTIN_SCALARS:
                scalars.add(named.name)
        elif named.name not in SERVED:
            raise ValueError(f"{named.name} is referenced by a served field but is not served itself")

    blocks: list[str] = []
    for name in ["Query", "Mutation", *sorted(set(SERVED) - {"Query", "Mutation"})]:
        t = real.get_type(name)
        if not isinstance(t, GraphQLObjectType | GraphQLInterfaceType):
            raise ValueError(f"{name} is not an object or interface type in the real schema")
        lines = []
        for fname, wanted in SERVED[name].items():
            f = t.fields[fname]
            note(f.type)
            keep = [
                (aname, a)
                for aname, a in f.args.items()
                if aname in (wanted or ()) or str(a.type).endswith("!")
            ]
            for _, a in keep:
                note(a.type)
            args = f"({', '.join(print_input_value(an, a) for an, a in keep)})" if keep else ""
            lines.append(f"  {fname}{args}: {f.type}{print_deprecated(f.deprecation_reason)}")
        ifaces = [i.name for i in t.interfaces if i.name in SERVED]
        kind = "interface" if isinstance(t, GraphQLInterfaceType) else "type"
        impl = f" implements {' & '.join(ifaces)}" if ifaces else ""
        blocks.append(f"{kind} {name}{impl} {{\n" + "\n".join(lines) + "\n}")
    for name in sorted(inputs):
        t = real.get_type(name)
        if isinstance(t, GraphQLEnumType):
            values = "\n".join(f"  {v}" for v in t.values)
            blocks.append(f"enum {name} {{\n{values}\n}}")
        else:
            assert isinstance(t, GraphQLInputObjectType)
            fields = "\n".join(f"  {print_input_value(n, f)}" for n, f in t.fields.items())
            blocks.append(f"input {name} {{\n{fields}\n}}")
    blocks.extend(f"scalar {name}" for name in sorted(scalars))
    header = (
        "# Served by the fc_assets Fluent sandbox: a subset of Fluent's schema 23.10.1 (introspection from\n"
        "# openmindlab/fluent-dts, MIT). Generated by fc_assets/sandbox/schema_subset.py; do not edit by hand.\n"
    )
    return header + "\n\n".join(blocks) + "\n"


if __name__ == "__main__":
    sys.stdout.write(derive_sdl(load_real_schema(sys.argv[1])))
