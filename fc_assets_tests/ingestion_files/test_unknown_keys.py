"""Records with ever-changing keys (a new key per line) are read in memory bounded by the feed's declaration,
not by the file: the readers keep only the columns the feed can use, and report the others once per file.

Before (`main` at 257cdd4), each chunk held one column per distinct key: `fc-assets check-file inventory`
on these 3 MB files peaked at 2.5 GB (JSONL, fast path), 3.6 GB and 224 s (JSONL line by line: nested
objects), 1.9 GB (JSON array); a normal file of the same size at ~95 MB."""

from __future__ import annotations

import io
import json
import random
import sys
from pathlib import Path

import pytest

from fc_assets.ingestion.feeds import Feed, inventory_feed, locations_feed, products_feed
from fc_assets.ingestion.read import jsonl_fast, readers, records
from fc_assets.ingestion.read.arrow_values import as_batch
from fc_assets.ingestion.read.source_keys import NAMES_SHOWN, SourceKeys
from fc_assets.ingestion.read.streams import ByteSource
from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets.ingestion.spec import Field
from fc_assets_tests.ingestion_files.helpers import check_files_measured, run, run_measured

ADDRESS_SPACE = 3 * 1024**3  # the child fails rather than taking the machine down
PEAK_RSS_MB = 400  # a normal file of the same size: ~95 MB
N = 20_000
PAD = "p" * 80


def _record(i: int, nested: bool = False) -> dict:
    extra = {"a": PAD, "b": [1, 2]} if nested else PAD
    return {"sku": f"SKU-{i:06d}", "location": "LOC1", "qty": str(i % 7), f"extra_{i}": extra}


def _files(d: Path) -> dict[str, Path]:
    files = {
        # flat strings, ~150 bytes a record: the JSONL fast path's shape
        "fast.jsonl": "".join(json.dumps(_record(i), separators=(",", ":")) + "\n" for i in range(N)),
        # a nested object under each unknown key: the line-by-line reader
        "lines.jsonl": "".join(json.dumps(_record(i, nested=True)) + "\n" for i in range(N)),
        "array.json": "[" + ",".join(json.dumps(_record(i)) for i in range(N)) + "]",
        "records.xml": "<stock>"
        + "".join(
            f"<item><sku>SKU-{i:06d}</sku><location>LOC1</location><qty>{i % 7}</qty><extra_{i}>{PAD}</extra_{i}></item>"
            for i in range(N)
        )
        + "</stock>",
    }
    for name, text in files.items():
        (d / name).write_text(text)
    return {name: d / name for name in files}


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    """`fc-assets check-file inventory` on each file, in parallel: (exit code, stdout, stderr, peak RSS MB)."""
    return check_files_measured("inventory", _files(tmp_path_factory.mktemp("unknown-keys")), ADDRESS_SPACE)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", ["fast.jsonl", "lines.jsonl", "array.json", "records.xml"])
def test_ever_changing_keys_are_read_in_bounded_memory(checked, name):
    code, out, err, peak_mb = checked[name]
    assert code == 0, err[-3000:]
    summary = json.loads(out)
    assert (summary["rows"], summary["accepted"], summary["rejected"]) == (N, N, 0)
    assert peak_mb < PEAK_RSS_MB, f"{name}: peak RSS {peak_mb:.0f} MB"
    # ignored, not silently: the distinct unknown keys, the first ones named (a nested object as one key)
    assert summary["unknown_keys"] == {
        "distinct": N,
        "names": [f"extra_{i}" for i in range(NAMES_SHOWN)],
    }


def _feed_rows(feed: Feed, body: bytes, name: str):
    return run(feed, io.BytesIO(body), name=name)


def test_a_file_of_known_keys_reports_none_and_reads_as_before():
    body = b"".join(
        json.dumps({"sku": f"S{i}", "location": "L", "qty": str(i)}).encode() + b"\n" for i in range(50)
    )
    outcome = _feed_rows(inventory_feed(), body, "ok.jsonl")
    assert outcome.report.unknown_keys is None
    assert "unknown_keys" not in outcome.report.summary()
    assert outcome.column("sku_ref") == [f"S{i}" for i in range(50)]
    assert outcome.column("qty") == list(range(50))


def test_nested_keys_are_kept_where_a_field_or_attribute_can_be():
    """Nested objects are descended only where a wanted key can be: `address.city` (locations), attributes
    by prefix (products); `meta` is skipped whole and reported as one key."""
    rec = {
        "ref": "L1",
        "name": "Store",
        "latitude": "1",
        "longitude": "2",
        "address": {"city": "Berlin", "floor": "3"},
        "meta": {"source": {"system": "x"}, "n": 1},
    }
    outcome = _feed_rows(locations_feed(), (json.dumps(rec) + "\n").encode(), "loc.jsonl")
    assert outcome.column("city") == ["Berlin"]
    assert outcome.report.unknown_keys == {"distinct": 2, "names": ["address.floor", "meta"]}

    product = {"ref": "P1", "name": "Shirt", "attributes": {"colour": "red"}, "attr_size": "M", "x": "1"}
    outcome = _feed_rows(products_feed(), (json.dumps(product) + "\n").encode(), "p.jsonl")
    attrs = outcome.column("attributes")[0]
    assert sorted((a["name"], a["value"]) for a in attrs) == [("colour", "red"), ("size", "M")]
    assert outcome.report.unknown_keys == {"distinct": 1, "names": ["x"]}


def test_a_record_too_deep_under_an_unknown_key_is_still_rejected():
    deep = b'{"sku":"A","location":"L","qty":"1","x":' + b'{"a":' * 100 + b"1" + b"}" * 100 + b"}\n"
    body = deep + b'{"sku":"B","location":"L","qty":"2"}\n'
    outcome = _feed_rows(inventory_feed(), body, "deep.jsonl")
    assert (outcome.report.rows, outcome.report.accepted) == (2, 1)
    assert outcome.rejects[0][3] == "record nested deeper than 64 levels"


def test_ever_changing_keys_a_feed_may_read_are_refused_past_the_cap(monkeypatch):
    """A computed field that does not declare its columns may read any key: nothing is left out, and a
    chunk past MAX_CELLS (distinct keys x records) makes the file unreadable, naming it, instead of growing
    as the square of the keys (the cap made small here: 1,000 records of a new key each)."""
    monkeypatch.setattr(records, "MAX_CELLS", 500 * 500)
    feed = Feed(
        "any_column",
        fields=(Field("ref", required=True), Field("n", compute=lambda cols: cols["ref"])),
        keys=("ref",),
        sender="event_product",
    )
    assert SourceKeys.for_feed(feed).everything
    body = b"".join(json.dumps({"ref": f"R{i}", f"k{i}": "v"}).encode() + b"\n" for i in range(1000))
    for name in ("wide.jsonl", "wide.json", "wide.xml"):
        if name.endswith(".json"):
            data = b"[" + body.rstrip().replace(b"}\n{", b"},{") + b"]"
        elif name.endswith(".xml"):
            data = (
                b"<r>"
                + b"".join(b"<i><ref>R%d</ref><k%d>v</k%d></i>" % (i, i, i) for i in range(1000))
                + b"</r>"
            )
        else:
            data = body
        with pytest.raises(FileUnreadable) as e:
            _feed_rows(feed, data, name)
        assert str(e.value).startswith(f"{name}: ")
        assert "the 1,000 records from row 1 on carry 1,001 distinct keys: more than 250,000 cells" in str(
            e.value
        )
    # as many keys over few records is a wide file, not an ever-changing one: read
    wide = json.dumps({"ref": "R", **{f"k{i}": "v" for i in range(5000)}}).encode() + b"\n"
    assert _feed_rows(feed, wide * 3, "wide3.jsonl").report.accepted == 3


READ_ANY_COLUMN = """
import sys
from fc_assets.ingestion.feeds import Feed
from fc_assets.ingestion.read.readers import read_file
from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets.ingestion.spec import Field

fields = (Field("ref", required=True), Field("n", compute=lambda cols: cols["ref"]))
feed = Feed("any_column", fields=fields, keys=("ref",), sender="event_product")
try:
    for _ in read_file(feed, sys.argv[1]):
        pass
except FileUnreadable as e:
    print(e)
    sys.exit(2)
"""


@pytest.mark.timeout(300)
def test_keys_past_the_cap_are_refused_before_their_columns_are_made(tmp_path):
    """8,000 keys over 60,000 records (a 1.4 MB file) for a feed that reads any key: refused as before, but
    before a column per key is made. The JSONL fast path made the chunk's columns, and xml_fast a block's
    (null-padded: keys x records), before counting them: 2.2 GB peak for either."""
    n, names = 60_000, 8_000
    files = {
        "wide.jsonl": "".join(
            json.dumps({"ref": f"R{i}", f"k{i % names}": "v"}, separators=(",", ":")) + "\n" for i in range(n)
        ),
        "wide.xml": "<r>"
        + "".join(f"<i><ref>R{i}</ref><k{i % names}>v</k{i % names}></i>" for i in range(n))
        + "</r>",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    commands = {name: [sys.executable, "-c", READ_ANY_COLUMN, str(tmp_path / name)] for name in files}
    results = run_measured(commands, ADDRESS_SPACE, {name: tmp_path / name for name in files})
    for name, (code, out, err, peak_mb) in results.items():
        assert code == 2, (name, out, err[-2000:])
        assert f"carry {names + 1:,} distinct keys: more than" in out, out
        assert peak_mb < 400, f"{name}: peak RSS {peak_mb:.0f} MB"


def test_a_missing_column_error_names_the_keys_the_feed_does_not_use():
    body = b'{"SKU Number":"A","Store":"L","On Hand":"1"}\n'
    with pytest.raises(FileUnreadable) as e:
        _feed_rows(inventory_feed(), body, "wrong.jsonl")
    assert "missing required column(s): sku_ref" in str(e.value)
    assert "keys the feed does not use: ['SKU Number']" in str(e.value)  # ("On Hand" is qty's alias)


KEYS = ["sku", "location", "qty", "status", "note", "Größe", "attr_x", "a:b", "_x"]


def _read(data: bytes, chunk_rows: int, fast: bool, keys: SourceKeys):
    src = ByteSource(io.BytesIO(data), "f.jsonl")
    try:
        if fast:
            batches = list(readers._read_jsonl(src, chunk_rows, keys))
        else:
            with src.open() as stream:
                batches = list(readers._read_jsonl_lines(stream, chunk_rows, 2000, keys=keys))
        return ("ok", [as_batch(b) for b in batches])
    except Exception as e:  # noqa: BLE001 - compared
        return ("raised", type(e).__name__, str(e))


@pytest.mark.parametrize("seed", range(30))
def test_the_fast_path_keeps_and_counts_the_same_keys_as_the_line_reader(monkeypatch, seed):
    monkeypatch.setattr(jsonl_fast, "BLOCK_BYTES", 300)
    rng = random.Random(seed)
    lines = []
    for i in range(rng.randint(20, 200)):
        keys = rng.sample(KEYS, rng.randint(1, 5)) + [
            f"u{rng.randrange(40)}" for _ in range(rng.randint(0, 3))
        ]
        lines.append(json.dumps({k: f"v{i}" for k in dict.fromkeys(keys)}, separators=(",", ":")))
    data = ("\n".join(lines) + "\n").encode()
    chunk_rows = rng.choice([1, 7, 50, 1000])
    feed = inventory_feed() if seed % 2 else products_feed()
    fast_keys, slow_keys = SourceKeys.for_feed(feed), SourceKeys.for_feed(feed)
    fast, slow = _read(data, chunk_rows, True, fast_keys), _read(data, chunk_rows, False, slow_keys)
    assert fast[0] == slow[0] == "ok", (fast, slow)
    assert len(fast[1]) == len(slow[1])
    for a, b in zip(fast[1], slow[1], strict=True):
        assert a.schema.names == b.schema.names
        assert a.equals(b)
        assert all(fast_keys.wanted(n) for n in a.schema.names if not n.startswith("_"))
    assert fast_keys.summary() == slow_keys.summary()
    assert fast_keys.summary() is not None


def test_unknown_keys_are_counted_in_bounded_memory(monkeypatch):
    from fc_assets.ingestion.read import source_keys

    monkeypatch.setattr(source_keys, "DISTINCT_LIMIT", 100)
    keys = SourceKeys(["sku"])
    for i in range(1000):
        assert not keys.wanted(f"k{i % 500}")
    assert keys.summary() == {"distinct_at_least": 100, "names": [f"k{i}" for i in range(NAMES_SHOWN)]}
    assert len(keys._unknown) == 100


def test_a_catalogue_with_many_distinct_attribute_names_is_not_refused():
    """Products whose attributes vary by category (`attr_<name>`, one or a few per record, 1,100 distinct
    names over 70,000 records: a 3.4 MB JSONL file). Every key is one the feed reads (attribute prefix), so
    nothing is unknown. 257cdd4 accepted every row with its attribute (at ~2.5 GB peak); f66cc2c refused the
    file whole (a column per key passed MAX_CELLS); the readers now fold attribute keys into one column."""
    body = b"".join(
        json.dumps({"ref": f"P{i}", "name": "N", f"attr_k{i % 1100}": f"v{i}"}).encode() + b"\n"
        for i in range(70_000)
    )
    outcome = _feed_rows(products_feed(), body, "catalogue.jsonl")
    assert outcome.report.accepted == 70_000
    assert outcome.report.unknown_keys is None
    assert outcome.column("attributes") == [
        [{"name": f"k{i % 1100}", "type": "STRING", "value": f"v{i}"}] for i in range(70_000)
    ]


def test_unknown_key_names_are_shown_with_control_characters_escaped():
    """A key is the file's text: a newline in it must not forge a line of the run's log."""
    keys = SourceKeys(["sku"])
    for name in ["sku", "bad\nINFO - forged line", "tab\there", "plain"]:
        keys.wanted(name)
    assert keys.summary() == {"distinct": 3, "names": ["bad\\nINFO - forged line", "tab\\there", "plain"]}
