"""A JSON array's record longer than FC_MAX_VALUE_BYTES is a rejected row, as a JSONL line is, and is never
built: the guard under ijson (json_guard.py) holds a record's bytes back until it is known to fit and passes
a marker in place of one that does not; the records after it are read as usual.

Before, ijson built every record whole as Python objects before anything checked it: `fc-assets check-file
inventory` on `[{...3,000,000 keys}]` (44 MB) peaked at 453 MB and took 8.3 s, on a record holding an array
of 3,000,000 objects (24 MB) at 709 MB, and both records were accepted."""

from __future__ import annotations

import gzip
import io
import json
import random
import sys
from pathlib import Path

import ijson
import pytest

from fc_assets.ingestion.feeds import inventory_feed
from fc_assets.ingestion.read.json_guard import JsonGuard
from fc_assets.ingestion.read.readers import _record_depth
from fc_assets.ingestion.spec import FormatOptions
from fc_assets_tests.ingestion_files.helpers import FC_ASSETS, parse_rejects, run, run_measured

LIMIT = 300
TOO_LONG = f"record longer than {LIMIT:,} bytes (FC_MAX_VALUE_BYTES)"
INVENTORY = inventory_feed()
# text a naive scan would take for structure: brackets in strings, escaped quotes and backslashes
TRICKY = '[]{}\\"]}\\\\'


def record(sku: str, size: int | None = None, tricky: int = 0) -> bytes:
    """An inventory record's text with `tricky` fields of TRICKY, padded to exactly `size` bytes (by more
    fields and spaces: no single token may be longer than the limit, or the file is refused)."""
    fields = {"sku": sku, "location": "L", "qty": "1"} | {f"t{i}": TRICKY * 5 for i in range(tricky)}
    text = json.dumps(fields, separators=(",", ":"))[:-1]
    if size is not None:
        for i in range(size):
            if size - len(text) <= 120:
                break
            text += f',"p{i}":"' + "x" * 80 + '"'
        text += " " * (size - len(text) - 1)
    return (text + "}").encode()


def big_array(n: int) -> bytes:
    return b"[" + b",".join([b'{"a":[1,"]"]}'] * n) + b"]"


def _records() -> list[bytes]:
    """Records around the limit, in every order that matters; some longer than it."""
    return [
        record("OVER_FIRST", LIMIT + 1),
        record("AT_LIMIT", LIMIT),
        record("SMALL"),
        record("TRICKY_OVER", tricky=8),
        record("OVER_2", LIMIT * 3),
        b'{"sku":"NESTED_OVER","x":' + big_array(60) + b"}",
        b"17",
        b'"text ]}"',
        big_array(40),  # a record that is an array
        record("JUST_UNDER", LIMIT - 1),
        b"{}",
        record("OVER_LAST", tricky=20),
    ]


def _drain(guard: JsonGuard, block: int) -> bytes:
    out = bytearray()
    while piece := guard.read(block):
        out += piece
    return bytes(out)


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 1000, 1 << 16])
@pytest.mark.parametrize("sep", [b",", b" ,\n\t"], ids=["compact", "spaced"])
def test_the_guard_passes_records_that_fit_and_a_marker_for_each_longer_one(block, sep):
    """Whichever way the reads cut the bytes (a closing bracket a block or many after its opening one),
    the parser sees each record that fits as it was and the marker in place of each longer one."""
    records = _records()
    assert sorted(len(r) > LIMIT for r in records).count(True) == 6
    doc = b" [" + sep.join(records) + b"] "
    guard = JsonGuard(io.BytesIO(doc), "r.json", LIMIT, record_depth=2)
    seen = json.loads(_drain(guard, block))
    assert seen == [guard.marker if len(r) > LIMIT else json.loads(r) for r in records]


@pytest.mark.parametrize("block", [1, 5, 64, 1 << 16])
def test_the_guard_passes_a_file_of_records_that_fit_unchanged(block):
    doc = b'{"meta": ' + big_array(200) + b', "items": [' + b",".join(_records()[1:3] * 50) + b"]}"
    assert _drain(JsonGuard(io.BytesIO(doc), "r.json", LIMIT, record_depth=3), block) == doc


@pytest.mark.parametrize("block", [3, 64, 1 << 16])
def test_only_containers_at_the_records_depth_are_replaced(block):
    """Under `data.items.item` (depth 4) a long value elsewhere at that depth may be replaced too, but no
    record is lost, added or changed, and longer values nearer the top are passed whole."""
    records = _records()
    doc = (
        b'{"meta": {"a": {"b": ' + big_array(60) + b'}, "c": ' + big_array(80) + b"}, "
        b'"data": {"items": [' + b",".join(records) + b'], "n": {"m": ' + big_array(50) + b"}}}"
    )
    prefix = "data.items.item"
    guard = JsonGuard(io.BytesIO(doc), "r.json", LIMIT, record_depth=_record_depth(prefix))
    seen = list(ijson.items(io.BytesIO(_drain(guard, block)), prefix))
    assert seen == [guard.marker if len(r) > LIMIT else json.loads(r) for r in records]
    assert _record_depth(prefix) == 4 and _record_depth("item") == 2 and _record_depth("") == 1


ALPHABET = ['"', "\\", "[", "]", "{", "}", ",", ":", "a", " ", "é", "\n"]


def _value(rng: random.Random, depth: int) -> object:
    kind = rng.random()
    if depth > 5 or kind < 0.4:
        return rng.choice([1, "".join(rng.choices(ALPHABET, k=rng.randrange(8))), None, True, 2.5])
    if kind < 0.7:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(6))]
    keys = ("".join(rng.choices(ALPHABET, k=rng.randrange(4))) for _ in range(rng.randrange(6)))
    return {key: _value(rng, depth + 1) for key in keys}


@pytest.mark.parametrize("seed", range(8))
def test_the_guard_on_random_documents(seed):
    """Random records (strings full of brackets, quotes and backslashes; escaped or raw non-ASCII; indented
    or not) under random prefixes, limits and read sizes: each record that fits is passed as it was, each
    longer container is the marker."""
    rng = random.Random(seed)
    for _ in range(60):
        records = [_value(rng, 1) for _ in range(rng.randrange(12))]
        texts = [
            json.dumps(r, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1])) for r in records
        ]
        body = "[" + rng.choice([",", " , ", ",\n  "]).join(texts) + "]"
        prefix = rng.choice(["item", "a.item", "a.b.item"])
        doc = {
            "item": body,
            "a.item": '{"z": [1, {"q": [2]}], "a": ' + body + ', "y": {"w": [[1]]}}',
            "a.b.item": '{"a": {"x": {"y": [1, 2]}, "b": ' + body + "}}",
        }[prefix]
        limit = rng.randrange(40, 200)  # above the longest token the values make
        guard = JsonGuard(io.BytesIO(doc.encode()), "r.json", limit, record_depth=_record_depth(prefix))
        seen = list(ijson.items(io.BytesIO(_drain(guard, rng.choice([3, 8, 64, 1000]))), prefix))
        over = [
            len(t.encode()) > limit and isinstance(r, list | dict)
            for r, t in zip(records, texts, strict=True)
        ]
        assert seen == [guard.marker if o else r for r, o in zip(records, over, strict=True)]


@pytest.fixture
def limit(settings_env):
    settings_env(FC_MAX_VALUE_BYTES=LIMIT)


def _array(*records: bytes) -> bytes:
    return b"[" + b",\n".join(records) + b"]"


def test_records_longer_than_the_limit_are_rejected_rows(limit):
    """First, in the middle, two in a row and last; at the limit is accepted, one byte over is not."""
    body = _array(
        record("OVER_FIRST", tricky=8),
        record("A", LIMIT),
        record("OVER_BY_ONE", LIMIT + 1),
        record("B"),
        b'{"sku":"ARRAY","location":"L","qty":"1","x":' + big_array(100) + b"}",
        record("OVER_TWICE", LIMIT * 10),
        record("C", LIMIT - 1),
        big_array(100),
    )
    out = run(INVENTORY, io.BytesIO(body), name="long.json")
    assert (out.report.rows, out.report.accepted, out.report.rejected) == (8, 3, 5)
    assert out.column("sku_ref") == ["A", "B", "C"]
    assert out.column("_row") == [2, 4, 7]
    # the row's text is not shown (it may be megabytes), as for a JSONL line too long
    assert out.rejects == [(row, "_record", "", TOO_LONG) for row in (1, 3, 5, 6, 8)]


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("where", ["declared", "detected"])
def test_records_under_a_path_are_limited_at_their_depth(limit, where, gz):
    items = _array(record("A", LIMIT), record("OVER", LIMIT + 1), record("B"))
    meta = b'{"note": "' + b"m" * (LIMIT - 10) + b'", "list": ' + big_array(50) + b"}"
    if where == "declared":
        body = b'{"meta": ' + meta + b', "data": {"items": ' + items + b"}}"
        feed = inventory_feed(format_options=FormatOptions(json_records="data.items.item"))
    else:
        body = b'{"meta": ' + meta + b', "items": ' + items + b"}"
        feed = INVENTORY
    out = run(feed, io.BytesIO(gzip.compress(body) if gz else body), name="wrapped.json" + ".gz" * gz)
    assert out.column("sku_ref") == ["A", "B"]
    assert out.rejects == [(2, "_record", "", TOO_LONG)]


def test_a_record_cut_by_the_end_of_the_file_is_still_a_broken_file(limit):
    from fc_assets.ingestion.read.unreadable import FileUnreadable

    for cut in (record("A")[:-3], record("OVER", LIMIT * 2)[:-3]):
        with pytest.raises(FileUnreadable, match="invalid JSON after record 1"):
            run(INVENTORY, io.BytesIO(b"[" + record("X") + b"," + cut), name="cut.json")


# ------------------------------------------------------------------------------ memory, as a user runs it

ADDRESS_SPACE = 3 * 1024**3
PEAK_RSS_MB = 250  # before: 453 MB (keys), 709 MB (array); now ~120 MB, a normal 44 MB file ~200 MB
NORMAL = 100


def _hostile_files(d: Path) -> dict[str, Path]:
    normal = [record(f"S{i:03d}") for i in range(NORMAL)]
    wide = (
        b'{"sku":"WIDE","location":"L","qty":"1",'
        + b",".join(b'"k%d":"v"' % i for i in range(3_000_000))
        + b"}"
    )
    nested = b'{"sku":"NESTED","location":"L","qty":"1","x":[' + b",".join([b'{"a":1}'] * 3_000_000) + b"]}"
    files = {"wide.json": wide, "nested.json": nested}
    for name, hostile in files.items():
        (d / name).write_bytes(_array(*normal[:50], hostile, *normal[50:]))
    return {name: d / name for name in files}


@pytest.mark.timeout(900)
def test_a_record_of_millions_of_values_is_rejected_in_bounded_memory(tmp_path):
    paths = _hostile_files(tmp_path)
    commands = {
        name: [FC_ASSETS, "check-file", "inventory", str(path), "--rejects", f"{path}.rejects.csv"]
        for name, path in paths.items()
    }
    results = run_measured(commands, ADDRESS_SPACE, paths)
    for name, path in paths.items():
        code, out, err, peak_mb = results[name]
        print(f"{name}: {path.stat().st_size / 1e6:.0f} MB, peak RSS {peak_mb:.0f} MB", file=sys.stderr)
        assert peak_mb < PEAK_RSS_MB, f"{name}: peak RSS {peak_mb:.0f} MB"
        assert code == 0, err[-3000:]
        summary = json.loads(out)
        assert (summary["rows"], summary["accepted"], summary["rejected"]) == (NORMAL + 1, NORMAL, 1), name
        assert summary["reasons"] == {
            "_record: record longer than 8,388,608 bytes (FC_MAX_VALUE_BYTES)": 1
        }, name
        rejects = parse_rejects(Path(f"{path}.rejects.csv").read_bytes())
        assert rejects == [(51, "_record", "", "record longer than 8,388,608 bytes (FC_MAX_VALUE_BYTES)")]
