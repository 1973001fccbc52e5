"""Downstream tables computed with DuckDB over the extracted entities in the lake, written back as Parquet.

The extracted partitions are update-time windows, so an entity updated on several days has a row in
several partitions, and a re-extracted day can lack an entity whose newer version is not extracted yet.
Both tables therefore read the current-state layer (`current_state.current_sql`: every entity once, at its
newest extracted version, daily or hourly partitions alike) before aggregating. They are small, unpartitioned full refreshes (`<lake>/analytics/<table>/part-0.parquet`),
run by the `analytics_daily` schedule after the extraction and late-update runs.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg

from fc_assets.analytics.current_state import current_asset_name, current_sql
from fc_assets.extraction.entities import INVENTORY_POSITIONS, LOCATIONS, ORDERS, EntitySpec
from fc_assets.resources.storage import Lake, LakeResource

if TYPE_CHECKING:  # connections come from `Lake.duckdb()`, which imports duckdb when a table is computed
    import duckdb
    import pyarrow as pa

ANALYTICS_GROUP = "analytics"
ANALYTICS_DIR = "analytics"

STOCK_BY_LOCATION_SQL = """
WITH positions AS (SELECT * FROM {positions}), locations AS (SELECT ref, name FROM {locations})
SELECT p.location_ref, l.name AS location_name, p.product_ref,
       sum(p.on_hand)::BIGINT AS on_hand, count(*)::BIGINT AS positions, max(p.updated_on) AS last_updated_on
FROM positions p LEFT JOIN locations l ON l.ref = p.location_ref
GROUP BY ALL
ORDER BY p.location_ref, p.product_ref
"""

DAILY_ORDER_KPIS_SQL = """
WITH orders AS (SELECT * FROM {orders})
SELECT CAST(created_on AS DATE) AS day,
       count(*)::BIGINT AS orders,
       coalesce(sum(len(items)), 0)::BIGINT AS order_lines,
       coalesce(sum(list_sum(list_transform(items, i -> i.quantity))), 0)::BIGINT AS units,
       coalesce(sum(total_price), 0)::DOUBLE AS revenue,
       avg(total_price)::DOUBLE AS avg_order_value,
       count(DISTINCT customer_ref)::BIGINT AS customers,
       count(*) FILTER (WHERE status = 'CANCELLED')::BIGINT AS cancelled_orders
FROM orders
WHERE created_on IS NOT NULL
GROUP BY ALL
ORDER BY day
"""


def dataset(lake: Lake, spec: EntitySpec, empty_columns: str) -> str:
    """A DuckDB table expression: the entity's current state (an empty relation if nothing was extracted)."""
    sql = current_sql(lake, spec)
    return f"(SELECT {empty_columns} LIMIT 0)" if sql is None else f"({sql})"


def utc_duckdb(lake: Lake) -> "duckdb.DuckDBPyConnection":
    """The lake's DuckDB connection with days computed in UTC (partitions are UTC days)."""
    con = lake.duckdb()
    con.sql("SET TimeZone = 'UTC'")
    return con


def write_table(lake: Lake, name: str, table: "pa.Table") -> str:
    import pyarrow.parquet as pq  # with numpy ~0.2 s: when a table is written, not at load

    key = f"{ANALYTICS_DIR}/{name}/part-0.parquet"
    with lake.atomic_write(key) as out:
        pq.write_table(table, out, compression="zstd")
    return lake.uri_for(key)


def stock_by_location_table(lake: Lake) -> "pa.Table":
    positions = dataset(
        lake,
        INVENTORY_POSITIONS,
        "NULL::VARCHAR AS id, NULL::VARCHAR AS location_ref, NULL::VARCHAR AS product_ref, "
        "NULL::BIGINT AS on_hand, NULL::TIMESTAMPTZ AS updated_on",
    )
    locations = dataset(
        lake,
        LOCATIONS,
        "NULL::VARCHAR AS id, NULL::VARCHAR AS ref, NULL::VARCHAR AS name, NULL::TIMESTAMPTZ AS updated_on",
    )
    with utc_duckdb(lake) as con:
        return con.sql(
            STOCK_BY_LOCATION_SQL.format(positions=positions, locations=locations)
        ).to_arrow_table()


def daily_order_kpis_table(lake: Lake) -> "pa.Table":
    orders = dataset(
        lake,
        ORDERS,
        "NULL::VARCHAR AS id, NULL::TIMESTAMPTZ AS created_on, NULL::TIMESTAMPTZ AS updated_on, "
        "NULL::DOUBLE AS total_price, NULL::VARCHAR AS customer_ref, NULL::VARCHAR AS status, "
        "NULL::STRUCT(quantity BIGINT)[] AS items",
    )
    with utc_duckdb(lake) as con:
        return con.sql(DAILY_ORDER_KPIS_SQL.format(orders=orders)).to_arrow_table()


def _result(uri: str, table: "pa.Table") -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.num_rows,
            "uri": dg.MetadataValue.path(uri),
            "preview": dg.MetadataValue.md(
                table.slice(0, 10).to_pandas().to_markdown(index=False) if table.num_rows else "_no rows_"
            ),
        }
    )


@dg.asset(
    group_name=ANALYTICS_GROUP,
    deps=[current_asset_name(INVENTORY_POSITIONS), current_asset_name(LOCATIONS)],
    kinds={"duckdb", "parquet"},
    description="Current on-hand stock per location and product (latest version of each position).",
)
def stock_by_location(lake: LakeResource) -> dg.MaterializeResult:
    store = lake.get_lake()
    table = stock_by_location_table(store)
    return _result(write_table(store, "stock_by_location", table), table)


@dg.asset(
    group_name=ANALYTICS_GROUP,
    deps=[current_asset_name(ORDERS)],
    kinds={"duckdb", "parquet"},
    description="Per order-creation day: orders, lines, units, revenue, average order value, customers.",
)
def daily_order_kpis(lake: LakeResource) -> dg.MaterializeResult:
    store = lake.get_lake()
    table = daily_order_kpis_table(store)
    return _result(write_table(store, "daily_order_kpis", table), table)


ANALYTICS_ASSETS: Sequence[dg.AssetsDefinition] = (stock_by_location, daily_order_kpis)

analytics_job = dg.define_asset_job(
    "analytics_daily",
    selection=dg.AssetSelection.groups(ANALYTICS_GROUP),
    description="Recompute the DuckDB tables over the lake.",
)
analytics_schedule = dg.ScheduleDefinition(
    name="analytics_daily_schedule", job=analytics_job, cron_schedule="0 5 * * *", execution_timezone="UTC"
)
