"""XML: streamed records, namespaces and attributes, text kept as text, hostile DOCTYPEs refused.

connector-pitfalls §2 item 14 (numbers/booleans parsed, attributes dropped, singletons not lists) and
item 15 (not streaming)."""

from __future__ import annotations

import gzip
import io
import itertools
import time
from collections.abc import Iterator

import pytest

from fc_assets.ingestion.feeds import get_feed, inventory_feed, products_feed
from fc_assets.ingestion.read import xml_records
from fc_assets.ingestion.read.readers import read_file
from fc_assets.ingestion.read.streams import ByteSource
from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets.ingestion.spec import FormatOptions
from fc_assets_tests.ingestion_files.corpus import (
    NS_XML,
    Endless,
    ForwardOnly,
    billion_laughs,
    external_entity,
    numbered,
)
from fc_assets_tests.ingestion_files.helpers import run

INVENTORY = get_feed("inventory")


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_namespaces_attributes_and_text(tmp_path, gz):
    path = tmp_path / ("feed.xml.gz" if gz else "feed.xml")
    path.write_bytes(gzip.compress(NS_XML) if gz else NS_XML)
    out = run(INVENTORY, path)
    assert out.report.format == "xml"
    # <Metadata> is skipped: the records are the root's repeated child, <Item>
    assert (out.report.rows, out.report.accepted, out.report.rejected) == (5, 3, 2)
    assert out.column("sku_ref") == ["00123", "00456", "A&B"]  # attribute, namespaced attribute; text kept
    assert out.column("location_ref") == ["LOC-1", "LOC-2", "LOC-4"]  # attribute or nested <Location><Ref>
    assert out.column("qty") == [5, 12, 7]  # CDATA is text
    assert out.column("status") == ["AVAILABLE", None, None]
    assert out.rejects == [
        (3, "qty", "12abc", "not a whole number"),
        (4, "qty", "", "required value is missing"),
    ]


def test_declared_record_element_at_any_depth_and_repeated_children_as_lists():
    xml = b"""<catalog><meta><count>3</count></meta><products>
      <product ref="P-001" type="standard"><name>Shirt</name><gtin>00012345678905</gtin>
        <category>TOPS</category><category>MEN</category><price currency="EUR">19.90</price></product>
      <product ref="P-002"><name>Cap</name><category>HATS</category><price currency="EUR">5</price></product>
      <product ref="P-003" type="VARIANT"><name>Shirt S</name></product>
    </products></catalog>"""
    feed = products_feed(format_options=FormatOptions(xml_record="product"))
    out = run(feed, io.BytesIO(xml), name="products.xml")
    assert (out.report.rows, out.report.accepted, out.report.rejected) == (3, 2, 1)
    assert out.column("gtin") == ["00012345678905", None]  # not a number: leading zeros kept
    assert out.column("categories") == [["TOPS", "MEN"], ["HATS"]]  # a single child is a list of one
    assert out.column("prices") == [
        [{"type": "DEFAULT", "currency": "EUR", "value": 19.9}],
        [{"type": "DEFAULT", "currency": "EUR", "value": 5.0}],
    ]
    assert out.rejects == [(3, "parent_ref", "", "required for a VARIANT product")]


def test_a_single_record_under_the_root():
    xml = b"<stock><item><sku>1</sku><location>L</location><qty>2</qty></item></stock>"
    assert run(INVENTORY, io.BytesIO(xml), name="one.xml").column("qty") == [2]


def test_billion_laughs_is_refused_within_a_second():
    start = time.perf_counter()
    with pytest.raises(FileUnreadable, match="DOCTYPE declares entities") as e:
        run(INVENTORY, io.BytesIO(billion_laughs()), name="lol.xml")
    assert time.perf_counter() - start < 1.0
    assert str(e.value).startswith("lol.xml: ")


def test_external_entities_are_refused_and_nothing_is_read(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-VALUE")
    before = secret.stat().st_atime_ns
    path = tmp_path / "xxe.xml"
    path.write_bytes(external_entity(str(secret)))
    with pytest.raises(FileUnreadable, match="DOCTYPE declares entities") as e:
        run(INVENTORY, path)
    assert "TOP-SECRET" not in str(e.value)
    assert secret.stat().st_atime_ns == before


def test_entities_are_not_expanded_even_past_the_prolog_check():
    """Defence in depth: lxml itself runs with resolve_entities=False, no_network=True, load_dtd=False."""
    from fc_assets.ingestion.read import xml_records
    from fc_assets.ingestion.read.streams import ByteSource

    src = ByteSource(io.BytesIO(billion_laughs()), "lol.xml")
    original = xml_records.check_prolog
    xml_records.check_prolog = lambda head, name: None
    try:
        start = time.perf_counter()
        try:
            batches = list(xml_records.read_xml(src, None, 100))
            text = str(batches[0].to_pylist())
            assert "lollol" not in text
        except FileUnreadable:
            pass  # libxml2 may refuse the undefined-entity reference instead: also fine
        assert time.perf_counter() - start < 1.0
    finally:
        xml_records.check_prolog = original


def test_huge_prolog_and_malformed_xml_are_unreadable():
    hidden = b"<!--" + b"x" * (300 * 1024) + b"-->" + billion_laughs()
    with pytest.raises(FileUnreadable, match="prolog too large"):
        run(INVENTORY, io.BytesIO(hidden), name="hidden.xml")
    broken = b"<stock><item><sku>1</sku><location>L</location><qty>2</qty></item><item><sku>2</sku></stock>"
    with pytest.raises(FileUnreadable, match=r"broken.xml: row 2: XML syntax error at line 1"):
        run(INVENTORY, ForwardOnly(broken), name="broken.xml")


def _records_then_a_bad_tag(bad_at: int) -> tuple[bytes, int]:
    """A file of 2,000 one-line records whose record that runs over byte `bad_at` holds a mismatched end tag;
    (the file, that record's 1-based ordinal)."""
    lines = [
        b"<item><sku>%d</sku><location>L</location><qty>%d</qty></item>\n" % (i, i) for i in range(1, 2001)
    ]
    at, bad = len(b"<stock>\n"), 0
    while at + len(lines[bad]) <= bad_at:
        at += len(lines[bad])
        bad += 1
    lines[bad] = lines[bad].replace(b"</sku>", b"</skux>")
    return b"<stock>\n" + b"".join(lines) + b"</stock>\n", bad + 1


def _read_until_refused(data: bytes, chunk_rows: int = 1) -> Iterator[tuple[str, list[int], FileUnreadable]]:
    """(reader, rows read, its refusal) for the parser alone and for the fast path (which reads a seekable
    file) handing the file on to it, in batches of `chunk_rows`."""
    for reader, stream in (
        (xml_records.read_xml_full, ForwardOnly(data)),
        (xml_records.read_xml, io.BytesIO(data)),
    ):
        rows: list[int] = []
        with pytest.raises(FileUnreadable) as caught:
            for batch in reader(ByteSource(stream, "f.xml"), None, chunk_rows):
                rows += batch.column("_row").to_pylist()
        yield reader.__name__, rows, caught.value


@pytest.mark.parametrize(
    "bad_at",
    [1_900, xml_records.PIECE_BYTES - 30, xml_records.PIECE_BYTES, 2 * xml_records.PIECE_BYTES + 10_000],
    ids=["first_piece", "straddling_a_piece_end", "piece_start", "mid_third_piece"],
)
def test_every_record_before_a_syntax_error_is_read_and_the_error_names_its_record(bad_at):
    """With lxml 6.2.0's iterparse the records parsed ahead of the error in the same read were dropped (a bad
    tag at record 31: 0 records, the error at row 1): the parser's reader must hand on each record before the
    error, wherever the error falls in what it reads, and name the record and line it is in."""
    data, bad = _records_then_a_bad_tag(bad_at)
    line = data[: data.index(b"</skux>")].count(b"\n") + 1
    for name, rows, error in _read_until_refused(data):
        assert rows == list(range(1, bad)), name
        assert error.row == bad
        assert str(error).startswith(f"f.xml: row {bad}: XML syntax error at line {line}: ")


@pytest.mark.parametrize(
    "ending, bad",
    [
        (b"<item><sku>2001</sku><location>L</location><qty>12", 2001),  # cut inside a value
        (b"<item><sku>2001</sku><location>L</location><qt", 2001),  # cut inside a tag
        (
            b"<item><sku>2001</sku><location>L</location><qty>1</qty></item>\n",
            2002,
        ),  # root not closed: all read
        (
            b"<item><sku>2001 & 2002</sku><location>L</location><qty>1</qty></item></stock>",
            2001,
        ),  # no `;` after
    ],
    ids=["cut_in_a_value", "cut_in_a_tag", "root_not_closed", "bare_ampersand"],
)
def test_an_error_found_at_the_end_of_the_input_names_its_record_and_yields_nothing_of_it(ending, bad):
    """Errors libxml2 finds only when the input ends (a file cut off in transfer, a bare `&` with no `;` after it
    anywhere: libxml2 waits for more input): lxml 6.2.0's pull parser then adds an `end` event for every element
    still open, so the cut record was read as complete (`qty` = "12") and the error named the record after it."""
    records = b"".join(
        b"<item><sku>%d</sku><location>L</location><qty>%d</qty></item>\n" % (i, i) for i in range(1, 2001)
    )
    data = b"<stock>\n" + records + ending
    for name, rows, error in _read_until_refused(data):
        assert rows == list(range(1, bad)), name
        assert error.row == bad, name
        assert str(error).startswith(f"f.xml: row {bad}: XML syntax error at line 200")


@pytest.mark.parametrize(
    "head, rows",
    [
        (b"<stock><item><sku>a & b</sku></item>", b"<item><sku>1</sku></item>" * 1000),
        (b"<stock><item sku='", b"x" * 25_000),
    ],
    ids=["bare_ampersand", "unclosed_attribute"],
)
def test_a_token_that_never_ends_is_refused_without_buffering_the_file(head, rows):
    """A one-byte slip (`a & b` with no `;` anywhere after it) or an attribute whose quote never closes: the
    parser read everything that followed into memory before it reported the error at the end (a 60 MB file:
    +30 MB RSS over a 30 MB one; a 120 MB attribute: 414 MB peak RSS). It gives up after STALL_BYTES."""
    stream = Endless(head, itertools.repeat(rows), limit=160 << 20)
    with pytest.raises(FileUnreadable) as caught:
        for _ in xml_records.read_xml_full(ByteSource(stream, "f.xml"), None, 1000):
            pass
    assert stream.consumed < xml_records.STALL_BYTES + (1 << 20)
    assert str(caught.value).startswith("f.xml: row 1: XML syntax error at line 1: ")
    assert "without an element start or end: read no further" in str(caught.value)


def test_a_record_of_very_many_attributes_is_read_in_linear_time():
    """lxml's `attrib.items()` finds each value from the first attribute again: one element of 120,000
    attributes (a 1.3 MB file) took ~25 s, 200,000 three minutes. Its attributes are read in one pass."""
    attributes = b" ".join(b"a%d='%d'" % (i, i) for i in range(120_000))
    xml = (
        b"<stock><item sku='S1' location='L' qty='1' "
        + attributes
        + b"/><item sku='S2' location='L' qty='2'/></stock>"
    )
    start = time.process_time()  # CPU, not wall: ~1 s, 5.2 s of wall at load 7-11 (quadratic: ~25 s of CPU)
    out = run(INVENTORY, io.BytesIO(xml), name="wide.xml")
    assert time.process_time() - start < 8
    assert out.column("sku_ref") == ["S1", "S2"] and out.column("qty") == [1, 2]
    stream = ForwardOnly(
        b"<stock><item xmlns:p='urn:p' " + attributes.replace(b"a1", b"p:a1") + b"/></stock>"
    )
    (batch,) = xml_records.read_xml_full(ByteSource(stream, "f.xml"), None, 10)
    assert batch.column("a0").to_pylist() == ["0"] and batch.column("a119999").to_pylist() == ["119999"]
    assert batch.column("a1").to_pylist() == ["1"] and batch.column("a10").to_pylist() == ["10"]
    assert sum(name[0] == "a" for name in batch.schema.names) == 120_000


def test_the_pull_parser_keeps_the_events_before_a_syntax_error():
    """What the reader relies on, asked of the installed lxml directly: the events of a fed piece that ends in a
    syntax error stay readable after the error (iterparse dropped them from lxml 6.2.0 on)."""
    from lxml import etree

    parser = etree.XMLPullParser(events=("end",), tag="item", resolve_entities=False, no_network=True)
    records = b"".join(b"<item><sku>%d</sku></item>" % i for i in range(1, 31))
    with pytest.raises(etree.XMLSyntaxError):
        parser.feed(b"<stock>" + records + b"<item><sku>31</skux></item></stock>")
    assert [el.findtext("sku") for _, el in parser.read_events()] == [str(i) for i in range(1, 31)]


def test_streaming_does_not_build_the_document():
    stream = Endless(
        b"<stock>", numbered("<item sku='{0:09d}' location='L'><qty>{0}</qty></item>"), limit=1 << 30
    )
    first = next(read_file(inventory_feed(), stream, name="big.xml", chunk_rows=5_000))
    assert first.num_rows == 5_000 and first.column("sku_ref")[0].as_py() == "000000001"
    assert stream.consumed < 8 << 20


def _records_with_an_entity(bad: int, total: int, where: str) -> tuple[bytes, int]:
    """`total` one-line inventory records, record `bad` holding the undeclared entity `&foo;` (in its text or
    an attribute value); (the file, the entity's line)."""
    lines = [
        b"<item><sku>S%d</sku><location>L</location><qty>%d</qty></item>\n" % (i, i)
        for i in range(1, total + 1)
    ]
    lines[bad - 1] = (
        lines[bad - 1].replace(b"<sku>", b"<sku>X&foo;")
        if where == "text"
        else lines[bad - 1].replace(b"<item>", b'<item note="&foo;">')
    )
    return b"<stock>\n" + b"".join(lines) + b"</stock>\n", bad + 1


@pytest.mark.parametrize(
    "bad, where",
    [(1, "text"), (2, "attribute"), (2_500, "text")],
    ids=["first_record", "attribute_value", "past_fast_blocks_and_pieces"],
)
def test_an_undeclared_entity_is_named_with_its_line_by_both_readers(monkeypatch, bad, where):
    """lxml's pull parser (resolve_entities=False) stops at an undeclared entity without raising: its close()
    then said "no element found" at line 0, or, with more pieces to feed, a fresh parse of the rest said "Start
    tag expected, '<' not found, line 1". The refusal names the entity and its line, and the record it is in,
    from the parser alone and from the fast path (small blocks: it reads records before the entity, then
    hands the file on)."""
    from fc_assets.ingestion.read import xml_fast

    data, line = _records_with_an_entity(bad, 3_000, where)
    monkeypatch.setattr(xml_fast, "BLOCK_BYTES", 8 << 10)
    fast_rows = []
    original = xml_fast.fast_batches

    def counted(*args, **kwargs):
        for batch in original(*args, **kwargs):
            fast_rows.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(xml_fast, "fast_batches", counted)
    for name, rows, error in _read_until_refused(data, 100):
        assert rows == list(range(1, (bad - 1) // 100 * 100 + 1)), name  # (whole batches)
        assert str(error).startswith(
            f"f.xml: row {bad}: XML syntax error at line {line}: Entity 'foo' not defined"
        ), name
    assert sum(fast_rows) == (2_400 if bad == 2_500 else 0)  # (the fast path read the records before)


@pytest.mark.parametrize(
    "bad, why",
    [
        ("", "empty"),
        ("my item", "' ' cannot be in a name"),
        (" item", "' ' cannot start a name"),
        ("1item", "'1' cannot start a name"),
        ("items/item", "'/' cannot be in a name (a path: name the record element alone)"),
        ("ns:Item", "':' cannot be in a local name (without its prefix: 'Item')"),
        ("-item", "'-' cannot start a name"),
        ("item>", "'>' cannot be in a name"),
    ],
)
def test_an_invalid_xml_record_fails_the_feed_declaration_naming_the_feed(bad, why):
    """Before, any string was declared, and a file was read matching it against element names: "the feed's
    xml_record <items/item> matches no element in the file" for every file, at run time."""
    with pytest.raises(ValueError) as caught:
        inventory_feed(name="stock_xml", format_options=FormatOptions(xml_record=bad))
    assert str(caught.value) == f"feed 'stock_xml': xml_record {bad!r} is not an XML element name: {why}"


def test_xml_record_names_xml_allows_are_declared_and_read():
    """Names beyond ASCII, with `-`, `.` and `_`: what XML allows in a name is declared and matched."""
    xml = "<Bestand><Größe-1.x _a='1'><sku>A</sku><location>L</location><qty>3</qty></Größe-1.x></Bestand>"
    feed = inventory_feed(name="stock_xml", format_options=FormatOptions(xml_record="Größe-1.x"))
    assert run(feed, io.BytesIO(xml.encode()), name="b.xml").column("qty") == [3]
    for good in ("_item", "Item", "item_2", "ñ", "a·b"):
        inventory_feed(format_options=FormatOptions(xml_record=good))
