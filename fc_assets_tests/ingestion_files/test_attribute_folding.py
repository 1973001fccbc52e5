"""Attribute keys (`attr_*`, `AttributeColumns`) of JSON, JSONL and XML records are folded into one column as
they are read (read/folded.py): the same `attributes` as a column per key gives (CSV's path), in memory
bounded by the data, however many distinct attribute names a file has.

Before, those readers made a column per distinct attribute key of a chunk: a catalogue with more than 1,024
distinct names in a 65,536-record chunk was refused past `records.MAX_CELLS`, and before that cap it took
keys x records cells (~2.5 GB for 3.4 MB)."""

from __future__ import annotations

import csv
import io
import json
import random

import pyarrow as pa
import pytest

from fc_assets.ingestion.feeds import Feed, products_feed
from fc_assets.ingestion.read import jsonl_fast, readers, records, xml_fast, xml_records
from fc_assets.ingestion.read.arrow_values import as_batch
from fc_assets.ingestion.read.folded import from_records
from fc_assets.ingestion.read.mapping import FieldMapper, attribute_namer, folded_attribute_lists, join
from fc_assets.ingestion.read.readers import open_raw
from fc_assets.ingestion.read.source_keys import SourceKeys
from fc_assets.ingestion.read.streams import ByteSource
from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets.ingestion.spec import FOLDED, AttributeColumns, Field
from fc_assets_tests.ingestion_files.helpers import check_files_measured, run

Record = list[tuple[str, str | None]]  # (key, value) in the record's order; None: JSON null, XML <k/>

MIXED: list[Record] = [
    [("ref", "P1"), ("name", "Shirt"), ("attr_colour", "red"), ("attr_size", " M ")],
    [("ref", "P2"), ("name", "Shoe"), ("attr_size", "42"), ("attr_material", "leather"), ("attr_colour", "")],
    [("ref", "P3"), ("name", "Hat")],
    [
        ("ref", "P4"),
        ("name", "Grün"),
        ("attribute_fit", "slim"),
        ("ATTR_Colour", "blue"),
        ("attr_colour", "navy"),
    ],
    [
        ("ref", "P5"),
        ("name", "Sock"),
        ("attr_material", "   "),
        ("attr_pattern", "striped"),
        ("price", "3.50"),
        ("currency", "USD"),
    ],
    [("ref", "P6"), ("attr_size", None), ("name", "Belt"), ("currency", "EUR"), ("price", "9")],
]
# what a column per key gives for MIXED: within a record, attributes in the order their keys first occur in
# the chunk (CSV: the header's order), prefix stripped, values trimmed, empty ones left out
MIXED_ATTRIBUTES = [  # by name (code point order: "Colour" before "colour"), whatever the keys' order
    [("colour", "red"), ("size", "M")],
    [("material", "leather"), ("size", "42")],
    [],
    [("Colour", "blue"), ("colour", "navy"), ("fit", "slim")],
    [("pattern", "striped")],
    [],
]
SAME: list[Record] = [
    [
        ("ref", f"P{i}"),
        ("name", f"N{i}"),
        ("attr_colour", ["red", "", " blue "][i % 3]),
        ("attr_size", str(i)),
    ]
    for i in range(50)
]

# an attribute value with an information separator (U+001C..U+001F) at an end: whitespace to Arrow's UTF-8
# trim, not to its ASCII trim. A column per key trims `attr_colour` alone (ASCII); folded, it is trimmed with
# the other keys' values (here non-ASCII `grün`)
SEPARATORS: list[Record] = [
    [("ref", "P1"), ("name", "Shirt"), ("attr_colour", "\x1cred")],
    [("ref", "P2"), ("name", "Shoe"), ("attr_size", "gr\u00fcn")],
]


def _csv(records: list[Record]) -> bytes:
    header = list(dict.fromkeys(k for r in records for k, _ in r))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for r in records:
        values = dict(r)
        writer.writerow([values.get(k) or "" for k in header])
    return out.getvalue().encode()


def _jsonl(records: list[Record], *, ascii: bool) -> bytes:
    # ensure_ascii escapes "ü" (`\u00fc`): a backslash in a block, which the fast path hands to the line reader
    # and a null is not a string: the fast path's file has "" (the same once mapped: empty is null)
    separators = (", ", ": ") if ascii else (",", ":")
    records = records if ascii else [[(k, "" if v is None else v) for k, v in r] for r in records]
    lines = (json.dumps(dict(r), ensure_ascii=ascii, separators=separators) for r in records)
    return "".join(line + "\n" for line in lines).encode()


def _json(records: list[Record]) -> bytes:
    return ("[" + ",\n".join(json.dumps(dict(r)) for r in records) + "]").encode()


def _xml(records: list[Record], *, comment: bool) -> bytes:
    # a comment in a record: not a flat record file, read by the full parser (lxml)
    def element(k: str, v: str | None) -> str:
        return f"<{k}/>" if v is None else f"<{k}>{v}</{k}>"

    body = "".join(
        "<product>"
        + ("<!-- c -->" if comment and i == 0 else "")
        + "".join(element(k, v) for k, v in r)
        + "</product>\n"
        for i, r in enumerate(records)
    )
    return f"<products>\n{body}</products>\n".encode()


def _forbid(monkeypatch, module, name: str) -> None:
    def fail(*args, **kwargs):
        raise AssertionError(f"{name} was not to be used")

    monkeypatch.setattr(module, name, fail)


VARIANTS = ["csv", "jsonl_fast", "jsonl_lines", "json", "xml_fast", "xml_full"]


def _variant(records: list[Record], variant: str, monkeypatch) -> tuple[bytes, str]:
    """The records as a file read by that reader (the other path of its format forbidden)."""
    if variant == "csv":
        return _csv(records), "p.csv"
    if variant == "jsonl_fast":
        _forbid(monkeypatch, readers, "_read_jsonl_lines")
        return _jsonl(records, ascii=False), "p.jsonl"
    if variant == "jsonl_lines":

        def no_fast_path(stream, *args):  # everything handed to the line reader at once
            return jsonl_fast.Rest(stream.read(), 1)
            yield

        monkeypatch.setattr(jsonl_fast, "fast_batches", no_fast_path)
        return _jsonl(records, ascii=True), "p.jsonl"
    if variant == "json":
        return _json(records), "p.json"
    if variant == "xml_fast":
        _forbid(monkeypatch, xml_records, "read_xml_full")
        return _xml(records, comment=False), "p.xml"
    _forbid(monkeypatch, xml_fast, "fast_batches")
    return _xml(records, comment=True), "p.xml"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("records", [MIXED, SAME, SEPARATORS], ids=["mixed", "same_keys", "separators"])
def test_the_same_products_give_the_same_rows_and_attributes_in_every_format(records, variant, monkeypatch):
    if records is SEPARATORS and variant in ("jsonl_fast", "xml_fast", "xml_full"):
        pytest.skip("U+001C: escaped in JSON (the line reader's), no character of XML 1.0")
    reference = run(products_feed(), io.BytesIO(_csv(records)), name="p.csv")  # a column per key
    data, name = _variant(records, variant, monkeypatch)
    outcome = run(products_feed(), io.BytesIO(data), name=name)
    assert outcome.accepted.equals(reference.accepted), (
        outcome.accepted.to_pylist(),
        reference.accepted.to_pylist(),
    )
    assert outcome.rejects == reference.rejects
    assert (outcome.report.rows, outcome.report.accepted) == (len(records), len(records))
    assert outcome.report.unknown_keys is None
    if records is MIXED:
        got = [[(a["name"], a["value"]) for a in row] for row in outcome.column("attributes")]
        assert got == MIXED_ATTRIBUTES
        assert {a["type"] for row in outcome.column("attributes") for a in row} == {"STRING"}


def test_the_line_reader_and_the_fast_paths_fold_the_same_records_alike(monkeypatch):
    """Where a file leaves a fast path midway (an escape in a later block), the line reader folds from there:
    the chunks are the same as the fast path's alone (`jsonl_fast` yields only whole chunks)."""
    monkeypatch.setattr(jsonl_fast, "BLOCK_BYTES", 200)
    plain = _jsonl(SAME + MIXED, ascii=False)
    escaped = plain.replace(b"Gr\xc3\xbcn", b"Gr\\u00fcn")
    feed = products_feed()
    for chunk_rows in (1, 7, 65_536):
        results = []
        for data in (plain, escaped):
            keys = SourceKeys.for_feed(feed)
            src = ByteSource(io.BytesIO(data), "p.jsonl")
            results.append([as_batch(b) for b in readers._read_jsonl(src, chunk_rows, keys)])
        assert len(results[0]) == len(results[1])
        for a, b in zip(*results, strict=True):
            assert FOLDED in a.schema.names
            assert a.equals(b)


# ------------------------------------------------------------------ folded against a column per key, at random

KEYS = [
    "price",
    "attr_colour",
    "ATTR_COLOUR",
    "attr_size",
    "attribute_fit",
    "attr_b",
    "attr_",
    "colour",
    "Extra_Info",
    "attr_a.b",
    "u1",
    "u2",
]
VALUES = ["v", "", "  ", " pad ", "Zürich", "x'y", None]


def _listed_feed() -> Feed:
    """Attributes listed by name as well as by prefix, and a computed field that reads an attribute key (which
    is then a column and an attribute at once)."""
    return Feed(
        "folding",
        fields=(
            Field("ref", required=True),
            Field("name"),
            Field("both", compute=join("attr_b", "name", sep="/")),
        ),
        keys=("ref",),
        sender="event_product",
        attributes=AttributeColumns(prefixes=("attr_",), columns=("colour", "Extra Info")),
    )


def _random_records(rng: random.Random, n: int, nested: bool) -> list[dict]:
    out = []
    for i in range(n):
        rec: dict = {"ref": f"R{i}", "name": rng.choice(VALUES)}  # (both required by the products feed)
        for k in rng.sample(KEYS, rng.randint(0, 7)):
            rec[k] = rng.choice(VALUES)
        if nested and rng.random() < 0.3:
            rec["attributes"] = {"colour": rng.choice(VALUES), "deep": {"x": "1"}}
        out.append(rec)
    return out


def _random_file(rng: random.Random, fmt: str, records: list[dict]) -> bytes:
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=rng.random() < 0.3) + "\n" for r in records).encode()
    if fmt == "json":
        return json.dumps(records).encode()

    def element(k: str, v) -> str:
        if isinstance(v, dict):
            return f"<{k}>" + "".join(element(kk, vv) for kk, vv in v.items()) + f"</{k}>"
        return f"<{k}/>" if v is None else f"<{k}>{v}</{k}>"

    body = "".join("<r>" + "".join(element(k, v) for k, v in r.items()) + "</r>\n" for r in records)
    return f"<rows>\n{body}</rows>\n".encode()


def _mapped(feed: Feed, data: bytes, name: str, chunk_rows: int, fold: bool):
    """The file's mapped batches with attribute keys folded, or (fold=False) a column each, and the unknown
    keys reported."""
    keys = SourceKeys.for_feed(feed)
    assert keys.fold
    keys.fold = fold
    raw = open_raw(
        ByteSource(io.BytesIO(data), name), options=feed.format_options, chunk_rows=chunk_rows, keys=keys
    )
    mapper = FieldMapper(feed.fields, feed.attributes)
    batches = []
    for batch, plan in mapper.plan_file(raw):
        assert (plan.folded is not None) == fold
        assert (FOLDED in batch.schema.names) == fold
        batches.append(mapper.map_batch(batch, plan))
    return batches, keys.summary()


@pytest.mark.parametrize("fmt", ["jsonl", "json", "xml"])
@pytest.mark.parametrize("seed", range(12))
def test_folded_attribute_keys_map_as_a_column_per_key_does(fmt, seed, monkeypatch):
    rng = random.Random(seed)
    monkeypatch.setattr(jsonl_fast, "BLOCK_BYTES", rng.choice([300, 1 << 20]))
    monkeypatch.setattr(xml_fast, "BLOCK_BYTES", rng.choice([300, 1 << 20]))
    feed = products_feed() if seed % 2 else _listed_feed()
    records_ = _random_records(rng, rng.randint(1, 150), nested=rng.random() < 0.4)
    data = _random_file(rng, fmt, records_)
    chunk_rows = rng.choice([1, 3, 50, 65_536])
    folded, folded_keys = _mapped(feed, data, f"f.{fmt}", chunk_rows, fold=True)
    columns, column_keys = _mapped(feed, data, f"f.{fmt}", chunk_rows, fold=False)
    assert folded_keys == column_keys
    assert len(folded) == len(columns)
    for a, b in zip(folded, columns, strict=True):
        assert a.schema == b.schema
        assert a.equals(b), (a.to_pydict(), b.to_pydict())
    assert any(len(x) for batch in folded for x in batch.column("attributes").to_pylist())


@pytest.mark.parametrize("seed", range(8))
def test_xml_fast_path_folds_as_the_parser_does(seed, monkeypatch):
    rng = random.Random(seed)
    monkeypatch.setattr(xml_fast, "BLOCK_BYTES", rng.choice([300, 1 << 20]))
    records_ = _random_records(rng, rng.randint(1, 150), nested=False)
    if seed % 2:  # the same keys in every record: the repeated-markup path
        size = None if seed % 4 == 1 else "s"  # None: `<attr_size/>` in every record, folded as ""
        records_ = [
            {
                "ref": r["ref"],
                "name": "n",
                "attr_colour": r.get("attr_colour") or "",
                "attr_size": size,
                "zz": "1",
            }
            for r in records_
        ]
    data = _random_file(rng, "xml", records_)
    chunk_rows = rng.choice([3, 50, 65_536])
    feed = products_feed() if seed % 4 < 2 else _listed_feed()
    fast_keys, full_keys = SourceKeys.for_feed(feed), SourceKeys.for_feed(feed)
    fast = list(xml_fast.fast_batches(ByteSource(io.BytesIO(data), "f.xml"), None, chunk_rows, fast_keys))
    full = list(
        xml_records.read_xml_full(ByteSource(io.BytesIO(data), "f.xml"), None, chunk_rows, keys=full_keys)
    )
    assert len(fast) == len(full)
    for a, b in zip(fast, full, strict=True):
        assert a.schema.names == b.schema.names
        assert FOLDED in a.schema.names
        assert a.equals(b), (a.to_pydict(), b.to_pydict())
    assert fast_keys.summary() == full_keys.summary()


def test_attribute_keys_a_computed_field_may_read_are_not_folded_and_still_capped(monkeypatch):
    """A computed field that does not declare its columns may read any key, attribute keys too: nothing is
    folded, and ever-changing keys past MAX_CELLS make the file unreadable, naming why."""
    monkeypatch.setattr(records, "MAX_CELLS", 500 * 500)
    feed = Feed(
        "any_column",
        fields=(Field("ref", required=True), Field("n", compute=lambda cols: cols["ref"])),
        keys=("ref",),
        sender="event_product",
        attributes=AttributeColumns(),
    )
    assert not SourceKeys.for_feed(feed).fold
    body = b"".join(json.dumps({"ref": f"R{i}", f"attr_k{i}": "v"}).encode() + b"\n" for i in range(1000))
    with pytest.raises(FileUnreadable) as e:
        run(feed, io.BytesIO(body), name="wide.jsonl")
    assert "carry 1,001 distinct keys: more than 250,000 cells" in str(e.value)
    # the products feed folds them: read
    body = body.replace(b'"ref"', b'"name": "N", "ref"')
    assert run(products_feed(), io.BytesIO(body), name="wide.jsonl").report.accepted == 1000


# --------------------------------------------------------------------------------------- bounded memory

ADDRESS_SPACE = 3 * 1024**3  # the child fails rather than taking the machine down
PEAK_RSS_MB = 500
N = 200_000


def _ever_changing(i: int) -> dict:
    return {"ref": f"P{i:07d}", "name": "N", f"attr_n{i}": "v", "attr_colour": "red"}


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """`fc-assets check-file products` on files of N records, each with an attribute name of its own."""
    d = tmp_path_factory.mktemp("attribute-names")
    files = {
        "names.jsonl": "".join(json.dumps(_ever_changing(i), separators=(",", ":")) + "\n" for i in range(N)),
        "names.json": "[" + ",".join(json.dumps(_ever_changing(i)) for i in range(N)) + "]",
        "names.xml": "<products>"
        + "".join(
            f"<p><ref>P{i:07d}</ref><name>N</name><attr_n{i}>v</attr_n{i}><attr_colour>red</attr_colour></p>"
            for i in range(N)
        )
        + "</products>",
    }
    for name, text in files.items():
        (d / name).write_text(text)
    return check_files_measured("products", {name: d / name for name in files}, ADDRESS_SPACE)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", ["names.jsonl", "names.json", "names.xml"])
def test_ever_changing_attribute_names_are_read_in_bounded_memory(checked, name):
    """200,000 distinct attribute names, one per record: a column per key was refused (MAX_CELLS); folded,
    the file is read like any other of its size."""
    code, out, err, peak_mb = checked[name]
    assert code == 0, err[-3000:]
    summary = json.loads(out)
    assert (summary["rows"], summary["accepted"], summary["rejected"]) == (N, N, 0)
    assert "unknown_keys" not in summary
    assert peak_mb < PEAK_RSS_MB, f"{name}: peak RSS {peak_mb:.0f} MB"


def test_a_slice_of_a_folded_column_maps_as_its_records_alone():
    """A chunk's folded column may be a slice (its offsets then point into the whole array's entries)."""
    records_ = [
        [("attr_b", "1"), ("attr_a", " ")],
        [],
        [("attr_a", "2"), ("attr_c", None), ("attr_b", "3")],
        [("attr_c", "4")],
        [("attr_b", ""), ("attr_a", "5")],
    ]

    def fold(recs: list[Record]) -> pa.ListArray:
        entries = [e for r in recs for e in r]
        return from_records([len(r) for r in recs], [k for k, _ in entries], [v for _, v in entries])

    namer = attribute_namer(AttributeColumns())
    whole = fold(records_)
    for lo, hi in [(0, 5), (1, 4), (2, 5), (3, 3), (4, 5)]:
        got = folded_attribute_lists(whole.slice(lo, hi - lo), namer, "STRING")
        assert got.to_pylist() == folded_attribute_lists(fold(records_[lo:hi]), namer, "STRING").to_pylist()
    assert [
        [(a["name"], a["value"]) for a in row]
        for row in folded_attribute_lists(whole, namer, "T").to_pylist()
    ] == [
        [("b", "1")],
        [],
        [("a", "2"), ("b", "3")],  # by name
        [("c", "4")],
        [("a", "5")],
    ]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "xml"])
@pytest.mark.parametrize("seed", range(4))
def test_a_records_attributes_do_not_depend_on_key_order_or_its_neighbours(fmt, seed):
    """The same record gives the same attributes whatever the order of its keys, the records around it and
    the chunk it falls in: the delta compares them as they are, so any other order would be a change."""
    rng = random.Random(seed)
    feed = products_feed()
    keys = ["attr_size", "attr_colour", "ATTR_Colour", "attribute_colour", "attr_fit", "attr_é", "attr_Z"]
    target = {k: rng.choice(["1", "b", "a", "Zürich"]) for k in keys}
    expected = None
    for trial in range(6):
        order = keys[:]
        rng.shuffle(order)
        others = _random_records(rng, rng.randint(0, 40), nested=False)
        at = rng.randint(0, len(others))
        records_ = [*others[:at], {"ref": "T", "name": "t", **{k: target[k] for k in order}}, *others[at:]]
        if fmt == "csv":
            columns = sorted({k for r in records_ for k in r}, key=lambda _: rng.random())
            text = io.StringIO()
            writer = csv.writer(text)
            writer.writerow(columns)
            writer.writerows([[r.get(k) or "" for k in columns] for r in records_])
            data = text.getvalue().encode()
        else:
            data = _random_file(rng, fmt, records_)
        out = run(feed, io.BytesIO(data), name=f"p.{fmt}", chunk_rows=rng.choice([1, 3, 65_536]))
        (row,) = [r for r in out.accepted.to_pylist() if r["ref"] == "T"]
        got = [(a["name"], a["value"]) for a in row["attributes"]]
        assert [name for name, _ in got] == sorted(name for name, _ in got)
        # one name from two keys: by key, whatever the values (the later key's value is the name's last)
        assert [v for name, v in got if name == "colour"] == [
            target["attr_colour"],
            target["attribute_colour"],
        ]
        expected = expected or got
        assert got == expected, (trial, order)
