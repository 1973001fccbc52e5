"""Small files for the three feeds, every one with refs of its own, so what the sandbox received tells
which file was sent how often: inventory as CSV (S3) and XML (SFTP), products as JSON, locations as CSV."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

ROWS = 4  # entities per file: small files, the test is about runs


@dataclass
class Drop:
    """The files of one drop and the refs each feed must receive exactly once."""

    s3: list[tuple[str, bytes]] = field(default_factory=list)  # (key under the inbox bucket, body)
    sftp: list[tuple[str, bytes]] = field(default_factory=list)  # (path under the SFTP inbox dir, body)
    inventory: list[tuple[str, str]] = field(default_factory=list)  # (skuRef, locationRef)
    products: list[str] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.s3) + len(self.sftp)


def inventory_csv(tag: str, drop: Drop) -> bytes:
    lines = ["sku,location,qty,status"]
    for j in range(ROWS):
        drop.inventory.append((f"{tag}-SKU-{j}", "LOC-001"))
        lines.append(f"{tag}-SKU-{j},LOC-001,{j + 1},AVAILABLE")
    return ("\n".join(lines) + "\n").encode()


def inventory_xml(tag: str, drop: Drop) -> bytes:
    out = ['<?xml version="1.0" encoding="UTF-8"?>', '<stock xmlns="urn:example:wms">']
    for j in range(ROWS):
        drop.inventory.append((f"{tag}-SKU-{j}", "LOC-002"))
        out.append(
            f'  <item sku="{tag}-SKU-{j}"><location>LOC-002</location><quantity>{j + 3}</quantity>'
            "<status>available</status></item>"
        )
    out.append("</stock>")
    return ("\n".join(out) + "\n").encode()


def products_json(tag: str, drop: Drop) -> bytes:
    rows = []
    for j in range(ROWS):
        ref = f"{tag}-PRD-{j}"
        drop.products.append(ref)
        rows.append(
            {"ref": ref, "type": "STANDARD", "name": f"Product {ref}", "price": "9.95", "currency": "AUD"}
        )
    return json.dumps(rows).encode()


def locations_csv(tag: str, drop: Drop) -> bytes:
    lines = ["ref,name,type,street,city,country,postcode,lat,lng,timezone,mon_open,mon_close"]
    for j in range(ROWS):
        ref = f"{tag}-LOC-{j}"
        drop.locations.append(ref)
        lines.append(
            f"{ref},Store {ref},STORE,{j + 1} George St,Sydney,AU,2000,-33.{8600 + j},151.2093,"
            "Australia/Sydney,0900,1700"
        )
    return ("\n".join(lines) + "\n").encode()


def make_drop(total: int) -> Drop:
    """`total` files, a third per feed (the longest chain of runs a feed must do one after another), each
    feed's files alternating between S3 and SFTP: inventory as CSV on S3 and XML on SFTP."""
    drop = Drop()
    for i in range(total):
        tag, feed, on_s3 = f"F{i:03d}", ("inventory", "products", "locations")[i % 3], (i // 3) % 2 == 0
        target = drop.s3 if on_s3 else drop.sftp
        if feed == "inventory":
            name, body = (
                (f"stock-{tag}.csv", inventory_csv(tag, drop))
                if on_s3
                else (f"wms-{tag}.xml", inventory_xml(tag, drop))
            )
        elif feed == "products":
            name, body = f"products-{tag}.json", products_json(tag, drop)
        else:
            name, body = f"locations-{tag}.csv", locations_csv(tag, drop)
        target.append((f"{feed}/{name}", body))
    return drop


def put_all(drop: Drop, s3_client, bucket: str, sftp_dir: Path) -> None:
    """Everything at once: S3 objects, then SFTP files written under a temporary name and renamed."""
    for key, body in drop.s3:
        s3_client.put_object(Bucket=bucket, Key=key, Body=body)
    for rel, body in drop.sftp:
        path = sftp_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = sftp_dir / (path.name + ".part")  # outside the feed's folder the sensor lists
        tmp.write_bytes(body)
        os.replace(tmp, path)
