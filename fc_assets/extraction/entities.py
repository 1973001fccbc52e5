"""One declaration per extracted Fluent entity. The asset factory (`assets.py`) builds everything from these.

Adding an entity = one `EntitySpec` here + its `.graphql` file in `queries/` (validated against the real
schema by `fc_assets_tests/extraction/test_queries.py`).

Nested lists (order items, fulfilment items, attributes, prices) are `list<struct>` columns of their parent
rather than child tables: a child row has no update time of its own in a window query (it comes with its
parent, which is what `updatedOn` selects), so keeping it inside the parent's row keeps one object per
partition, re-materialization replaces parent and children together, and every engine unnests it
(`SELECT unnest(items, recursive := true) FROM ...` in DuckDB, `CROSS JOIN UNNEST` in Athena, `explode` in
Spark). Nested connections are paged to the end (`NestedConnection`), never truncated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from fc_assets.extraction.columns import (
    FLOAT,
    INT,
    STRING,
    TIMESTAMP,
    Column,
    arrow_schema,
    attributes_column,
    nested,
)
from fc_assets.extraction.windows import DAILY, Grain

# pandas and pandera (~1.5 s) and pyarrow are imported when a partition is validated, not at load
if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pdv
    import pyarrow as pa

PART_FILE = "part-0.parquet"
"""The one object of a partition: `<lake>/<lake_dir>/<partition_dir>/part-0.parquet`."""


@dataclass(frozen=True)
class ColumnCheck:
    """One check on a column, declared once and run two ways (as ingestion's row rules are: read/rules.py).

    - `failing`: Arrow compute over a row group's column, True where a row fails (null results never
      fail). What validates extracted row groups: no pandas or pandera import (~0.6 s CPU of every
      extraction process, a sixth of a 20,000-order day) and no per-row-group pandas frame.
    - `pandera()`: the same check in pandera's terms, built when `EntitySpec.pandera_schema` is first
      needed: the documented schema, and the oracle the Arrow form is tested against
      (test_validation_agrees.py).

    `report` is the name pandera reports the check under; failures are counted as `<column>: <report>`.
    """

    report: str
    failing: Callable[[pa.Array], pa.Array]
    pandera: Callable[[], pdv.Check]


QUERIES_DIR = Path(__file__).parent / "queries"

__all__ = ["ENTITIES", "ENTITIES_BY_NAME", "EntitySpec", "NestedConnection", "Scope", "Source", "load_query"]


def load_query(name: str) -> str:
    return (QUERIES_DIR / name).read_text()


@dataclass(frozen=True)
class Source:
    """A search query and the dot path of its connection under `data`."""

    query: str
    connection_path: str


@dataclass(frozen=True)
class NestedConnection:
    """A connection inside each node (e.g. `items`), fetched `page_size` at a time with the node.

    When its `pageInfo.hasNextPage` is true, the rest is paged with `query` (taking `$id` of the parent and
    the cursor of the last nested edge) at `connection_path`.
    """

    field: str
    query: str
    connection_path: str
    first_var: str = "itemsFirst"
    page_size: int = 50


@dataclass(frozen=True)
class Scope:
    """Fan-out: the entity is queried once per node of `query` (e.g. per virtual catalogue), passing
    `{key_field: node[key_field]}` as the `variable` (a `...CatalogueKey` input)."""

    query: str
    connection_path: str
    variable: str
    key_field: str = "ref"


@dataclass(frozen=True)
class EntitySpec:
    """Everything the factory needs to extract one entity by `updatedOn` window."""

    name: str
    group: str
    description: str
    sources: tuple[Source, ...]
    columns: tuple[Column, ...]
    nested: tuple[NestedConnection, ...] = ()
    scope: Scope | None = None
    retailer_scoped: bool = False
    key: str = "id"
    updated_column: str = "updated_on"
    grain: Grain = DAILY
    column_checks: tuple[tuple[str, ColumnCheck], ...] = ()
    row_group_rows: int = 10_000

    @property
    def lake_dir(self) -> str:
        return f"fluent/{self.name}"

    @cached_property
    def arrow_schema(self) -> pa.Schema:
        return arrow_schema(self.columns)

    @cached_property
    def pandera_schema(self) -> pdv.DataFrameSchema:
        """Types and nullability from the columns plus the entity's own checks. (Key uniqueness is checked
        across the whole partition by `ValidationReport`, not per row group here.)"""
        import pandas as pd
        import pandera.pandas as pdv

        checks: dict[str, list[pdv.Check]] = {}
        for column, check in self.column_checks:
            checks.setdefault(column, []).append(check.pandera())
        unknown = set(checks) - {c.name for c in self.columns}
        if unknown:
            raise ValueError(f"{self.name}: checks on unknown columns {sorted(unknown)}")
        return pdv.DataFrameSchema(
            {
                c.name: pdv.Column(
                    pd.ArrowDtype(c.arrow_type), checks=checks.get(c.name, []), nullable=c.nullable
                )
                for c in self.columns
            },
            name=self.name,
            strict=True,
            ordered=True,
        )


# ---------------------------------------------------------------------------------------- building blocks


def c(
    name: str, path: str, type: pa.DataType = STRING, *, required: bool = False, json: bool = False
) -> Column:
    return Column(name, path, type, nullable=not required, json=json)


def common(*, ref_required: bool = True) -> list[Column]:
    """Fields every Fluent orchestrateable entity has."""
    return [
        c("id", "id", required=True),
        c("ref", "ref", required=ref_required),
        c("type", "type"),
        c("status", "status"),
        c("workflow_ref", "workflowRef"),
        c("workflow_version", "workflowVersion", INT),
        c("created_on", "createdOn", TIMESTAMP),
        c("updated_on", "updatedOn", TIMESTAMP, required=True),
    ]


def each_item(field_name: str, predicate: Callable[[pa.Array], pa.Array], name: str) -> ColumnCheck:
    """A check on a `list<struct>` column: every element's `field_name` satisfies `predicate` (vectorised;
    an element whose predicate is null fails, a null or empty list passes)."""

    def failing(lists: pa.Array) -> pa.Array:
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        ok = pc.fill_null(predicate(pc.struct_field(pc.list_flatten(lists), field_name)), False)
        bad_rows = pc.filter(pc.list_parent_indices(lists), pc.invert(ok)).to_numpy()
        mask = np.zeros(len(lists), dtype=bool)
        mask[bad_rows] = True
        return pa.array(mask)

    def make_check() -> pdv.Check:
        import pandas as pd
        import pandera.pandas as pdv
        import pyarrow as pa
        import pyarrow.compute as pc

        def check(series: pd.Series) -> pd.Series:
            mask = pc.invert(failing(pa.array(series))).to_numpy(zero_copy_only=False)
            return pd.Series(mask, index=series.index)

        return pdv.Check(check, name=name, error=f"every {field_name} {name}")

    return ColumnCheck(f"every {field_name} {name}", failing, make_check)


def positive(a: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    return pc.greater(a, 0)


def not_negative(a: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    return pc.greater_equal(a, 0)


def not_null(a: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    return pc.is_valid(a)


def _negative(a: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    return pc.fill_null(pc.invert(pc.greater_equal(a, 0)), False)  # NaN fails, as in pandera


def _pandera_non_negative() -> pdv.Check:
    import pandera.pandas as pdv

    return pdv.Check.ge(0)


NON_NEGATIVE = ColumnCheck("greater_than_or_equal_to(0)", _negative, _pandera_non_negative)


def items_connection(query: str, connection_path: str) -> NestedConnection:
    return NestedConnection("items", query, connection_path)


# ------------------------------------------------------------------------------------------- declarations

ORDERS = EntitySpec(
    name="orders",
    group="fluent_orders",
    description="Fluent orders by updatedOn, with items (list<struct>), customer and fulfilment choice.",
    sources=(Source("orders.graphql", "orders"),),
    retailer_scoped=True,
    nested=(items_connection("order_items.graphql", "orderById.items"),),
    columns=(
        *common(),
        c("total_price", "totalPrice", FLOAT),
        c("total_tax_price", "totalTaxPrice", FLOAT),
        c("retailer_id", "retailer.id"),
        c("retailer_ref", "retailer.ref"),
        c("customer_id", "customer.id"),
        c("customer_ref", "customer.ref"),
        c("customer_first_name", "customer.firstName"),
        c("customer_last_name", "customer.lastName"),
        c("customer_email", "customer.primaryEmail"),
        c("customer_phone", "customer.primaryPhone"),
        c("fulfilment_choice_id", "fulfilmentChoice.id"),
        c("fulfilment_choice_ref", "fulfilmentChoice.ref"),
        c("fulfilment_choice_type", "fulfilmentChoice.type"),
        c("fulfilment_choice_status", "fulfilmentChoice.status"),
        c("delivery_type", "fulfilmentChoice.deliveryType"),
        c("pickup_location_ref", "fulfilmentChoice.pickupLocationRef"),
        c("currency", "fulfilmentChoice.currency"),
        c("fulfilment_price", "fulfilmentChoice.fulfilmentPrice", FLOAT),
        c("delivery_first_name", "fulfilmentChoice.deliveryFirstName"),
        c("delivery_last_name", "fulfilmentChoice.deliveryLastName"),
        c("delivery_email", "fulfilmentChoice.deliveryEmail"),
        c("delivery_name", "fulfilmentChoice.deliveryAddress.name"),
        c("delivery_street", "fulfilmentChoice.deliveryAddress.street"),
        c("delivery_street2", "fulfilmentChoice.deliveryAddress.street2"),
        c("delivery_city", "fulfilmentChoice.deliveryAddress.city"),
        c("delivery_state", "fulfilmentChoice.deliveryAddress.state"),
        c("delivery_postcode", "fulfilmentChoice.deliveryAddress.postcode"),
        c("delivery_country", "fulfilmentChoice.deliveryAddress.country"),
        attributes_column(),
        nested(
            "items",
            "items",
            [
                c("id", "id"),
                c("ref", "ref"),
                c("status", "status"),
                c("product_ref", "product.ref"),
                c("product_name", "product.name"),
                c("quantity", "quantity", INT),
                c("price", "price", FLOAT),
                c("paid_price", "paidPrice", FLOAT),
                c("tax_price", "taxPrice", FLOAT),
                c("total_price", "totalPrice", FLOAT),
                c("currency", "currency"),
                c("created_on", "createdOn", TIMESTAMP),
                c("updated_on", "updatedOn", TIMESTAMP),
            ],
            connection=True,
        ),
    ),
    column_checks=(
        ("total_price", NON_NEGATIVE),
        ("items", each_item("quantity", positive, "> 0")),
        ("items", each_item("product_ref", not_null, "is set")),
    ),
)

FULFILMENTS = EntitySpec(
    name="fulfilments",
    group="fluent_orders",
    description="Fluent fulfilments by updatedOn, with items (list<struct>) and their order/location refs.",
    sources=(Source("fulfilments.graphql", "fulfilments"),),
    retailer_scoped=True,
    nested=(items_connection("fulfilment_items.graphql", "fulfilmentById.items"),),
    columns=(
        *common(),
        c("delivery_type", "deliveryType"),
        c("fulfilment_choice_ref", "fulfilmentChoiceRef"),
        c("eta", "eta"),
        c("expiry_time", "expiryTime", TIMESTAMP),
        c("order_id", "order.id"),
        c("order_ref", "order.ref"),
        c("from_location_ref", "fromLocation.ref"),
        c("to_name", "toAddress.name"),
        c("to_city", "toAddress.city"),
        c("to_postcode", "toAddress.postcode"),
        c("to_country", "toAddress.country"),
        attributes_column(),
        nested(
            "items",
            "items",
            [
                c("id", "id"),
                c("ref", "ref"),
                c("status", "status"),
                c("order_item_id", "orderItem.id"),
                c("order_item_ref", "orderItem.ref"),
                c("product_ref", "orderItem.product.ref"),
                c("requested_quantity", "requestedQuantity", INT),
                c("filled_quantity", "filledQuantity", INT),
                c("rejected_quantity", "rejectedQuantity", INT),
            ],
            connection=True,
        ),
    ),
    column_checks=(
        ("items", each_item("filled_quantity", not_negative, ">= 0")),
        ("items", each_item("rejected_quantity", not_negative, ">= 0")),
    ),
)

INVENTORY_POSITIONS = EntitySpec(
    name="inventory_positions",
    group="fluent_inventory",
    description="Fluent inventory positions (product x location per catalogue) by updatedOn.",
    sources=(Source("inventory_positions.graphql", "inventoryPositions"),),
    columns=(
        *common(),
        c("product_ref", "productRef", required=True),
        c("location_ref", "locationRef", required=True),
        c("on_hand", "onHand", INT),
        c("catalogue_ref", "catalogue.ref"),
        attributes_column(),
    ),
)

INVENTORY_QUANTITIES = EntitySpec(
    name="inventory_quantities",
    group="fluent_inventory",
    description="Fluent inventory quantities (on hand, reserved, expected...) by updatedOn.",
    sources=(Source("inventory_quantities.graphql", "inventoryQuantities"),),
    columns=(
        *common(),
        c("quantity", "quantity", INT),
        c("condition", "condition"),
        c("expected_on", "expectedOn", TIMESTAMP),
        c("storage_area_ref", "storageAreaRef"),
        c("catalogue_ref", "catalogue.ref"),
        c("position_ref", "position.ref"),
        c("product_ref", "position.productRef"),
        c("location_ref", "position.locationRef"),
    ),
)

VIRTUAL_POSITIONS = EntitySpec(
    name="virtual_positions",
    group="fluent_inventory",
    description="Fluent virtual positions by updatedOn, queried per virtual catalogue (list read from the API).",
    sources=(Source("virtual_positions.graphql", "virtualPositions"),),
    scope=Scope("virtual_catalogues.graphql", "virtualCatalogues", variable="catalogue"),
    columns=(
        *common(),
        c("product_ref", "productRef", required=True),
        c("group_ref", "groupRef"),
        c("quantity", "quantity", INT),
        c("catalogue_ref", "catalogue.ref", required=True),
    ),
)

_PRODUCT_COLUMNS = (
    *common(),
    c("name", "name", required=True),
    c("summary", "summary"),
    c("gtin", "gtin"),
    c("catalogue_ref", "catalogue.ref"),
    c("parent_ref", "product.ref"),
    nested("prices", "prices", [c("type", "type"), c("currency", "currency"), c("value", "value", FLOAT)]),
    c("tax_country", "tax.country"),
    c("tax_group", "tax.group"),
    c("tax_tariff", "tax.tariff"),
    attributes_column(),
)

PRODUCTS = EntitySpec(
    name="products",
    group="fluent_catalogue",
    description="Fluent standard and variant products by updatedOn (`type` tells them apart; "
    "variants carry `parent_ref`).",
    sources=(
        Source("standard_products.graphql", "standardProducts"),
        Source("variant_products.graphql", "variantProducts"),
    ),
    columns=_PRODUCT_COLUMNS,
    column_checks=(("prices", each_item("value", not_negative, ">= 0")),),
)

LOCATIONS = EntitySpec(
    name="locations",
    group="fluent_catalogue",
    description="Fluent locations (stores, warehouses) by updatedOn, with their primary address.",
    sources=(Source("locations.graphql", "locations"),),
    columns=(
        *common(),
        c("name", "name"),
        c("support_phone_number", "supportPhoneNumber"),
        c("default_carrier", "defaultCarrier"),
        c("default_carrier_name", "defaultCarrierName"),
        c("retailer_id", "retailer.id"),
        c("retailer_ref", "retailer.ref"),
        c("address_name", "primaryAddress.name"),
        c("address_company_name", "primaryAddress.companyName"),
        c("address_street", "primaryAddress.street"),
        c("address_street2", "primaryAddress.street2"),
        c("address_city", "primaryAddress.city"),
        c("address_state", "primaryAddress.state"),
        c("address_postcode", "primaryAddress.postcode"),
        c("address_country", "primaryAddress.country"),
        c("address_latitude", "primaryAddress.latitude", FLOAT),
        c("address_longitude", "primaryAddress.longitude", FLOAT),
        c("address_time_zone", "primaryAddress.timeZone"),
        attributes_column(),
    ),
)

ENTITIES: tuple[EntitySpec, ...] = (
    ORDERS,
    INVENTORY_POSITIONS,
    VIRTUAL_POSITIONS,
    FULFILMENTS,
    INVENTORY_QUANTITIES,
    PRODUCTS,
    LOCATIONS,
)
ENTITIES_BY_NAME = {e.name: e for e in ENTITIES}
