"""Streaming XML records, safely.

Safety first: before the parser sees a byte, the prolog is checked and any DOCTYPE that declares entities
(`<!ENTITY`, general or parameter) is refused — that is where billion-laughs expansion and external
entities (`SYSTEM "file:///etc/passwd"`) live — so such a file fails in milliseconds whatever its size.
lxml then runs with `resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False` as a second
line of defence.

Records: by default every child of the root element with the local name of the first child (so
`<inventory><item/>…</inventory>` yields the `item` elements); a feed can name the record element instead
(`xml_record="Item"`), which then matches at any depth outside another record. Elements are cleared as soon
as their record is converted, so memory is bounded by one record, not the document.

Fields of a record, by local name (namespaces allowed and ignored): its attributes, its child elements'
text, and nested children as dotted names (`<Price currency="EUR">9.99</Price>` gives `Price` = `9.99`
and `Price.currency` = `EUR`). Repeated children (`<Category>` twice) become a JSON array text. Text is
never converted: `<Sku>00123</Sku>` stays `00123`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import orjson
from lxml import etree

from fc_assets.ingestion.records import BatchBuilder
from fc_assets.ingestion.streams import ByteSource
from fc_assets.ingestion.unreadable import FileUnreadable

_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
_ROOT_START = re.compile(rb"<[A-Za-z_:]")
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)


def check_prolog(head: bytes, name: str) -> None:
    """Refuse a DOCTYPE with entity declarations (or one too large to inspect) before parsing."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16: inspect it as ASCII-compatible bytes
        head = head.decode("utf-16", errors="ignore").encode("utf-8", errors="ignore")
    doctype = _DOCTYPE.search(head)
    if doctype is None:
        return
    root = _ROOT_START.search(head, doctype.end())
    # The root start pattern can match inside the DOCTYPE (`<!ENTITY` does not, `<x` in a comment could),
    # so look for entity declarations anywhere up to the root and refuse if the root is not in sight.
    if root is None:
        raise FileUnreadable(name, "XML DOCTYPE too large to inspect (over 256 KiB); refused")
    if _ENTITY.search(head, doctype.end()) is not None:
        raise FileUnreadable(
            name, "XML DOCTYPE declares entities (entity expansion / external entities are refused)"
        )


def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) and tag.startswith("{") else str(tag)


def _value(el: etree._Element) -> Any:
    """A repeated child's value for its JSON array: its text, or its fields when it has structure."""
    if len(el) == 0 and not el.attrib:
        return el.text or ""
    fields: dict[str, str | None] = {}
    element_fields(el, "", fields)
    return fields


def element_fields(el: etree._Element, prefix: str, out: dict[str, str | None]) -> None:
    for key, value in el.attrib.items():
        out[prefix + _local(key)] = value
    groups: dict[str, list[etree._Element]] = {}
    for child in el:
        if isinstance(child.tag, str):  # skip comments and processing instructions
            groups.setdefault(_local(child.tag), []).append(child)
    for local, items in groups.items():
        key = prefix + local
        if len(items) > 1:
            out[key] = orjson.dumps([_value(c) for c in items]).decode()
            continue
        child = items[0]
        if len(child) or child.attrib:
            element_fields(child, key + ".", out)
        if not any(isinstance(c.tag, str) for c in child):
            out[key] = child.text or ""


def read_xml(src: ByteSource, record: str | None, chunk_rows: int) -> Iterator:
    """Record batches of text columns (plus `_row` = the record's ordinal, 1-based)."""
    check_prolog(src.head, src.name)
    builder = BatchBuilder(chunk_rows)
    n = 0
    with src.open() as stream:
        context = etree.iterparse(
            stream, events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False,
            huge_tree=False, remove_comments=True, remove_pis=True,
        )
        depth, current, auto = 0, None, record is None
        try:
            for event, el in context:
                if event == "start":
                    depth += 1
                    if current is None:
                        local = _local(el.tag)
                        if auto and record is None and depth == 2:
                            record = local
                        if local == record and (depth == 2 or not auto):
                            current = el
                    continue
                depth -= 1
                if el is current:
                    n += 1
                    fields: dict[str, str | None] = {}
                    element_fields(el, "", fields)
                    current = None
                    if builder.add(n, fields):
                        yield builder.flush()
                if current is None and depth >= 1:
                    el.clear(keep_tail=False)
                    parent = el.getparent()
                    if parent is not None:
                        while el.getprevious() is not None:
                            del parent[0]
        except etree.XMLSyntaxError as e:
            line = e.position[0] if e.position else getattr(e, "lineno", None)
            raise FileUnreadable(src.name, f"XML syntax error at line {line}: {e.msg}", row=n + 1) from e
    if len(builder):
        yield builder.flush()
