"""The XML fast path (`xml_fast.py`) against the full parser: generated files, clean and with each feature
the fast path must not read itself at a random record, give exactly the same batches (columns, values,
row numbers) or exactly the same refusal.

Blocks are made tiny (a few hundred bytes) so that records straddle block cuts, and batches small, so
that a fallback happens after the fast path has already yielded batches."""

from __future__ import annotations

import gzip
import io
import random

import pyarrow as pa
import pytest

from fc_assets.ingestion.read import xml_fast
from fc_assets.ingestion.read.streams import ByteSource
from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets.ingestion.read.xml_records import read_xml, read_xml_full
from fc_assets_tests.ingestion_files.corpus import ForwardOnly

FIELDS = ["sku", "location", "qty", "status", "expected_on", "note.text", "_x-1"]
VALUES = ["SKU-1", "00123", "", " padded ", "line\nbreak", "tab\there", "Zürich €5", "日本", "a]b", "x'\"y"]


def _record(rng: random.Random, tag: str, names: list[str] | None = None) -> str:
    """A record: random fields in a random order, or `names` (then always the same markup)."""
    same = names is not None
    names = names if same else rng.sample(FIELDS, rng.randint(0, len(FIELDS)))
    parts = []
    for name in names:
        value = rng.choice(VALUES[1:] if same else VALUES)
        ws = "" if same else rng.choice(["", "", "\n  ", "\t", " "])
        if not same and value == "" and rng.random() < 0.5:
            parts.append(f"{ws}<{name}/>")
        else:
            parts.append(f"{ws}<{name}>{value}</{name}>")
    end = "" if same else rng.choice(["", "\n", " "])
    return f"<{tag}>{''.join(parts)}{end}</{tag}>"


def generate(seed: int, n: int, tag: str = "item", same: bool = False) -> tuple[str, list[str]]:
    """(prolog + root start tag, records as text): the parts of a clean file; with `same`, every record
    has the same fields in the same order (the fast path's shortcut for repeated markup)."""
    rng = random.Random(seed)
    names = rng.sample(FIELDS, rng.randint(1, len(FIELDS))) if same else None
    prolog = rng.choice(
        [
            "",
            '<?xml version="1.0" encoding="UTF-8"?>\n',
            "<?xml version='1.0'?>\n<!-- exported -->\n<?app x?>\n",
            '\ufeff<?xml version="1.0" encoding="utf-8" standalone="yes"?><!DOCTYPE inventory>',
        ]
    )
    root = rng.choice(["<inventory>", '<inventory xmlns="urn:x" version="2">', "<inventory\n>"])
    return prolog + root, [_record(rng, tag, names) for _ in range(n)]


def assemble(head: str, records: list[str], seps: list[str], tail: str = "</inventory>\n") -> bytes:
    body = "".join(sep + rec for sep, rec in zip(seps, records, strict=True))
    return (head + body + "\n" + tail).encode()


# (name, how to change record k's text or the whole file): each must fall back (or fail) like the parser
def _replace_first(old: str, new: str):
    def change(records: list[str], k: int) -> None:
        for i in list(range(k, len(records))) + list(range(k)):
            if old in records[i]:
                records[i] = records[i].replace(old, new, 1)
                return
        records[k] = records[k].replace("<item>", f"<item>{new}", 1)

    return change


def _at(fn):
    def change(records: list[str], k: int) -> None:
        records[k] = fn(records[k])

    return change


FEATURES = {
    "cdata": _at(lambda r: r.replace("<item>", "<item><sku><![CDATA[a<b>&c]]></sku>", 1)),
    "entity": _at(lambda r: r.replace("<item>", "<item><sku>A&amp;B</sku>", 1)),
    "char_ref": _at(lambda r: r.replace("<item>", "<item><sku>&#65;&#x42;</sku>", 1)),
    "undefined_entity": _at(lambda r: r.replace("<item>", "<item><sku>X&xxe;Y</sku>", 1)),
    "comment": _at(lambda r: r.replace("<item>", "<item><!-- a > b -->", 1)),
    "comment_between": _at(lambda r: "<!-- between -->" + r),
    "pi": _at(lambda r: r.replace("<item>", "<item><?pi data?>", 1)),
    "record_attribute": _at(lambda r: r.replace("<item>", '<item sku="A">', 1)),
    "field_attribute": _at(lambda r: r.replace("<item>", '<item><price currency="EUR">5</price>', 1)),
    "namespace_prefix": _at(lambda r: r.replace("<item>", '<item><n:sku xmlns:n="urn:n">P</n:sku>', 1)),
    "undeclared_prefix": _at(lambda r: r.replace("<item>", "<item><n:sku>P</n:sku>", 1)),
    "nested": _at(lambda r: r.replace("<item>", "<item><location><ref>L</ref></location>", 1)),
    "repeated": _at(lambda r: r.replace("<item>", "<item><category>A</category><category>B</category>", 1)),
    "record_in_record": _at(lambda r: r.replace("<item>", "<item><item>x</item>", 1)),
    "mismatched": _at(lambda r: r.replace("<item>", "<item><sku>A</location>", 1)),
    "unclosed": _at(lambda r: r.replace("<item>", "<item><sku>A", 1)),
    "space_in_tag": _at(lambda r: r.replace("<item>", "<item><sku >A</sku >", 1)),
    "self_closing_record": _at(lambda r: "<item/>" + r),
    "cr_in_text": _at(lambda r: r.replace("<item>", "<item><sku>a\rb</sku>", 1)),
    "crlf_in_text": _at(lambda r: r.replace("<item>", "<item><sku>a\r\nb</sku>", 1)),
    "crlf_between": _at(lambda r: "\r\n" + r.replace("</item>", "\r\n</item>")),
    "gt_in_text": _at(lambda r: r.replace("<item>", "<item><sku>a>b</sku>", 1)),
    "cdata_end_in_text": _at(lambda r: r.replace("<item>", "<item><sku>a]]>b</sku>", 1)),
    "control_char": _at(lambda r: r.replace("<item>", "<item><sku>a\x01b</sku>", 1)),
    "nonchar": _at(lambda r: r.replace("<item>", "<item><sku>a\ufffeb</sku>", 1)),
    "record_text": _at(lambda r: r.replace("<item>", "<item>loose text", 1)),
    "text_between_records": _at(lambda r: "junk" + r),
    "one_char_between": _at(lambda r: "x" + r),
    "one_char_in_record": _at(lambda r: r.replace("</item>", "x</item>", 1)),
    "other_record_name": _at(lambda r: r.replace("<item>", "<entry>").replace("</item>", "</entry>")),
    "bad_name": _at(lambda r: r.replace("<item>", "<item><1sku>A</1sku>", 1)),
    "unicode_name": _at(lambda r: r.replace("<item>", "<item><größe>A</größe>", 1)),
    "long_name": _at(lambda r: r.replace("<item>", f"<item><{'n' * 60_000}>A</{'n' * 60_000}>", 1)),
    "long_text": _at(lambda r: r.replace("<item>", f"<item><note>{'x' * (xml_fast.MAX_TEXT + 1)}</note>", 1)),
}
FAST_FEATURES = {"crlf_between"}  # whitespace between elements: read by the fast path too
FILE_FEATURES = {  # changes of the whole file: (head, body, tail) → bytes
    "latin1": lambda h, b, t: (
        ('<?xml version="1.0" encoding="ISO-8859-1"?><inventory>' + b + t.replace("</inventory>", "")).encode(
            "latin-1", "replace"
        )
        + b"<item><sku>\xe9</sku></item></inventory>"
    ),
    "invalid_utf8": lambda h, b, t: (h + b).encode() + b"<item><sku>\xc3\x28</sku></item>" + t.encode(),
    "utf16": lambda h, b, t: ('<?xml version="1.0" encoding="UTF-16"?><inventory>' + b + t).encode("utf-16"),
    "xml11": lambda h, b, t: ('<?xml version="1.1"?><inventory>' + b + t).encode(),
    "truncated": lambda h, b, t: (h + b).encode()[:-7],
    "no_root_end": lambda h, b, t: (h + b).encode(),
    "trailing_comment": lambda h, b, t: (h + b + t + "<!-- end -->").encode(),
    "trailing_junk": lambda h, b, t: (h + b + t + "x").encode(),
    "two_roots": lambda h, b, t: (h + b + t + "<inventory/>").encode(),
    "root_is_record": lambda h, b, t: ("<item>" + b + "</item>").encode(),
    "leading_metadata": lambda h, b, t: (h + "<meta><count>3</count></meta>" + b + t).encode(),
    "single_record": lambda h, b, t: (h + b[: b.index("</item>") + 7] + t).encode(),
    "empty_root": lambda h, b, t: b"<inventory></inventory>",
    "bad_root_attribute": lambda h, b, t: ("<inventory a='1' a='2'>" + b + t).encode(),
    # the root start tag and prolog must be parsed, not only fed (libxml2 waits for more input after the '>')
    "root_attribute_without_value": lambda h, b, t: ("<inventory x version='2'>" + b + t).encode(),
    "root_attribute_unquoted": lambda h, b, t: ("<inventory xmlns=n:x version='2'>" + b + t).encode(),
    "declared_root_attribute_without_value": lambda h, b, t: (
        '<?xml version="1.0"?>\n<inventory x version="2">' + b + t
    ).encode(),
    "root_attribute_unclosed": lambda h, b, t: ('<inventory xmlns="urn:xsion="2">' + b + t).encode(),
    "root_namespace_not_a_uri": lambda h, b, t: ('<inventory xmlns=":x">' + b + t).encode(),
    "nul_in_prolog": lambda h, b, t: ("<?app \x00x?>\n<inventory>" + b + t).encode(),
    "prefixed_root": lambda h, b, t: ('<n:inventory xmlns:n="urn:n">' + b + "</n:inventory>").encode(),
}


def both(data: bytes, record: str | None, chunk_rows: int, *, gz: bool = False):
    """What read_xml (fast path first) and the full parser give: batches, or the refusal."""
    if gz:
        data = gzip.compress(data)
    results = []
    for reader in (read_xml, read_xml_full):
        batches: list[pa.RecordBatch] = []
        try:
            for batch in reader(ByteSource(io.BytesIO(data), "f.xml"), record, chunk_rows):
                batches.append(batch)
            results.append(("ok", batches))
        except FileUnreadable as e:
            results.append(("refused", batches, str(e), e.row))
    return results


def assert_same(fast, full) -> None:
    assert fast[0] == full[0], (fast, full)
    assert len(fast[1]) == len(full[1])
    for a, b in zip(fast[1], full[1], strict=True):
        assert a.schema.names == b.schema.names
        assert a.equals(b), (a.to_pydict(), b.to_pydict())
    assert fast[2:] == full[2:]


@pytest.fixture(params=[300, 1 << 20], ids=["tiny_blocks", "big_blocks"])
def blocks(request, monkeypatch):
    monkeypatch.setattr(xml_fast, "BLOCK_BYTES", request.param)
    return request.param


def _seps(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(["\n", "", "  ", "\n\t", " \n "]) for _ in range(n)]


@pytest.mark.parametrize("same", [False, True], ids=["mixed", "same_fields"])
@pytest.mark.parametrize("seed", range(12))
def test_clean_files_are_read_by_the_fast_path_exactly_as_by_the_parser(seed, same, blocks):
    rng = random.Random(seed)
    head, records = generate(seed, rng.randint(1, 120), same=same)
    data = assemble(head, records, ["\n"] * len(records) if same else _seps(rng, len(records)))
    record = rng.choice([None, "item"])
    # (batches of one record with the record name auto-detected: the parser's first holds two; not fast)
    chunk_rows = rng.choice([7, 64, 65_536] + ([1] if record else []))
    # the fast path alone reads it (no fallback)...
    fast = list(xml_fast.fast_batches(ByteSource(io.BytesIO(data), "f.xml"), record, chunk_rows))
    full = list(read_xml_full(ByteSource(io.BytesIO(data), "f.xml"), record, chunk_rows))
    assert_same(("ok", fast), ("ok", full))
    assert sum(b.num_rows for b in fast) == len(records)
    # ...and read_xml gives the same, gzipped too
    for gz in (False, True):
        assert_same(*both(data, record, chunk_rows, gz=gz))


@pytest.mark.parametrize("feature", sorted(FEATURES))
@pytest.mark.parametrize("seed", range(4))
def test_each_feature_at_a_random_record_falls_back_to_the_same_result(feature, seed, blocks):
    rng = random.Random(f"{feature}{seed}")
    same = seed % 2 == 1  # the other records all alike, or not
    head, records = generate(seed, rng.randint(2, 60), same=same)
    k = rng.randrange(len(records))
    FEATURES[feature](records, k)
    data = assemble(head, records, ["\n"] * len(records) if same else _seps(rng, len(records)))
    chunk_rows = rng.choice([1, 2, 5, 65_536])
    if feature in FAST_FEATURES:  # the fast path reads it itself...
        list(xml_fast.fast_batches(ByteSource(io.BytesIO(data), "f.xml"), None, max(2, chunk_rows)))
    else:  # the fast path does not read it itself...
        with pytest.raises(xml_fast.NotSimple):
            list(xml_fast.fast_batches(ByteSource(io.BytesIO(data), "f.xml"), None, chunk_rows))
    fast, full = both(data, None, chunk_rows)  # ...and read_xml gives what the parser gives
    assert_same(fast, full)


@pytest.mark.parametrize("feature", sorted(FILE_FEATURES))
def test_whole_file_features_fall_back_to_the_same_result(feature, blocks):
    rng = random.Random(feature)
    head, records = generate(3, 40)
    body = "".join(sep + r for sep, r in zip(_seps(rng, len(records)), records, strict=True))
    data = FILE_FEATURES[feature](head, body, "</inventory>\n")
    for chunk_rows in (3, 65_536):
        if feature != "single_record":
            with pytest.raises(xml_fast.NotSimple):
                list(xml_fast.fast_batches(ByteSource(io.BytesIO(data), "f.xml"), None, chunk_rows))
        fast, full = both(data, None, chunk_rows)
        assert_same(fast, full)


def test_malformed_xml_is_refused_with_the_file_and_position():
    head, records = generate(5, 30)
    records[17] = records[17].replace("<item>", "<item><sku>A</skux>", 1)
    data = assemble(head, records, ["\n"] * len(records))
    fast, full = both(data, None, 4)
    assert_same(fast, full)
    line = data[: data.index(b"</skux>")].count(b"\n") + 1
    assert fast[0] == "refused" and fast[2].startswith(f"f.xml: row 18: XML syntax error at line {line}: ")
    assert fast[3] == 18  # the record it happened in
    assert sum(b.num_rows for b in fast[1]) == 16  # the batches before it (4 records each) were read


def test_a_forward_only_stream_is_read_by_the_parser(monkeypatch):
    calls = []
    monkeypatch.setattr(xml_fast, "_tokenise", lambda *a: calls.append(a))
    head, records = generate(1, 10)
    data = assemble(head, records, ["\n"] * 10)
    batches = list(read_xml(ByteSource(ForwardOnly(data), "f.xml"), None, 100))
    assert sum(b.num_rows for b in batches) == 10 and calls == []


def test_a_large_clean_file_is_read_in_blocks_exactly(tmp_path):
    rng = random.Random(99)
    head, records = generate(0, 20_000)
    path = tmp_path / "big.xml"
    path.write_bytes(assemble(head, records, _seps(rng, len(records))))
    fast = list(xml_fast.fast_batches(ByteSource(str(path)), None, 4096))
    full = list(read_xml_full(ByteSource(str(path)), None, 4096))
    assert_same(("ok", fast), ("ok", full))


EVERY_RECORD = {  # the same markup in every record, not simple: the repeated-markup shortcut must see it
    "repeated": ("<item>", "<item><category>A</category><category>B</category>"),
    "mismatched": ("<item>", "<item><sku>A</location>"),
    "nested": ("<item>", "<item><location><ref>L</ref></location>"),
    "attribute": ("<item>", '<item><price currency="EUR">5</price>'),
    "record_in_record": ("<item>", "<item><item>x</item>"),
    "empty_record_name": ("<item>", "<item><item/>"),
    "comment": ("<item>", "<item><!--c-->"),
}


@pytest.mark.parametrize("feature", sorted(EVERY_RECORD))
def test_a_feature_in_every_record_falls_back_to_the_same_result(feature, blocks):
    old, new = EVERY_RECORD[feature]
    head, records = generate(4, 50, same=True)
    data = assemble(head, [r.replace(old, new, 1) for r in records], ["\n"] * 50)
    with pytest.raises(xml_fast.NotSimple):
        list(xml_fast.fast_batches(ByteSource(io.BytesIO(data), "f.xml"), None, 8))
    assert_same(*both(data, None, 8))


class _Counted:
    """`ByteSource.open` whose reads are counted (how much the fast path reads before it gives up)."""

    def __init__(self, stream, counter: list[int]) -> None:
        self.stream, self.counter = stream, counter

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stream.close()

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.counter[0] += len(data)
        return data

    def readinto(self, buffer) -> int:
        got = self.stream.readinto(buffer)
        self.counter[0] += got
        return got


def _read_before_giving_up(monkeypatch, data: bytes) -> int:
    counter = [0]
    opened = ByteSource.open
    monkeypatch.setattr(ByteSource, "open", lambda self, again=False: _Counted(opened(self, again), counter))
    with pytest.raises(xml_fast.NotSimple):
        list(xml_fast.fast_batches(ByteSource(io.BytesIO(data), "f.xml"), None, 65_536))
    return counter[0]


def test_records_that_are_not_the_roots_first_child_are_given_up_after_one_block(monkeypatch):
    """A leading `<meta>` block (read_xml's documented case) is not the record: the fast path must hand the
    file to the parser at once, not buffer up to MAX_BLOCK_BYTES of it (quadratically) looking for `</meta>`."""
    head, records = generate(5, 40_000, same=True)
    data = assemble(head + "<meta><count>3</count></meta>", records, ["\n"] * len(records))
    assert len(data) > 3 * xml_fast.BLOCK_BYTES
    assert _read_before_giving_up(monkeypatch, data) <= 2 * xml_fast.BLOCK_BYTES


def test_a_text_longer_than_max_text_is_given_up_without_buffering_the_record(monkeypatch):
    head, records = generate(6, 100, same=True)
    records[50] = records[50].replace("<item>", f"<item><note>{'x' * (8 * xml_fast.MAX_TEXT)}</note>", 1)
    data = assemble(head, records, ["\n"] * len(records))
    assert _read_before_giving_up(monkeypatch, data) <= xml_fast.MAX_TEXT + 3 * xml_fast.BLOCK_BYTES


# one record unlike the others, each still a flat record the fast path reads (by the general tokeniser): the
# repeated-markup check, which compares each tag with the first record's 8 bytes at a time, must not take it
# for the others' markup
LONG = "a_field_name_of_thirty_chars_x"
ONE_RECORD_DIFFERENT = {
    "swapped_same_length": lambda r: r.replace("<sku>A</sku><qty>1</qty>", "<qty>1</qty><sku>A</sku>"),
    "renamed_in_second_word": lambda r: r.replace("expected_on>", "expected_ox>"),
    "renamed_in_fourth_word": lambda r: r.replace(f"{LONG}>", f"{LONG[:-1]}y>"),
    "empty_element": lambda r: r.replace("<status>S</status>", "<status/>"),
    "empty_text": lambda r: r.replace("<status>S</status>", "<status></status>"),
    "missing_field": lambda r: r.replace("<status>S</status>", ""),
    "extra_field": lambda r: r.replace("</item>", "<note>N</note></item>"),
    "whitespace_between": lambda r: r.replace("<qty>", "\n  <qty>"),
    "longer_text": lambda r: r.replace("<qty>1</qty>", "<qty>1234567890</qty>"),
}


def _same_records(n: int) -> list[str]:
    return [
        f"<item><sku>A</sku><qty>1</qty><status>S</status><expected_on>2025</expected_on><{LONG}>x</{LONG}></item>"
    ] * n


@pytest.mark.parametrize("change", sorted(ONE_RECORD_DIFFERENT))
@pytest.mark.parametrize("seed", range(3))
def test_one_record_unlike_the_others_is_read_exactly(change, seed, blocks):
    rng = random.Random(f"{change}{seed}")
    records = _same_records(rng.randint(2, 80))
    k = rng.randrange(len(records))
    records[k] = ONE_RECORD_DIFFERENT[change](records[k])
    data = assemble("<inventory>", records, ["\n"] * len(records))
    chunk_rows = rng.choice([2, 7, 65_536])
    fast = list(xml_fast.fast_batches(ByteSource(io.BytesIO(data), "f.xml"), None, chunk_rows))
    full = list(read_xml_full(ByteSource(io.BytesIO(data), "f.xml"), None, chunk_rows))
    assert_same(("ok", fast), ("ok", full))


@pytest.mark.parametrize("seed", range(16))
def test_blocks_cut_at_any_record_end_give_the_same_batches(seed, monkeypatch):
    """Blocks of random sizes (a record straddling each cut, blocks of one record and of many), tokenised
    several at a time on the threads: the batches are the parser's."""
    rng = random.Random(seed)
    monkeypatch.setattr(xml_fast, "BLOCK_BYTES", rng.randint(1, 3000))
    same = seed % 2 == 0
    head, records = generate(seed, rng.randint(1, 400), same=same)
    if same and rng.random() < 0.5:  # and a run of records that differ
        at = rng.randrange(len(records))
        records[at : at + 5] = [r.replace("</item>", "<extra>e</extra></item>") for r in records[at : at + 5]]
    data = assemble(head, records, ["\n"] * len(records) if same else _seps(rng, len(records)))
    chunk_rows = rng.choice([3, 50, 65_536])
    fast = list(xml_fast.fast_batches(ByteSource(io.BytesIO(data), "f.xml"), None, chunk_rows))
    full = list(read_xml_full(ByteSource(io.BytesIO(data), "f.xml"), None, chunk_rows))
    assert_same(("ok", fast), ("ok", full))


def test_a_block_at_the_end_of_its_buffer_is_compared_without_reading_past_it():
    """The 64-bit words read at the last tag of a block may run past the buffer: it is padded, not read beyond."""
    record = f"<item><{LONG}>1</{LONG}><b>2</b></item>"
    data = bytearray((record * 3).encode())
    block = xml_fast._tokenise(data, len(data), "item")
    assert block.n == 3 and block.rec is None  # (read as repeated markup)
    assert [c.to_pylist() for c in block.columns] == [["1"] * 3, ["2"] * 3]
    wrong = bytearray((record * 2 + record.replace("<b>", "<c>").replace("</b>", "</c>")).encode())
    block = xml_fast._tokenise(wrong, len(wrong), "item")
    assert block.names == [LONG, "b", "c"] and block.rec is not None  # (the general tokeniser)


# indented like a pretty-printer's output, one record's indentation changed: whitespace is compared 8 bytes at
# a time where every record has the same, byte by byte otherwise; text there is not simple
INDENTED_ONCE = {
    "tab": (lambda r: r.replace("\n    <qty>", "\n\t<qty>"), True),
    "longer": (lambda r: r.replace("\n    <qty>", "\n      <qty>"), True),
    "crlf": (lambda r: r.replace("\n    <qty>", "\r\n    <qty>"), True),
    "letter_in_indentation": (lambda r: r.replace("\n    <qty>", "\n   x<qty>"), False),
    "letter_before_record_end": (lambda r: r.replace("\n  </item>", "\n x</item>"), False),
}


@pytest.mark.parametrize("change", sorted(INDENTED_ONCE))
@pytest.mark.parametrize("seed", range(3))
def test_indented_records_with_one_indented_otherwise(change, seed, blocks):
    rng = random.Random(f"{change}{seed}")
    record = "<item>\n    <sku>A</sku>\n    <qty>1</qty>\n    <status/>\n  </item>"
    records = [record] * rng.randint(2, 80)
    k = rng.randrange(len(records))
    fn, fast_reads_it = INDENTED_ONCE[change]
    records[k] = fn(records[k])
    data = assemble("<inventory>", records, ["\n  "] * len(records))
    chunk_rows = rng.choice([2, 7, 65_536])
    if fast_reads_it:
        fast = list(xml_fast.fast_batches(ByteSource(io.BytesIO(data), "f.xml"), None, chunk_rows))
        assert_same(
            ("ok", fast), ("ok", list(read_xml_full(ByteSource(io.BytesIO(data), "f.xml"), None, chunk_rows)))
        )
    else:
        with pytest.raises(xml_fast.NotSimple):
            list(xml_fast.fast_batches(ByteSource(io.BytesIO(data), "f.xml"), None, chunk_rows))
    assert_same(*both(data, None, chunk_rows))
