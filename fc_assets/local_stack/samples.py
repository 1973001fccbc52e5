"""Sample files for the demo: what a retailer's systems drop into the inboxes, bad rows included.

`drop_samples` puts the first set in place when the demo starts (inventory as CSV on S3 and as XML on
SFTP, products as JSON, locations as CSV); `drop_sample` (`fc-assets demo drop FEED`) adds one more file
with new quantities, so the sensors, the delta and the sender can be watched at work.
"""

from __future__ import annotations

import io
import json
import random
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fc_assets.local_stack.demo import StackInfo

SKUS = [f"SKU-{n:05d}" for n in range(1, 121)]
LOCATIONS = [f"LOC-{n:03d}" for n in range(1, 6)]
CITIES = [
    ("Sydney", -33.8688, 151.2093, "Australia/Sydney"),
    ("Melbourne", -37.8136, 144.9631, "Australia/Melbourne"),
    ("Brisbane", -27.4698, 153.0251, "Australia/Brisbane"),
    ("Perth", -31.9523, 115.8613, "Australia/Perth"),
    ("Adelaide", -34.9285, 138.6007, "Australia/Adelaide"),
]


def inventory_csv(rng: random.Random, *, bad_rows: bool = True) -> bytes:
    lines = ["sku,location,qty,status"]
    for sku in SKUS:
        for loc in LOCATIONS[:2]:
            lines.append(f"{sku},{loc},{rng.randint(0, 250)},AVAILABLE")
    if bad_rows:  # 3 of 243 rows: rejected with their row number, field and reason; the file still passes
        lines += ["SKU-00001,LOC-001,N/A,AVAILABLE", "SKU-00002,LOC-001,-4,AVAILABLE", ",LOC-002,7,AVAILABLE"]
    return ("\r\n".join(lines) + "\r\n").encode()


def inventory_xml(rng: random.Random) -> bytes:
    out = ['<?xml version="1.0" encoding="UTF-8"?>', '<stock xmlns="urn:example:wms">']
    for sku in SKUS[:60]:
        loc = LOCATIONS[2]
        out.append(
            f'  <item sku="{sku}"><location>{loc}</location><quantity>{rng.randint(0, 90)}</quantity>'
            "<status>available</status></item>"
        )
    out.append("</stock>")
    return ("\n".join(out) + "\n").encode()


def products_json(rng: random.Random) -> bytes:
    rows = []
    for i, sku in enumerate(SKUS[:40]):
        rows.append(
            {
                "ref": sku,
                "type": "STANDARD",
                "name": f"Demo product {i + 1}",
                "gtin": f"{9300000000000 + i}",
                "categories": "apparel|demo",
                "price": f"{rng.randint(5, 200)}.95",
                "currency": "AUD",
            }
        )
    rows.append({"ref": "SKU-BAD-1", "type": "VARIANT", "name": "Variant without parent"})  # rejected
    return json.dumps(rows, indent=1).encode()


def locations_csv() -> bytes:
    buf = io.StringIO()
    buf.write("ref,name,type,street,city,country,postcode,lat,lng,timezone,mon_open,mon_close\n")
    for n in range(1, 21):  # 20 stores + 1 bad row: 4.8 % rejected, under the 5 % threshold
        city, lat, lng, tz = CITIES[(n - 1) % len(CITIES)]
        buf.write(
            f"LOC-{n:03d},{city} store {n},STORE,{n} George St,{city},AU,2000,{lat + n / 1000:.4f},"
            f"{lng:.4f},{tz},0900,1700\n"
        )
    buf.write("LOC-BAD,Nowhere,STORE,1 Null Rd,Nowhere,AU,0000,123.0,500.0,Mars/Base,0900,1700\n")
    return buf.getvalue().encode()


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S")


def _put_s3(info: StackInfo, key: str, body: bytes) -> str:
    from fc_assets.local_stack.s3_server import s3_client

    s3_client(info.s3_endpoint).put_object(Bucket=info.inbox_bucket, Key=key, Body=body)
    return f"s3://{info.inbox_bucket}/{key}"


def _put_sftp(info: StackInfo, rel: str, body: bytes) -> str:
    """Written through the SFTP protocol (as a partner would), to a temporary name then renamed."""
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(info.known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        info.sftp_host,
        info.sftp_port,
        username="fc",
        password="fc-sftp",
        look_for_keys=False,
        allow_agent=False,
    )
    try:
        sftp = client.open_sftp()
        parts = rel.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            try:
                sftp.stat(d)
            except FileNotFoundError:
                sftp.mkdir(d)
        with sftp.open(rel + ".part", "wb") as f:
            f.write(body)
        sftp.posix_rename(rel + ".part", rel)
    finally:
        client.close()
    return f"sftp://{info.sftp_host}:{info.sftp_port}/{rel}"


def drop_samples(info: StackInfo, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    stamp = _stamp()
    return [
        _put_s3(info, f"locations/locations-{stamp}.csv", locations_csv()),
        _put_s3(info, f"products/products-{stamp}.json", products_json(rng)),
        _put_s3(info, f"inventory/inventory-{stamp}.csv", inventory_csv(rng)),
        _put_sftp(info, f"inbox/inventory/wms-stock-{stamp}.xml", inventory_xml(rng)),
    ]


def drop_sample(info: StackInfo, feed: str, target: str = "s3") -> str:
    rng = random.Random()
    stamp = _stamp()
    if feed == "inventory":
        name, body = (
            (f"inventory-{stamp}.csv", inventory_csv(rng, bad_rows=False))
            if target == "s3"
            else (f"wms-stock-{stamp}.xml", inventory_xml(rng))
        )
    elif feed == "products":
        name, body = f"products-{stamp}.json", products_json(rng)
    elif feed == "locations":
        name, body = f"locations-{stamp}.csv", locations_csv()
    else:
        raise ValueError(f"unknown feed {feed!r} (inventory, products, locations)")
    if target == "s3":
        return _put_s3(info, f"{feed}/{name}", body)
    return _put_sftp(info, f"inbox/{feed}/{name}", body)
