"""A corpus of nasty source files, generated in the tests (nothing big is committed).

Each builder returns bytes; `INVENTORY_ROWS` is one logical inventory file with every qty trap, written
out by `inventory_csv` in any dialect (delimiter, BOM, CRLF, blank lines, gzip) so that every variant must
give exactly the same rows, accepted/rejected counts and rejects (`INVENTORY_REJECTS`).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator

import orjson

HEADER = ["SKU", "Location", "QUANTITY", "Status", "Expected_On"]  # mixed case, aliases of the fields

# (sku, location, qty, status, expected_on): rows 1..11 in data-row numbering
INVENTORY_ROWS: list[tuple[str, str, str, str, str]] = [
    ("00123", "LOC-1", "5", "available", "2025-01-15"),  # 1 ok: leading zeros kept, status normalised
    ("A,1", "LOC-1", "7", "", ""),  # 2 ok: quoted delimiter
    ("B\nsecond line", "LOC-2", "12abc", "", ""),  # 3 embedded newline; qty garbage
    ("C", "LOC-2", "N/A", "", ""),  # 4
    ("D", "LOC-3", "3.5", "", ""),  # 5
    ("E", "LOC-3", "-1", "", ""),  # 6
    ("F", "LOC-3", "", "", ""),  # 7 empty qty
    ("G", "LOC-3", "2147483648", "", ""),  # 8 > int32 max
    ("H", "LOC-3", " 12 ", "RESERVED", ""),  # 9 ok: trimmed
    ("I", "LOC-3", "1e3", "", ""),  # 10 exponent is not a whole number
    ('J "quoted"', "LOC-4", "2147483647", "On_Order", "2025-03-01T08:30:00Z"),  # 11 ok: the max
]
INVENTORY_ACCEPTED = [1, 2, 9, 11]
INVENTORY_REJECTS = [  # (row, field, value, reason)
    (3, "qty", "12abc", "not a whole number"),
    (4, "qty", "N/A", "not a whole number"),
    (5, "qty", "3.5", "not a whole number"),
    (6, "qty", "-1", "must be between 0 and 2147483647"),
    (7, "qty", "", "required value is missing"),
    (8, "qty", "2147483648", "must be between 0 and 2147483647"),
    (10, "qty", "1e3", "not a whole number"),
]


def inventory_csv(
    delimiter: str = ",", *, bom: bool = False, crlf: bool = False, blank_lines: bool = True, gz: bool = False
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n" if crlf else "\n")
    writer.writerow(HEADER)
    for i, row in enumerate(INVENTORY_ROWS, 1):
        writer.writerow(row)
        if blank_lines and i in (4, 9):
            out.write("\r\n" if crlf else "\n")
    data = ("\ufeff" if bom else "") + out.getvalue()
    raw = data.encode("utf-8")
    return gzip.compress(raw) if gz else raw


def inventory_records() -> list[dict[str, str]]:
    return [dict(zip(HEADER, row, strict=True)) for row in INVENTORY_ROWS]


def inventory_json(gz: bool = False) -> bytes:
    raw = orjson.dumps(inventory_records(), option=orjson.OPT_INDENT_2)
    return gzip.compress(raw) if gz else raw


def inventory_jsonl(gz: bool = False) -> bytes:
    """JSONL with a blank line (line 3), a malformed line (line 5) and a non-object line (line 8)."""
    lines = [orjson.dumps(r).decode() for r in inventory_records()[:3]]
    lines.insert(2, "")
    lines += [
        '{"SKU": "X1", "Location": "LOC-9", "QUANTITY": 4',
        orjson.dumps(inventory_records()[3]).decode(),
    ]
    lines += [orjson.dumps(r).decode() for r in inventory_records()[4:5]]
    lines += ["[1, 2, 3]"]
    raw = ("\r\n".join(lines) + "\r\n").encode()
    return gzip.compress(raw) if gz else raw


NS_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<inv:InventoryFeed xmlns:inv="urn:example:inventory" xmlns:m="urn:example:meta">
  <m:Metadata><m:FeedID>42</m:FeedID><m:Created>2025-01-15</m:Created></m:Metadata>
  <inv:Item inv:sku="00123" location="LOC-1"><inv:Qty>5</inv:Qty><inv:Status>available</inv:Status></inv:Item>
  <inv:Item sku="00456"><inv:Location><inv:Ref>LOC-2</inv:Ref></inv:Location><inv:Qty> 12 </inv:Qty>
    <!-- a comment --><inv:ExpectedOn>2025-02-01</inv:ExpectedOn></inv:Item>
  <inv:Item sku="0789" location="LOC-3"><inv:Qty>12abc</inv:Qty></inv:Item>
  <inv:Item sku="true" location="LOC-3"><inv:Qty/></inv:Item>
  <inv:Item sku="A&amp;B" location="LOC-4"><inv:Qty><![CDATA[7]]></inv:Qty></inv:Item>
</inv:InventoryFeed>
"""


def billion_laughs() -> bytes:
    ents = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    ]
    return (
        '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n ' + "\n ".join(ents) + "\n]>\n"
        "<inventory><item><sku>&lol9;</sku><location>L</location><qty>1</qty></item></inventory>\n"
    ).encode()


def external_entity(target: str) -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE inventory [<!ENTITY xxe SYSTEM "file://{target}">]>\n'
        "<inventory><item><sku>&xxe;</sku><location>L</location><qty>1</qty></item></inventory>\n"
    ).encode()


class ForwardOnly(io.RawIOBase):
    """A non-seekable stream over bytes (what an S3 body or SFTP file object looks like)."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = min(len(buffer), len(self._data) - self._pos)
        buffer[:n] = self._data[self._pos : self._pos + n]
        self._pos += n
        return n


class Endless(io.RawIOBase):
    """A forward-only stream of `head` then `row` repeated up to `limit` bytes: reading it whole would take
    `limit` bytes of memory, so a reader that yields its first batch early is streaming."""

    def __init__(self, head: bytes, rows: Iterator[bytes], limit: int) -> None:
        self._buf, self._rows, self.limit, self.consumed = head, rows, limit, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while len(self._buf) < len(buffer) and self.consumed + len(self._buf) < self.limit:
            self._buf += next(self._rows)
        n = min(len(buffer), len(self._buf))
        buffer[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        self.consumed += n
        return n


def numbered(template: str) -> Iterator[bytes]:
    """template.format(i) for i = 1, 2, … as bytes, 1,000 at a time."""
    i = 0
    while True:
        yield "".join(template.format(i + k) for k in range(1, 1001)).encode()
        i += 1000
