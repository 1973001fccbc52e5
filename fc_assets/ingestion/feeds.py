"""The feeds: one declaration per feed — where its files arrive, how they are read, how source columns map
onto the feed's canonical fields and what those must be, the delta strategy and the sender.

Adding a feed is one `Feed(...)` here (or a call of a factory below with other arguments, e.g. another
inventory feed with its own status list); readers, mapping, validation, the rejects file and `fc-assets
check-file` follow from the declaration. Declarations only: no I/O, no heavy imports, and nothing from
`read/` or `deliver/` (the vocabulary is in `spec.py`). What is built from a feed lives with its user:
the mapper and the pandera schema in `read/` (`mapper_for`, `schema_for`), the delta spec and the
sensors' `FileLocation`s in `deliver/plans.py`.

Canonical shapes (what `validate_file` yields, `Feed.arrow_schema`, always ending with `_row`):

- `inventory` — one row per (sku_ref, location_ref): `qty` int64 (0..2,147,483,647), `status`
  (AVAILABLE, RESERVED, COMMITTED, ON_ORDER, DAMAGED, QUARANTINE by default), `expected_on` UTC timestamp,
  `condition`. What the Batch API's inventory entity needs (fluent-api.md §4.3).
- `products` — what `CreateStandardProductInput` / `CreateVariantProductInput` need (§7): `ref`, `type`
  (STANDARD | VARIANT), `status`, `name`, `summary`, `gtin`, `catalogue_ref`, `parent_ref` (a variant's
  standard product, required for VARIANT), `categories` list<string> (split on `|`), `prices`
  list<struct{type, currency, value}> folded from flat columns (`price`/`currency` → DEFAULT,
  `special_price`/`special_currency` → SPECIAL), tax (`tax_country`, `tax_group`, `tax_tariff`) and
  `attributes` list<struct{name, type, value}> from `attr_*` columns (or JSON/XML `attributes` objects, or
  Fluent's own `[{name, type, value}]` list, its types kept: read/attribute_list.py). Nested where Fluent's input is a
  list; one column per scalar input field otherwise.
- `locations` — `CreateLocationInput` (§7), kept flat (one column per input leaf, so a sender builds
  `primaryAddress` and `openingSchedule` from named columns and delta hashes stay readable): `ref`,
  `type`, `status`, `name`, `support_phone`, `default_carrier`, address (`company_name`, `street`,
  `street2`, `city`, `state`, `postcode`, `region`, `country`, `email`, `time_zone` (IANA name)),
  `latitude` −90..90 and `longitude` −180..180 (float64, required: Fluent requires them), `all_hours`,
  `mon_start` … `sun_end` (military HHMM int32, start ≤ end), `networks` list<string>, and `attributes`
  list<struct{name, type, value}> read as the products' are (`CreateLocationInput`/`UpdateLocationInput`
  take `[AttributeInput]`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from fc_assets.ingestion.spec import ROW, AttributeColumns, Field, FormatOptions, xml_name_problem

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


Sender = Literal["batch_inventory", "event_product", "graphql_location"]
Strategy = Literal["hash", "timestamp", "hybrid", "change_column", "full"]


@dataclass(frozen=True)
class Inbox:
    """One place the feed's files arrive. `path` None = the feed's own folder under the settings' inbox
    (`FC_INBOX_S3_URI/<feed>/`, `FC_SFTP_INBOX_DIR/<feed>`). The sensors (sensors.py) own the listing."""

    kind: Literal["s3", "sftp"]
    path: str | None = None  # S3: "bucket/prefix/"; SFTP: directory
    glob: str = "*"
    stability: Literal["atomic", "size_stable", "marker"] | None = (
        None  # None: atomic on S3, size_stable on SFTP
    )
    name: str | None = None  # None: the kind


@dataclass(frozen=True)
class Delta:
    """What to send of a validated file (strategies in delta.py)."""

    strategy: Strategy = "hash"
    timestamp_column: str | None = None  # strategies "timestamp" and "hybrid"
    change_column: str | None = None  # strategy "change_column"
    # rows in the last snapshot but not in this file are sent as deletes (qty 0); also settings
    # FC_SEND_DISAPPEARED=<feed>,<feed>
    send_disappeared: bool = False
    hash_columns: tuple[str, ...] | None = (
        None  # hash only these fields (None: all; hybrid: all but the timestamp)
    )


@dataclass(frozen=True)
class RowRule:
    """A rule across fields of a row; a failing row is rejected on `field` with `reason`. `check(df)` is the
    rule as a DataFrame-level pandera check: it gets the chunk's typed frame (Arrow-backed columns) and
    returns True for good rows. `failing(batch)`, when given, is the same rule over the typed Arrow batch:
    True where a row breaks it, null or False where not. A feed whose row rules all have `failing` is
    validated without pandas or pandera (their import is most of `check-file` on a small file); the two
    forms must agree (test_rules_agree.py)."""

    field: str
    reason: str
    check: Callable[[pd.DataFrame], pd.Series]
    failing: Callable[[pa.RecordBatch], pa.Array] | None = None


@dataclass(frozen=True)
class PriceColumns:
    """Flat canonical fields folded into one `prices` entry of the given type."""

    type: str
    value: str
    currency: str


@dataclass(frozen=True)
class Feed:
    name: str
    fields: tuple[Field, ...]
    keys: tuple[str, ...]
    sender: Sender
    inboxes: tuple[Inbox, ...] = (Inbox("s3"), Inbox("sftp"))
    format_options: FormatOptions = FormatOptions()
    delta: Delta = Delta()
    timezone: str = "UTC"  # for date-times without an offset (never the machine's TZ)
    reject_threshold: float | None = None  # None: settings FC_REJECT_THRESHOLD (default 5 %)
    rules: tuple[RowRule, ...] = ()
    attributes: AttributeColumns | None = None
    prices: tuple[PriceColumns, ...] = ()
    description: str = ""
    # batch_inventory: "daily" = one Batch API job per feed per UTC day, reused by its files until Fluent
    # closes it; "per_file" = a job of its own per file (its batches alone in it)
    job_strategy: Literal["daily", "per_file"] = "daily"

    def __post_init__(self) -> None:
        record = self.format_options.xml_record
        if record is not None and (why := xml_name_problem(record)) is not None:
            raise ValueError(f"feed {self.name!r}: xml_record {record!r} is not an XML element name: {why}")

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    @cached_property
    def price_fields(self) -> frozenset[str]:
        return frozenset(n for p in self.prices for n in (p.value, p.currency))

    @cached_property
    def arrow_schema(self) -> pa.Schema:
        """What `validate_file` yields: typed canonical columns, nested where Fluent's input is, and `_row`."""
        import pyarrow as pa

        from fc_assets.ingestion.spec import ARROW_TYPES, ATTRIBUTE_TYPE, PRICE_TYPE

        cols = [(f.name, ARROW_TYPES[f.kind]) for f in self.fields if f.name not in self.price_fields]
        if self.prices:
            cols.append(("prices", pa.list_(PRICE_TYPE)))
        if self.attributes:
            cols.append((self.attributes.field, pa.list_(ATTRIBUTE_TYPE)))
        return pa.schema([*cols, (ROW, pa.int64())])

    @property
    def columns(self) -> tuple[str, ...]:
        """The canonical columns in `arrow_schema`'s order, without `_row` (known at load, no pyarrow)."""
        names = [f.name for f in self.fields if f.name not in self.price_fields]
        return (
            *names,
            *(["prices"] if self.prices else []),
            *([self.attributes.field] if self.attributes else []),
        )

    @property
    def threshold(self) -> float:
        if self.reject_threshold is not None:
            return self.reject_threshold
        from fc_assets.env_settings import env_setting

        return env_setting("reject_threshold")


# ------------------------------------------------------------------------------------------ inventory

INVENTORY_STATUSES = ("AVAILABLE", "RESERVED", "COMMITTED", "ON_ORDER", "DAMAGED", "QUARANTINE")
INT32_MAX = 2_147_483_647
REF_LENGTH = 255  # Fluent's default string limit


def inventory_feed(
    name: str = "inventory",
    *,
    statuses: tuple[str, ...] = INVENTORY_STATUSES,
    timezone: str = "UTC",
    date_formats: tuple[str, ...] = (),
    send_disappeared: bool = False,
    **kwargs: Any,
) -> Feed:
    return Feed(
        name=name,
        fields=(
            Field(
                "sku_ref",
                aliases=("sku", "sku_id", "sku_code", "product_ref", "item_code"),
                required=True,
                max_length=REF_LENGTH,
            ),
            Field(
                "location_ref",
                aliases=("location", "location_id", "location_code", "store", "store_ref"),
                required=True,
                max_length=REF_LENGTH,
            ),
            Field(
                "qty",
                "int",
                aliases=("quantity", "on_hand", "stock", "stock_on_hand"),
                required=True,
                min=0,
                max=INT32_MAX,
            ),
            Field("status", "code", aliases=("stock_status", "inventory_status"), values=statuses),
            Field(
                "expected_on", "datetime", aliases=("expected_date", "expected", "eta"), formats=date_formats
            ),
            Field("condition", aliases=("stock_condition",), max_length=REF_LENGTH),
        ),
        keys=("sku_ref", "location_ref"),
        sender="batch_inventory",
        delta=Delta(send_disappeared=send_disappeared),
        timezone=timezone,
        description="Stock on hand per SKU and location → Fluent Batch API (LAST_ON_HAND).",
        **kwargs,
    )


# ------------------------------------------------------------------------------------------- products


def _variant_has_parent(df: pd.DataFrame) -> pd.Series:
    return ~((df["type"] == "VARIANT") & df["parent_ref"].isna()).fillna(False)


def _variant_without_parent(batch: pa.RecordBatch) -> pa.Array:
    import pyarrow.compute as pc

    # (a regex, not `pc.equal(..., "VARIANT")`: a Python operand makes pyarrow import pandas)
    variant = pc.match_substring_regex(batch.column("type"), "^VARIANT$")
    return pc.and_kleene(variant, pc.is_null(batch.column("parent_ref")))


def _price_has_currency(value: str, currency: str) -> Callable[[pd.DataFrame], pd.Series]:
    def check(df: pd.DataFrame) -> pd.Series:
        return ~(df[value].notna() & df[currency].isna())

    return check


def _price_without_currency(value: str, currency: str) -> Callable[[pa.RecordBatch], pa.Array]:
    def failing(batch: pa.RecordBatch) -> pa.Array:
        import pyarrow.compute as pc

        return pc.and_(pc.is_valid(batch.column(value)), pc.is_null(batch.column(currency)))

    return failing


def products_feed(name: str = "products", *, list_separator: str = "|", **kwargs: Any) -> Feed:
    currency = r"[A-Z]{3}"
    return Feed(
        name=name,
        fields=(
            Field("ref", aliases=("product_ref", "sku", "code"), required=True, max_length=REF_LENGTH),
            Field(
                "type", "code", aliases=("product_type",), default="STANDARD", values=("STANDARD", "VARIANT")
            ),
            Field("status", "code", aliases=("product_status",), default="ACTIVE", max_length=REF_LENGTH),
            Field("name", aliases=("title", "product_name"), required=True, max_length=REF_LENGTH),
            Field("summary", aliases=("description", "short_description")),
            Field("gtin", aliases=("ean", "upc", "barcode"), pattern=r"[0-9]{8,14}"),
            Field("catalogue_ref", aliases=("catalogue", "catalog_ref", "catalog")),
            Field("parent_ref", aliases=("parent", "parent_sku", "standard_product_ref", "style_ref")),
            Field(
                "categories",
                "list",
                aliases=("category_refs", "category", "category_ref"),
                separator=list_separator,
            ),
            Field("price", "decimal", aliases=("default_price", "price_value"), min=0),
            Field("currency", "code", aliases=("price_currency", "default_currency"), pattern=currency),
            Field("special_price", "decimal", aliases=("sale_price",), min=0),
            Field(
                "special_currency", "code", aliases=("sale_currency",), pattern=currency, fallback="currency"
            ),
            Field("tax_country", "code", aliases=("tax_country_code",), pattern=r"[A-Z]{2}"),
            Field("tax_group", aliases=("tax_class",), max_length=REF_LENGTH),
            Field("tax_tariff", max_length=REF_LENGTH),
        ),
        keys=("ref",),
        sender="event_product",
        rules=(
            RowRule(
                "parent_ref", "required for a VARIANT product", _variant_has_parent, _variant_without_parent
            ),
            RowRule(
                "currency",
                "required when price is set",
                _price_has_currency("price", "currency"),
                _price_without_currency("price", "currency"),
            ),
            RowRule(
                "special_currency",
                "required when special_price is set",
                _price_has_currency("special_price", "special_currency"),
                _price_without_currency("special_price", "special_currency"),
            ),
        ),
        prices=(
            PriceColumns("DEFAULT", "price", "currency"),
            PriceColumns("SPECIAL", "special_price", "special_currency"),
        ),
        attributes=AttributeColumns(),
        description="Standard and variant products → Fluent Event API (UPSERT_PRODUCT).",
        **kwargs,
    )


# ------------------------------------------------------------------------------------------ locations

DAYS = (
    ("mon", "monday"),
    ("tue", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
)


def _day_fields() -> tuple[Field, ...]:
    """`mon_start` … `sun_end`; also found as `monday_open`, or nested `openingSchedule.monStart` (JSON/XML)."""
    out = []
    for short, long in DAYS:
        for part, synonym in (("start", "open"), ("end", "close")):
            names = (f"{short}_{part}", f"{short}_{synonym}", f"{long}_{part}", f"{long}_{synonym}")
            aliases = names[1:] + tuple(
                f"{p}.{n}" for p in ("opening_schedule", "opening_hours") for n in names
            )
            out.append(Field(f"{short}_{part}", "time", aliases=aliases, min=0, max=2359))
    return tuple(out)


def _address(name: str, *aliases: str, **kw: Any) -> Field:
    """An address field, also found nested as `address.<name>` / `primaryAddress.<name>` (JSON/XML)."""
    nested = tuple(f"{p}.{n}" for p in ("address", "primary_address") for n in (name, *aliases))
    return Field(name, aliases=(*aliases, *nested), **kw)


def _opens_before_close(day: str) -> Callable[[pd.DataFrame], pd.Series]:
    def check(df: pd.DataFrame) -> pd.Series:
        return (df[f"{day}_start"] <= df[f"{day}_end"]).fillna(True)

    return check


def _closes_before_open(day: str) -> Callable[[pa.RecordBatch], pa.Array]:
    def failing(batch: pa.RecordBatch) -> pa.Array:
        import pyarrow.compute as pc

        return pc.greater(batch.column(f"{day}_start"), batch.column(f"{day}_end"))

    return failing


def _time_zones() -> tuple[str, ...]:
    import zoneinfo

    return tuple(sorted(zoneinfo.available_timezones()))


def locations_feed(name: str = "locations", **kwargs: Any) -> Feed:
    return Feed(
        name=name,
        fields=(
            Field(
                "ref",
                aliases=("location_ref", "location_code", "store_code", "code"),
                required=True,
                max_length=REF_LENGTH,
            ),
            Field("type", "code", aliases=("location_type",), default="STORE", max_length=REF_LENGTH),
            Field("status", "code", aliases=("location_status",), default="ACTIVE", max_length=REF_LENGTH),
            Field("name", aliases=("location_name", "store_name"), required=True, max_length=REF_LENGTH),
            Field(
                "support_phone", aliases=("phone", "support_phone_number", "telephone"), max_length=REF_LENGTH
            ),
            Field("default_carrier", aliases=("carrier",), max_length=REF_LENGTH),
            _address("company_name", "company", max_length=REF_LENGTH),
            _address("street", "address", "address1", "address_line1", "street1", max_length=REF_LENGTH),
            _address("street2", "address2", "address_line2", max_length=REF_LENGTH),
            _address("city", "town", max_length=REF_LENGTH),
            _address("state", "province", "county", max_length=REF_LENGTH),
            _address("postcode", "postal_code", "zip", "zip_code", max_length=REF_LENGTH),
            _address("region", max_length=REF_LENGTH),
            Field(
                "country",
                "code",
                aliases=("country_code", "address.country", "primary_address.country"),
                max_length=REF_LENGTH,
            ),
            _address("email", "email_address", pattern=r"[^@\s]+@[^@\s]+\.[^@\s]+"),
            _address(
                "time_zone", "timezone", "tz", values=_time_zones, values_error="not an IANA time zone name"
            ),
            _address("latitude", "lat", kind="decimal", required=True, min=-90, max=90),
            _address("longitude", "lng", "lon", "long", kind="decimal", required=True, min=-180, max=180),
            Field(
                "all_hours",
                "bool",
                default="false",
                aliases=(
                    "open_24_hours",
                    "open_24h",
                    "always_open",
                    "opening_schedule.all_hours",
                    "opening_hours.all_hours",
                ),
            ),
            *_day_fields(),
            Field("networks", "list", aliases=("network_refs", "network")),
        ),
        keys=("ref",),
        sender="graphql_location",
        rules=tuple(
            RowRule(f"{d}_end", "closes before it opens", _opens_before_close(d), _closes_before_open(d))
            for d, _ in DAYS
        ),
        attributes=AttributeColumns(),
        description="Stores and warehouses → Fluent GraphQL createLocation/updateLocation.",
        **kwargs,
    )


FEEDS: dict[str, Feed] = {f.name: f for f in (inventory_feed(), products_feed(), locations_feed())}


def get_feed(name: str) -> Feed:
    try:
        return FEEDS[name]
    except KeyError:
        raise KeyError(f"unknown feed {name!r} (feeds: {', '.join(sorted(FEEDS))})") from None


def feed_names() -> list[str]:
    return sorted(FEEDS)


__all__ = [
    "FEEDS",
    "Delta",
    "Feed",
    "Inbox",
    "PriceColumns",
    "RowRule",
    "feed_names",
    "get_feed",
    "inventory_feed",
    "locations_feed",
    "products_feed",
]
