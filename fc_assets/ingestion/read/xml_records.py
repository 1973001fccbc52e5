"""Streaming XML records, safely.

Safety first: before the parser sees a byte, the prolog (XML declaration, processing instructions,
comments, DOCTYPE) is read token by token and any DOCTYPE beyond a bare `<!DOCTYPE name>` is refused: an
internal subset (`[...]`: where billion-laughs expansion and entity declarations live) or an external DTD
(`SYSTEM`/`PUBLIC`: external entities, and entities that would silently stay unexpanded). So such a file
fails in milliseconds whatever its size. lxml then runs with `resolve_entities=False, no_network=True,
load_dtd=False, huge_tree=False` as a second line of defence, and a record holding an entity reference
that was not expanded makes the file unreadable — the text after it (`X&xxe;Y`) is never silently cut. An
undeclared entity (`&nbsp;`, no DTD) is refused naming it and its line (`_halted`).

Speed: files of flat records (`<root><item><sku>…</sku>…</item>…</root>`, the usual export) are read by
`xml_fast` in blocks, without a Python step per element; it hands anything else, from the start, to the
parser below, so both give the same batches and errors.

Records: by default the root's repeated child (`<inventory><meta/><item/><item/>…</inventory>` yields the
`item` elements; see `read_xml`); a feed can name the record element instead (`xml_record="Item"`), which
then matches at any depth outside another record (a wrapper such as `<Items>` is no obstacle). A root holding
elements none of which is a record, or only text, makes the file unreadable at the end of the document (read
as 0 rows it would be an empty snapshot: every row sent before deleted); a root without child elements, or
with distinct empty ones only (`<Export><Items/></Export>`), is a file without records (xml_none.py).
Elements are cleared as soon as their record is converted, so memory is bounded by one record, not the
document; and a record is bounded by `FC_MAX_VALUE_BYTES`, as a JSON record is: once the pieces fed to the
parser wholly inside it hold more than that many bytes, it is a rejected row ("record longer than …") and
its elements are dropped as they end, unread (a 50 MB `<item>` of small children took ~2 GB and a minute).
The count is of whole pieces (PIECE_BYTES) fed after the piece in which the record starts and before the one
in which it ends: never more than the record's length, so a record within the limit is never rejected, and one
longer than the limit by two pieces and its start tag always is (libxml2 reports a start tag once it has
its `>`: a start tag split over pieces is seen in the later one).

Fields of a record, by local name (namespaces allowed and ignored): its attributes, its child elements'
text, and nested children as dotted names (`<Price currency="EUR">9.99</Price>` gives `Price` = `9.99`
and `Price.currency` = `EUR`). Repeated children (`<Category>` twice) become a JSON array text. Text is
never converted: `<Sku>00123</Sku>` stays `00123`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa
from lxml import etree

from fc_assets.ingestion.read.attribute_list import BadAttributes, fold_list, one_name_one_value
from fc_assets.ingestion.read.records import BatchBuilder
from fc_assets.ingestion.read.streams import ByteSource, label, unmarked, unmarked_codec
from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets.ingestion.read.xml_none import Seen
from fc_assets.ingestion.read.xml_prolog import check_prolog

if TYPE_CHECKING:
    from fc_assets.ingestion.read.source_keys import SourceKeys

# The file is fed to lxml's pull parser in pieces of this size and each piece's events are handled before the
# next is read (iterparse's default size: the same memory and speed). Not `iterparse` itself: since lxml 6.2.0
# it drops the events queued from the piece in which a syntax error is found, so the records before the error
# in that piece were never seen and the error named the wrong row (0 of 30 records read where 6.1 read 30).
# The pull parser keeps them (lxml 5-6.2): they are handled first, then the error is raised.
PIECE_BYTES = 32 << 10
# Input fed without an element starting or ending after which the file is refused: libxml2 keeps in memory all
# it is given while it waits for the end of a token (a `;` after a bare `&`, the quote or `>` of a start tag)
# and reports the error only when the input ends, so one slip would hold the rest of the file (RSS grew with
# it: +30 MB a 30 MB). Beyond what a readable file puts between two tags (a text is at most 10 MB of UTF-8 for
# libxml2 without huge_tree: 20 MB as UTF-16, 50 MB written as `&amp;`s).
STALL_BYTES = 64 << 20


@cache
def _close_ends_open_elements() -> bool:
    """Whether a pull parser's close() that fails queues an `end` event for each element still open (lxml 6.2.0
    does, 6.1 did not): those elements' end tags were never read."""
    parser = etree.XMLPullParser(events=("end",))
    parser.feed(b"<a><b>")
    with suppress(etree.XMLSyntaxError):
        parser.close()
    return any(True for _ in parser.read_events())


def _attributes(el: etree._Element) -> list[tuple[str, str]]:
    """`el.attrib.items()`, which looks each value up again from the first attribute (a 2 MB record of 200,000
    attributes took 3 minutes); XPath walks them once."""
    if len(el.attrib) < 64:
        return el.attrib.items()
    return [(value.attrname, str(value)) for value in el.xpath("@*")]


def _local(tag: Any) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) and tag.startswith("{") else str(tag)


def _value(el: etree._Element) -> Any:
    """A repeated child's value for its JSON array: its text, or its fields when it has structure."""
    if len(el) == 0 and not el.attrib:
        return el.text or ""
    fields: dict[str, str | None] = {}
    element_fields(el, "", fields)
    return fields


class UnexpandedEntity(ValueError):
    """A record holds an entity reference the parser did not expand (its text would be cut there)."""


def element_fields(
    el: etree._Element, prefix: str, out: dict[str, str | None], skip: list[etree._Element] | None = None
) -> None:
    """`el`'s fields into `out` (`skip`: children left out, read otherwise)."""
    for key, value in _attributes(el):
        out[prefix + _local(key)] = value
    groups: dict[str, list[etree._Element]] = {}
    for child in el:
        if skip and any(child is s for s in skip):
            continue
        if isinstance(child.tag, str):  # skip comments and processing instructions
            groups.setdefault(_local(child.tag), []).append(child)
        elif child.tag is etree.Entity:
            raise UnexpandedEntity(f"{_local(el.tag)} holds the entity reference {child.text}")
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


def record_fields(el: etree._Element, keys: SourceKeys | None) -> dict[str, str | None] | tuple[str, str]:
    """A record's fields; Fluent's attribute list in it (`<attributes><attribute><name>colour</name><type>…
    </type><value>red</value></attribute>…`, as our XML exports write it; or `<attribute name="colour">red
    </attribute>`) read as JSON's (attribute_list.py), or (why not, the record's XML) when it is not in
    that shape. An `<attributes>` without `<attribute>` children is the object form (`attributes.colour`)."""
    key = None if keys is None else keys.list_key
    lists = (
        [] if key is None else [c for c in el if isinstance(c.tag, str) and _listed(c, key, keys.list_item)]
    )
    fields: dict[str, str | None] = {}
    element_fields(el, "", fields, lists)
    if not lists:
        return fields
    try:
        listed = None
        for child in lists:
            listed = fold_list(_local(child.tag), _list_value(child, keys.list_item), keys, fields, listed)
        return one_name_one_value(fields, keys, listed)
    except BadAttributes as e:
        return str(e), etree.tostring(el, encoding="unicode", with_tail=False)[:1000]


def _listed(child: etree._Element, key: str, item: str) -> bool:
    """Whether `child` is where the attribute list goes in its XML form: `<attributes>` with `<attribute>`
    children, or with text only (which the list's reader rejects, as JSON's `"attributes": "red"`)."""
    if _local(child.tag).lower() != key:
        return False
    elements = [c for c in child if isinstance(c.tag, str)]
    if not elements:
        return not child.attrib
    return any(_local(c.tag).lower() == item for c in elements)


def _list_value(child: etree._Element, item: str) -> Any:
    """The XML list as JSON's: a list of `{name, type, value}` objects (an element other than `<attribute>`,
    its text, so that it is rejected naming it); without children, the text."""
    elements = [c for c in child if isinstance(c.tag, str)]
    if not elements:
        return child.text
    return [_attribute(c) if _local(c.tag).lower() == item else (c.text or "") for c in elements]


def _attribute(el: etree._Element) -> dict[str, Any]:
    """`<attribute>`'s fields: its XML attributes and children (a child with structure: its fields, which
    `value` sends as JSON text; a repeated child, or a child that is also an XML attribute: a list); its own
    text as `value` when it has no children."""
    out: dict[str, Any] = {_local(k): v for k, v in _attributes(el)}
    groups: dict[str, list[etree._Element]] = {}
    for c in el:
        if isinstance(c.tag, str):
            groups.setdefault(_local(c.tag), []).append(c)
    for local, items in groups.items():
        values = [_value(c) for c in items]
        if local in out:  # (also an XML attribute: given twice, as two children are)
            values.insert(0, out[local])
        out[local] = values[0] if len(values) == 1 else values
    if not groups and "value" not in out and (el.text or "").strip():
        out["value"] = el.text
    return out


def _limit(max_record_bytes: int | None) -> int:
    """`max_record_bytes`, or the setting (FC_MAX_VALUE_BYTES) when None."""
    if max_record_bytes is not None:
        return max_record_bytes
    from fc_assets.env_settings import env_setting

    return env_setting("max_value_bytes")


def read_xml(
    src: ByteSource,
    record: str | None,
    chunk_rows: int,
    keys: SourceKeys | None = None,
    max_record_bytes: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches of text columns (plus `_row` = the record's ordinal, 1-based); with `keys`, only the
    columns the feed can use (the others counted in it); `max_record_bytes`: FC_MAX_VALUE_BYTES when None.

    Without a declared record name, the records are the root's children with the first local name that
    occurs twice in a row (so a leading `<Metadata>` block is skipped); a root with a single child
    yields that child as the one record. Flat record files are read by `xml_fast` (the same batches,
    ~20x faster); on anything else it stops and the full parser below reads the file from the start,
    skipping the records already yielded."""
    # UTF-32 with a mark: libxml2 reads it as garbage ("Start tag expected"); without one it reads it as
    # UCS-4 by its `<\0\0\0`, past check_prolog (which does not decode UTF-32): both refused
    utf32 = src.encoding if src.encoding.startswith("utf-32") else unmarked_codec(src.head)
    if utf32 is not None and utf32.startswith("utf-32"):
        raise FileUnreadable(src.name, f"XML in {label(utf32)} is not supported: save it as UTF-8 or UTF-16")
    check_prolog(src.head, src.name)
    from fc_assets.ingestion.read.xml_fast import fast_batches

    limit = _limit(max_record_bytes)
    done = 0
    try:
        for batch in fast_batches(src, record, chunk_rows, keys, max_record_bytes=limit):
            done += batch.num_rows
            yield batch
        return
    except Exception:  # noqa: BLE001 - not a flat record file, or failing: the full parser decides
        pass
    yield from read_xml_full(src, record, chunk_rows, skip=done, keys=keys, max_record_bytes=limit)


def read_xml_full(
    src: ByteSource,
    record: str | None,
    chunk_rows: int,
    skip: int = 0,
    keys: SourceKeys | None = None,
    max_record_bytes: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """`read_xml` element by element (lxml), not yielding the first `skip` records. A syntax error is
    raised after every record before it, wherever it falls in a piece, so its row is the record it is in."""
    builder = BatchBuilder(chunk_rows, keys)
    limit = _limit(max_record_bytes)
    too_long = (f"record longer than {limit:,} bytes (FC_MAX_VALUE_BYTES)", "")
    auto, established = record is None, record is not None
    pending: tuple[str, Any] | None = None  # auto: a depth-2 element not yet confirmed
    n = 0
    seen = Seen()

    def emit(fields: dict[str, str | None] | tuple[str, str]) -> bool:
        nonlocal n
        n += 1
        if n <= skip:
            return False
        return builder.add_error(n, *fields) if isinstance(fields, tuple) else builder.add(n, fields)

    with src.open() as stream:
        parser = etree.XMLPullParser(
            events=("start", "end"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
        )
        queued = parser.read_events()
        depth, current = 0, None
        quiet, stalled = 0, False  # bytes fed since an element started or ended; past STALL_BYTES
        # bytes of the pieces fed wholly inside the open record (started before, not ended in them: a piece
        # in which it starts or ends holds bytes of other records); past the limit: not built
        opened, over, holding = 0, False, None
        try:
            while True:  # a piece fed, then its events handled, then the piece's error if it had one
                stalled = quiet > STALL_BYTES  # then the parser is closed: it parses what it holds, and fails
                piece = b"" if stalled else stream.read(PIECE_BYTES)
                quiet += len(piece)
                holding = current  # (the piece counts if this record is still open after its events)
                error = None
                try:
                    if piece:
                        parser.feed(piece)
                        error = _halted(parser)
                    else:
                        parser.close()
                except etree.XMLSyntaxError as e:
                    error = e
                # a failed close() of lxml 6.2.0 queues an `end` for every element still open, whose end tag was
                # never read (a cut-off record would be taken as complete); libxml2 only parses then what it held
                # back for want of more input (an unfinished token), so no real end tag comes before the error
                flushed = error is not None and not piece and _close_ends_open_elements()
                for event, el in queued:
                    quiet = 0
                    if flushed and event == "end":
                        continue
                    if event == "start":
                        depth += 1
                        if current is None:
                            local = _local(el.tag)
                            if n == 0:  # (for the refusal of a file without records: `no_records`)
                                seen.saw(depth, local, el)
                            if (auto and depth == 2 and (not established or local == record)) or (
                                not auto and local == record
                            ):
                                current, opened = el, 0
                        continue
                    depth -= 1
                    if depth == 0 and n == 0:
                        seen.text(el.text)
                        if len(el) and not seen.held:
                            seen.ended(el[-1])
                    full = False
                    if el is current:
                        current = None
                        fields = too_long if over else record_fields(el, keys)
                        over = False
                        local = _local(el.tag)
                        if established:
                            full = emit(fields)
                        elif pending is not None and pending[0] == local:
                            record, established = local, True
                            emit(pending[1])
                            full = emit(fields)
                            pending = None
                        else:
                            pending = (local, fields)
                    # done with it (or with a record too long: never read): free it and its earlier siblings
                    if (current is None or over) and depth >= 1:
                        if n == 0 and depth == 1 and not seen.held:  # (held: refused whatever the text)
                            seen.ended(el)
                        el.clear(keep_tail=False)
                        parent = el.getparent()
                        if parent is not None:
                            while el.getprevious() is not None:
                                del parent[0]
                    if full:
                        yield builder.flush()
                if current is not None and current is holding:  # the piece was all inside the record
                    opened += len(piece)
                    over = over or opened > limit
                if error is not None:
                    raise error
                if stalled:  # (the document was complete: more than STALL_BYTES after its root)
                    raise FileUnreadable(
                        src.name,
                        f"XML: nothing but comments or spaces in {STALL_BYTES:,} bytes after the root",
                    )
                if not piece:
                    break
        except UnexpandedEntity as e:
            raise FileUnreadable(
                src.name, f"XML {e} that was not expanded: refused (its value would be cut)", row=n + 1
            ) from e
        except etree.XMLSyntaxError as e:
            line = e.position[0] if e.position else getattr(e, "lineno", None)
            row = n + (2 if pending is not None else 1)
            message = f"XML syntax error at line {line}: {e.msg}"
            if e.code == etree.ErrorTypes.ERR_UNDECLARED_ENTITY:
                message += (
                    " (XML predefines only &amp; &lt; &gt; &quot; &apos;: a literal & is written &amp;)"
                )
            if stalled:
                message += (
                    f" (found after {STALL_BYTES:,} bytes without an element start or end: read no further)"
                )
            raise FileUnreadable(src.name, _naming_encoding(src, message), row=row) from e
    if pending is not None:  # a single record under the root
        emit(pending[1])
    if n == 0:
        seen.no_records(src.name, record)
    if len(builder):
        yield builder.flush()


def _halted(parser: etree.XMLPullParser) -> etree.XMLSyntaxError | None:
    """The fatal error a fed piece ended the parse with, when feed() did not raise it: an undeclared entity
    (`&foo;`, `&nbsp;`) with resolve_entities=False stops libxml2 silently; close() then said "no element
    found" at line 0, and a next piece was parsed as a new document ("Start tag expected" at line 1)."""
    for entry in parser.feed_error_log:
        if entry.level_name == "FATAL":
            return etree.XMLSyntaxError(entry.message, entry.type, entry.line, entry.column, entry.filename)
    return None


def _naming_encoding(src: ByteSource, message: str) -> str:
    """A parser error naming the text's encoding when it is not UTF-8 (libxml2's messages do not: "Invalid
    bytes in character encoding", "Char 0x0 out of allowed range")."""
    if src.encoding != "utf-8":
        return f"{message} (read as {label(src.encoding)}, by its byte-order mark)"
    why = unmarked(src.head)
    return message if why is None else f"{why} ({message})"
