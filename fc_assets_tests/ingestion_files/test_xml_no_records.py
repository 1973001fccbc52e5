"""An XML file whose records are not where the feed says (`xml_record` misspelt, another system's export):
unreadable, naming the file, the record element expected and the root's child elements found — not a file of
0 rows, which with `send_disappeared` deletes every row sent before (the pipeline's side:
ingestion_flow/test_xml_record_missing.py). A root without child elements stays a file without records.

Before: each refused case here was read as 0 rows, accepted (`check-file` exit 0)."""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import subprocess
import sys

import pytest

from fc_assets.ingestion.feeds import inventory_feed
from fc_assets.ingestion.read import xml_fast, xml_records
from fc_assets.ingestion.read.streams import ByteSource
from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets.ingestion.spec import FormatOptions
from fc_assets_tests.ingestion_files.corpus import ForwardOnly
from fc_assets_tests.ingestion_files.helpers import FC_ASSETS, run
from fc_assets_tests.ingestion_files.test_xml_fast import assert_same, both, generate


def feed(record: str | None = "item"):
    return inventory_feed(format_options=FormatOptions(xml_record=record))


def items(tag: str, n: int = 3, indent: str = "\n  ") -> str:
    return "".join(
        f"{indent}<{tag}><sku>S{i}</sku><location>L</location><qty>{i}</qty></{tag}>" for i in range(n)
    )


def doc(body: str, root: str = "inventory", decl: bool = True) -> bytes:
    head = '<?xml version="1.0" encoding="UTF-8"?>\n' if decl else ""
    return f"{head}<{root}>{body}\n</{root}>\n".encode()


def refused(data: bytes, record: str | None = "item", name: str = "f.xml") -> str:
    with pytest.raises(FileUnreadable) as e:
        run(feed(record), io.BytesIO(data), name=name)
    assert str(e.value).startswith(f"{name}: "), str(e.value)
    return e.value.message


NOT_RECORDS = {
    "case": (
        doc(items("Item")),
        "item",
        "the root <inventory> holds <Item>; element names are case-sensitive",
    ),
    "other_name": (doc(items("row")), "item", "the root <inventory> holds <row>)"),
    "after_meta": (
        doc("<meta><n>3</n></meta>" + items("Record")),
        "item",
        "the root <inventory> holds <meta>, <Record>)",
    ),
    "nested_other": (
        doc("<Header/><Items>" + items("Product") + "</Items>", root="Export"),
        "item",
        "the root <Export> holds <Header>, <Items>)",
    ),
    "namespaced": (
        b'<n:inventory xmlns:n="urn:n">' + items("n:Item").encode() + b"</n:inventory>",
        "item",
        "the root <inventory> holds <Item>; element names are case-sensitive",
    ),
    "root_holds_the_fields": (
        b"<Item><sku>S</sku><location>L</location><qty>1</qty></Item>",
        "item",
        "the root <Item> holds <sku>, <location>, <qty>; element names are case-sensitive",
    ),
}


@pytest.mark.parametrize("case", sorted(NOT_RECORDS))
def test_records_under_another_name_are_refused_naming_what_was_found(case):
    data, record, found = NOT_RECORDS[case]
    message = refused(data, record)
    assert message.startswith(f"the feed's xml_record <{record}> matches no element in the file ("), message
    assert found in message, message


@pytest.mark.parametrize("reader", ["read_xml", "fast_then_parser_gz", "forward_only", "utf16"])
def test_refused_whichever_way_the_file_is_read(reader):
    data = doc(items("Item", 50))
    if reader == "fast_then_parser_gz":
        data = gzip.compress(data)
    elif reader == "utf16":
        data = codecs.BOM_UTF16_LE + data.decode().replace("UTF-8", "UTF-16").encode("utf-16-le")
    source = ForwardOnly(data) if reader == "forward_only" else io.BytesIO(data)
    with pytest.raises(FileUnreadable, match=r"^f\.xml: the feed's xml_record <item> matches no element"):
        run(feed(), source, name="f.xml")


def test_the_names_found_are_the_first_few_distinct_ones_escaped():
    long = "N" + "x" * 100
    body = "".join(f"<e{i}/><e{i}/>" for i in range(12)) + f"<{long}/><a\u00b7b/>"
    message = refused(doc(body))
    names = ", ".join(f"<e{i}>" for i in range(10))
    assert f"holds {names}, …)" in message, message
    assert long not in message
    short = refused(doc(f"<{long} a='1'/><caf\u00e9\u0300/>"))
    assert f"<N{'x' * 39}…>, <caf\u00e9\u0300>" in short, short


def test_a_record_name_with_control_characters_is_shown_escaped():
    """Refused where the feed is declared (it names no element: test_xml_files.py), shown escaped."""
    with pytest.raises(ValueError) as e:
        feed("it\tem\n")
    message = str(e.value)
    assert "xml_record 'it\\tem\\n' is not an XML element name: '\\t' cannot be in a name" in message
    assert "\t" not in message and "\n" not in message


@pytest.mark.parametrize(
    "data",
    [
        b"<inventory/>",
        b"<inventory></inventory>",
        b'<?xml version="1.0"?>\n<inventory>\n  \n</inventory>\n',
        b"<inventory>\n  <!-- no stock today -->\n  <?app note?>\n</inventory>",
        b'<inventory xmlns="urn:x" exported="2026-12-03"/>',
        gzip.compress(b"<inventory>\n</inventory>"),
        codecs.BOM_UTF16_LE + '<?xml version="1.0"?><inventory> </inventory>'.encode("utf-16-le"),
    ],
    ids=["self_closing", "open_close", "whitespace", "comment_pi", "attributes", "gzip", "utf16"],
)
@pytest.mark.parametrize("record", ["item", None], ids=["declared", "detected"])
def test_a_root_without_child_elements_is_a_file_without_records(data, record):
    out = run(feed(record), io.BytesIO(data), name="empty.xml")
    assert (out.report.rows, out.report.accepted, out.report.rejected) == (0, 0, 0)


@pytest.mark.parametrize("record", ["item", None], ids=["declared", "detected"])
def test_a_root_holding_only_text_is_refused(record):
    message = refused(b"<inventory>ERROR: export\nfailed <![CDATA[x]]></inventory>", record)
    assert message == "the root <inventory> holds text and no element: 'ERROR: export\\nfailed x'"


def test_records_nested_deeper_are_still_read_by_their_declared_name():
    """`xml_record` matches at any depth (outside another record): a wrapper is no refusal."""
    data = doc("<Header/><Items>" + items("item") + "</Items>", root="Export")
    assert run(feed("item"), io.BytesIO(data), name="f.xml").column("sku_ref") == ["S0", "S1", "S2"]


def test_detected_records_are_never_a_file_of_0_rows():
    """Without `xml_record` the root's repeated child (or its single child) is the record: a root with
    children always has one, so 0 rows only come from a root without child elements."""
    out = run(feed(None), io.BytesIO(doc(items("Item"))), name="f.xml")
    assert out.column("sku_ref") == ["S0", "S1", "S2"]


CASES = {
    **{k: (v[0], v[1]) for k, v in NOT_RECORDS.items()},
    "empty": (b"<inventory/>", "item"),
    "empty_detected": (b"<inventory>\n</inventory>\n", None),
    "comment": (b"<inventory><!-- x --></inventory>", "item"),
    "text": (b"<inventory>text</inventory>", None),
    "long_miss": (doc(items("Item", 3000)), "item"),
    "long_clean": (generate(2, 3000)[0].encode() + items("item", 3000).encode() + b"</inventory>", "item"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("chunk_rows", [2, 65_536])
def test_fast_path_and_parser_agree(case, chunk_rows, monkeypatch):
    """The fast path never reads a file without records itself (it hands it to the parser): both readers
    give the same batches, or the same refusal."""
    monkeypatch.setattr(xml_fast, "BLOCK_BYTES", 4096)
    data, record = CASES[case]
    if case != "long_clean":
        with pytest.raises(xml_fast.NotSimple):
            list(xml_fast.fast_batches(ByteSource(io.BytesIO(data), "f.xml"), record, chunk_rows))
    fast, full = both(data, record, chunk_rows)
    assert_same(fast, full)
    if case in NOT_RECORDS or case in ("long_miss", "text"):
        assert fast[0] == "refused" and fast[1] == [], fast


CLI = """
import sys
from fc_assets.ingestion import feeds
from fc_assets.ingestion.spec import FormatOptions
feeds.FEEDS["inventory"] = feeds.inventory_feed(format_options=FormatOptions(xml_record="item"))
from fc_assets.cli import main
sys.argv = ["fc-assets", *sys.argv[1:]]
main()
"""


def _check_file(path, declared: bool) -> subprocess.CompletedProcess[str]:
    """`fc-assets check-file inventory PATH`, with the inventory feed declaring `xml_record="item"` (as
    feeds.py would) when `declared`."""
    command = [sys.executable, "-c", CLI] if declared else [FC_ASSETS]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [*command, "check-file", "inventory", str(path)], capture_output=True, text=True, timeout=120, env=env
    )


def test_check_file_exits_2_naming_the_element_expected_and_found(tmp_path):
    path = tmp_path / "stock.xml"
    path.write_bytes(doc(items("Item")))
    proc = _check_file(path, declared=True)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stdout == ""
    assert (
        f"{path}: the feed's xml_record <item> matches no element in the file (the root <inventory> holds "
        "<Item>; element names are case-sensitive)"
    ) in proc.stderr


def test_check_file_exits_2_on_a_root_holding_only_text(tmp_path):
    path = tmp_path / "stock.xml"
    path.write_bytes(b"<inventory>export failed</inventory>")
    proc = _check_file(path, declared=False)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert f"{path}: the root <inventory> holds text and no element: 'export failed'" in proc.stderr


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "detected"])
def test_check_file_accepts_an_empty_root_with_0_rows(tmp_path, declared):
    path = tmp_path / "stock.xml"
    path.write_bytes(b'<?xml version="1.0"?>\n<inventory>\n  <!-- nothing today -->\n</inventory>\n')
    proc = _check_file(path, declared)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["rows"], summary["accepted"], summary["rejected"], summary["failed"]) == (0, 0, 0, False)


EMPTY_ELEMENTS = {
    "wrapper": b"<Export><Items/></Export>",
    "wrapper_open_close": b'<?xml version="1.0"?>\n<Export>\n  <Items>\n  </Items>\n</Export>\n',
    "header_and_wrapper": b"<Export>\n  <Header/>\n  <Items><!-- none today --></Items>\n</Export>",
    "namespaced": b'<e:Export xmlns:e="urn:e"><e:Items xmlns="urn:x"/></e:Export>',
    "gzip": gzip.compress(b"<Export>\n  <Items>\n  </Items>\n</Export>\n"),
    "xsi_nil": (  # (.NET's and JAXB's null list; xml:lang, schema hints: about the element, no data)
        b'<Export xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><Items xsi:nil="true" xml:lang="en"/>'
        b"</Export>"
    ),
}


@pytest.mark.parametrize("case", sorted(EMPTY_ELEMENTS))
def test_a_root_holding_only_empty_elements_is_a_file_without_records(case):
    """`<Export><Items/></Export>`: the empty export of a feed whose records sit in a wrapper (`<Export><Items>
    <Item>…`, which the README shows). An element without attribute, text or child holds no record's data,
    so nothing is misread by reading the file as 0 records. Before: refused ("the root <Export> holds
    <Items>"), so such a feed could never send an empty file."""
    out = run(feed("Item"), io.BytesIO(EMPTY_ELEMENTS[case]), name="empty.xml")
    assert (out.report.rows, out.report.accepted, out.report.rejected) == (0, 0, 0)


STILL_REFUSED = {
    "attribute": (b'<Export><Stock sku="A" qty="1"/></Export>', "holds <Stock>"),
    "attribute_and_xsi": (
        b'<Export xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><Stock xsi:type="S" sku="A"/></Export>',
        "holds <Stock>",
    ),
    "text": (b"<Export><Items>ERROR</Items></Export>", "holds <Items>"),
    "child": (b"<Export><Header><Count>0</Count></Header></Export>", "holds <Header>"),
    "deep_empty": (b"<Export><Items><Stock/></Items></Export>", "holds <Items>"),
    "repeated_empty": (b"<Export><Items/><item/><item/></Export>", "holds <Items>, <item>; element names"),
    "text_before": (b"<Export>export failed<Items/></Export>", "'export failed'"),
    "text_after": (b"<Export><Items/>export failed</Export>", "'export failed'"),
    "text_between": (b"<Export><A/>export failed<B/><C/><D/></Export>", "'export failed'"),
    "text_after_a_piece": (
        b"<Export><A/>" + b" " * (xml_records.PIECE_BYTES + 100) + b"export failed<B/></Export>",
        "'export failed'",
    ),
    "text_at_the_end_after_a_piece": (
        b"<Export><A/>" + b" " * (xml_records.PIECE_BYTES + 100) + b"export failed</Export>",
        "'export failed'",
    ),
}


@pytest.mark.parametrize("case", sorted(STILL_REFUSED))
def test_empty_elements_with_anything_else_are_refused(case):
    """Anything an element other than the root holds (an attribute, text, a child), or text in the root, may
    be a record not named `xml_record`: refused, as before."""
    data, found = STILL_REFUSED[case]
    message = refused(data, "Item")
    assert found in message, message


def test_a_byte_order_mark_in_an_empty_root_is_no_text():
    """U+FEFF (a second byte-order mark, from parts written by a tool each with its own) is no message in
    the root. Before: refused as "the root <inventory> holds text and no element: '\\ufeff'"."""
    data = "<inventory>\ufeff\r\n</inventory>".encode()
    for record in ("item", None):
        out = run(feed(record), io.BytesIO(data), name="empty.xml")
        assert out.report.rows == 0


NO_ROOT = "a file without records is a root without child elements"


@pytest.mark.parametrize(
    "data, said",
    [
        (b"", f"empty file: no XML root element ({NO_ROOT})"),
        (b" \r\n\t\n", f"empty file: no XML root element ({NO_ROOT})"),
        (codecs.BOM_UTF8, f"empty file: no XML root element ({NO_ROOT})"),
        (gzip.compress(b""), f"empty file: no XML root element ({NO_ROOT})"),
        (b'<?xml version="1.0"?>', f"empty file: no XML root element, only its prolog ({NO_ROOT})"),
        (
            b'<?xml version="1.0" encoding="UTF-8"?>\n<!-- no stock today -->\n<?app x?>\n',
            f"empty file: no XML root element, only its prolog ({NO_ROOT})",
        ),
        (b"<!DOCTYPE inventory>\n", f"empty file: no XML root element, only its prolog ({NO_ROOT})"),
        (
            codecs.BOM_UTF16_LE + '<?xml version="1.0"?>\n'.encode("utf-16-le"),
            f"empty file: no XML root element, only its prolog ({NO_ROOT})",
        ),
        (
            gzip.compress(b'<?xml version="1.0"?>\n'),
            f"empty file: no XML root element, only its prolog ({NO_ROOT})",
        ),
        (
            b'<?xml version="1.0"?>\n<!-- cut off',
            "no XML root element: the file ends inside its prolog (a comment, processing instruction or "
            "DOCTYPE not closed)",
        ),
    ],
    ids=[
        "0_bytes",
        "whitespace",
        "bom",
        "gzip_0_bytes",
        "declaration",
        "declaration_comment_pi",
        "doctype",
        "utf16_declaration",
        "gzip_declaration",
        "comment_not_closed",
    ],
)
@pytest.mark.parametrize("record", ["item", None], ids=["declared", "detected"])
def test_an_xml_file_without_a_root_element_is_refused_as_empty(data, said, record):
    """A 0-byte file and one holding only the XML declaration are the same: no document (a failed export;
    as 0 rows it would be an empty snapshot, every row sent before deleted), refused as an empty CSV is
    ("empty file: no header row"). Before, both said "XML prolog too large to inspect (no root element in the
    first 256 KiB)" — of a file of 0 or 22 bytes."""
    assert refused(data, record=record, name="empty.xml") == said
