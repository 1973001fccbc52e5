"""Products and locations: the shapes Fluent's create inputs need (fluent-api.md §7), row rules, nested
JSON, and rejects for every rule kind (pattern, allowed values, ranges, times, booleans, time zones)."""

from __future__ import annotations

import io

import orjson

from fc_assets.ingestion.feeds import get_feed
from fc_assets_tests.ingestion_files.helpers import run

PRODUCTS = get_feed("products")
LOCATIONS = get_feed("locations")

PRODUCTS_CSV = b"""ref,type,status,gtin,name,summary,category_refs,price,currency,special_price,tax_country,tax_group,catalogue_ref,attr_colour,attr_Size,parent
P1,standard,active,00012345678905,Shirt,"<p>Nice, soft</p>",TOPS| MEN |,19.90,eur,,gb,STANDARD,PC:MASTER:2,Blue,,
V1,VARIANT,ACTIVE,,Shirt S,,TOPS,19.90,EUR,14.50,GB,STANDARD,PC:MASTER:2,Blue,S,P1
V2,VARIANT,,,Shirt M,,,,,,,,,,M,
P2,BUNDLE,,123,Hat,,,-1,EUR,,,,,,,
P3,,,,Cap,,,5,,,,,,,,
"""


def test_products_fold_prices_categories_and_attributes():
    out = run(PRODUCTS, io.BytesIO(PRODUCTS_CSV), name="products.csv")
    assert (out.report.rows, out.report.accepted, out.report.rejected) == (5, 2, 3)
    p1, v1 = out.accepted.to_pylist()
    assert p1 == {
        "ref": "P1",
        "type": "STANDARD",
        "status": "ACTIVE",
        "name": "Shirt",
        "summary": "<p>Nice, soft</p>",
        "gtin": "00012345678905",
        "catalogue_ref": "PC:MASTER:2",
        "parent_ref": None,
        "categories": ["TOPS", "MEN"],
        "tax_country": "GB",
        "tax_group": "STANDARD",
        "tax_tariff": None,
        "prices": [{"type": "DEFAULT", "currency": "EUR", "value": 19.9}],
        "attributes": [{"name": "colour", "type": "STRING", "value": "Blue"}],
        "_row": 1,
    }
    assert v1["parent_ref"] == "P1"
    assert v1["prices"] == [
        {"type": "DEFAULT", "currency": "EUR", "value": 19.9},
        {"type": "SPECIAL", "currency": "EUR", "value": 14.5},
    ]  # currency falls back
    assert v1["attributes"] == [  # by name (code point order)
        {"name": "Size", "type": "STRING", "value": "S"},
        {"name": "colour", "type": "STRING", "value": "Blue"},
    ]
    assert out.rejects == [
        (3, "parent_ref", "", "required for a VARIANT product"),
        (4, "type", "BUNDLE", "must be one of STANDARD, VARIANT"),
        (4, "gtin", "123", "must match [0-9]{8,14}"),
        (4, "price", "-1", "must be at least 0"),
        (5, "currency", "", "required when price is set"),
    ]
    assert PRODUCTS.arrow_schema.field("prices").type == PRODUCTS.arrow_schema.field("prices").type
    assert out.accepted.schema == PRODUCTS.arrow_schema


LOCATIONS_CSV = b"""location_code,name,type,lat,lng,address1,city,postcode,country,timezone,mon_open,mon_close,tue_open,tue_close,open_24h,phone
S1,Store One,store,51.5074,-0.1278,1 High St,London,SW1A 1AA,gb,Europe/London,08:00,18:00,900,1730,no,
S2,Store Two,,91,0,,,,,Mars/Base,0800,0700,25:00,1860,maybe,
S3,Warehouse,WAREHOUSE,abc,10,,,,,,,,,,true,
S4,Store Four,,10,10,,,,,,0900,0800,,,,
"""


def test_locations_flat_inputs_and_every_rule():
    out = run(LOCATIONS, io.BytesIO(LOCATIONS_CSV), name="locations.csv")
    assert (out.report.rows, out.report.accepted, out.report.rejected) == (4, 1, 3)
    s1 = out.accepted.to_pylist()[0]
    assert {k: v for k, v in s1.items() if v is not None} == {
        "ref": "S1",
        "type": "STORE",
        "status": "ACTIVE",
        "name": "Store One",
        "street": "1 High St",
        "city": "London",
        "postcode": "SW1A 1AA",
        "country": "GB",
        "time_zone": "Europe/London",
        "latitude": 51.5074,
        "longitude": -0.1278,
        "all_hours": False,
        "mon_start": 800,
        "mon_end": 1800,
        "tue_start": 900,
        "tue_end": 1730,
        "attributes": [],  # (no attribute columns: an empty list, as a product's)
        "_row": 1,
    }
    assert out.rejects == [
        (2, "time_zone", "Mars/Base", "not an IANA time zone name"),
        (2, "latitude", "91", "must be between -90 and 90"),
        (2, "all_hours", "maybe", "not a boolean (true/false, yes/no, 1/0)"),
        (2, "tue_start", "25:00", "must be between 0 and 2359"),
        (2, "tue_end", "1860", "minutes must be 00..59"),
        (3, "latitude", "abc", "not a decimal number"),
        (4, "mon_end", "0800", "closes before it opens"),  # row rules judge rows that pass the field rules
    ]


def test_locations_from_nested_json():
    doc = [
        {
            "ref": "S9",
            "name": "Nine",
            "primaryAddress": {
                "street": "x",
                "city": "y",
                "latitude": 1.5,
                "longitude": 2.5,
                "timeZone": "Asia/Tokyo",
            },
            "openingSchedule": {"allHours": True, "monStart": 0, "monEnd": 2359},
            "networks": ["N1", "N2"],
        }
    ]
    out = run(LOCATIONS, io.BytesIO(orjson.dumps(doc)), name="locations.json")
    row = out.accepted.to_pylist()[0]
    assert (row["street"], row["latitude"], row["time_zone"], row["all_hours"]) == (
        "x",
        1.5,
        "Asia/Tokyo",
        True,
    )
    assert (row["mon_start"], row["mon_end"], row["networks"]) == (0, 2359, ["N1", "N2"])


def test_a_decimal_beyond_float_range_is_rejected_not_sent_as_null():
    """A 401-digit price parsed to inf, passed every rule, and went to Fluent as `"value": null` (orjson)."""
    head = PRODUCTS_CSV.splitlines()[0]
    huge = "1" + "0" * 400
    body = b"\n".join(
        [head, f"P9,standard,active,,Big,,,{huge},EUR,,,,,,,".encode(), b"P8,,,,Ok,,,1000.5,EUR,,,,,,,"]
    )
    out = run(PRODUCTS, io.BytesIO(body + b"\n"), name="products.csv")
    assert out.rejects == [(1, "price", huge, "decimal number out of range")]
    assert [p["ref"] for p in out.accepted.to_pylist()] == ["P8"]
    assert b"null" not in orjson.dumps(out.accepted.to_pylist()[0]["prices"])
