"""A feed's declared `json_records` when a key on the path holds a dot (`{"inventory.items": [...]}`,
`{"data": {"v1.0": [...]}}`): ijson joins a prefix's parts with `.` without escaping them, so the dotted
string alone does not say how deep the records are.

Before, the depth was counted from the dots (`inventory.items.item`: 4 where the records open at 3), so the
guard under ijson limited the wrong brackets: a record over FC_MAX_VALUE_BYTES was accepted whole, and an
array nested in a record was replaced by the guard's marker (the record accepted with that text). A path
that matched nothing read as a file of 0 rows, accepted; a top-level key with a dot was never detected; a
file holding both spellings of the path was read from both arrays.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import subprocess
from dataclasses import replace

import pytest

from fc_assets.ingestion.feeds import inventory_feed
from fc_assets.ingestion.read import validate
from fc_assets.ingestion.read.json_guard import JsonGuard
from fc_assets.ingestion.read.streams import HEAD_BYTES
from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets.ingestion.spec import FormatOptions
from fc_assets_tests.ingestion_files.corpus import ForwardOnly
from fc_assets_tests.ingestion_files.helpers import FC_ASSETS, run
from fc_assets_tests.ingestion_files.test_json_record_limit import LIMIT, TOO_LONG, big_array, record

RECORDS = (
    b"["
    + b",\n".join(
        [
            record("A"),
            record("OVER", LIMIT + 1),
            b'{"sku":"NESTED","location":"L","qty":"1","x":' + big_array(60) + b"}",
            record("B"),
        ]
    )
    + b"]"
)
READ = ["A", "B"]  # what the file holds for the feed: the two others are rejected, too long
REJECTS = [(2, "_record", "", TOO_LONG), (3, "_record", "", TOO_LONG)]


@pytest.fixture(autouse=True)
def limit(settings_env):
    settings_env(FC_MAX_VALUE_BYTES=LIMIT)


def feed(path: str | tuple[str, ...] | list[str] | None):
    return inventory_feed(format_options=FormatOptions(json_records=path))


def wrap(template: str, records: bytes = RECORDS) -> bytes:
    return template.encode().replace(b"RECORDS", records).replace(b"SMALL", b"[" + record("C") + b"]")


def write(tmp_path, name: str, data: bytes, encoding: str = "plain"):
    if encoding == "utf-16":
        data = codecs.BOM_UTF16_LE + data.decode().encode("utf-16-le")
    elif encoding == "gzip":
        data, name = gzip.compress(data), name + ".gz"
    path = tmp_path / name
    path.write_bytes(data)
    return path


DOTTED = [
    ('{"inventory.items": RECORDS}', "inventory.items.item", ("inventory.items",)),
    ('{"data": {"v1.0": RECORDS}}', "data.v1.0.item", ("data", "v1.0")),
    ('{"sap.export": {"meta": {"n": 2}, "rows.2024": RECORDS}}', "sap.export.rows.2024.item", None),
]


@pytest.mark.parametrize("encoding", ["plain", "gzip", "utf-16"])
@pytest.mark.parametrize("form", ["dotted", "keys"])
@pytest.mark.parametrize(("template", "dotted", "keys"), DOTTED, ids=["top", "versioned", "deep"])
def test_records_under_a_key_with_a_dot_are_read_at_their_depth(
    tmp_path, template, dotted, keys, form, encoding
):
    """As `fc-assets check-file` reads it: the records over the limit are rejected, the others read."""
    keys = keys or ("sap.export", "rows.2024")
    chosen = feed(dotted if form == "dotted" else keys)
    path = write(tmp_path, "stock.json", wrap(template), encoding)
    out = run(chosen, path)
    assert out.column("sku_ref") == READ
    assert out.rejects == REJECTS


def test_check_file_reports_the_rows_of_a_dotted_path(tmp_path, monkeypatch):
    """`validate.check_file`, what `fc-assets check-file` calls, with the feed declaring the path."""
    monkeypatch.setattr(validate, "get_feed", lambda name: feed("inventory.items.item"))
    path = write(tmp_path, "stock.json", wrap('{"inventory.items": RECORDS}'))
    report = validate.check_file("inventory", path)
    assert (report.rows, report.accepted, report.rejected) == (4, 2, 2)


@pytest.mark.parametrize("encoding", ["plain", "gzip"])
@pytest.mark.parametrize("form", ["dotted", "keys"])
def test_records_starting_after_the_head_are_read_at_their_depth(tmp_path, form, encoding):
    """The path is resolved in the file's first 256 KiB; records starting later are found by a second
    read up to their array (a file is a path in the pipeline and `check-file`)."""
    meta = json.dumps([{"k": "v" * 100}] * (HEAD_BYTES // 100))
    data = wrap('{"meta": ' + meta + ', "sap.export": RECORDS}')
    chosen = feed("sap.export.item" if form == "dotted" else ["sap.export"])
    out = run(chosen, write(tmp_path, "late.json", data, encoding))
    assert out.column("sku_ref") == READ
    assert out.rejects == REJECTS


@pytest.mark.parametrize("late", [False, True], ids=["in-head", "after-head"])
def test_a_key_path_in_a_forward_only_stream(late):
    """A stream read once (an API caller's): the path is resolved in its head; records starting after it
    are read at the key path's own depth (a dotted string's dots are then taken as steps between keys)."""
    meta = json.dumps([{"k": "v" * 100}] * (HEAD_BYTES // 100)) if late else "1"
    data = wrap('{"meta": ' + meta + ', "sap.export": {"v1.0": RECORDS}}')
    out = run(feed(["sap.export", "v1.0"]), ForwardOnly(data), name="s.json")
    assert (out.column("sku_ref"), out.rejects) == (READ, REJECTS)


def test_no_records_after_the_head_of_a_forward_only_stream_is_refused():
    """Not looked for beyond the head: no record read is refused, naming the path (an empty array too)."""
    meta = json.dumps([{"k": "v" * 100}] * (HEAD_BYTES // 100))
    data = wrap('{"meta": ' + meta + ', "rows": RECORDS}')
    with pytest.raises(FileUnreadable, match=r's\.json: no records at .*"data", "rows".*matches nothing'):
        run(feed(["data", "rows"]), ForwardOnly(data), name="s.json")


def test_a_top_level_key_with_a_dot_is_detected(tmp_path):
    out = run(feed(None), write(tmp_path, "sap.json", wrap('{"sap.export": RECORDS}')))
    assert out.column("sku_ref") == READ
    assert out.rejects == REJECTS


def test_check_file_command_reads_a_top_level_key_with_a_dot(tmp_path):
    """`fc-assets check-file inventory sap.json`, the command itself. Before: exit 2, "JSON is neither an
    array of records nor an object holding one"."""
    path = write(tmp_path, "sap.json", wrap('{"sap.export": RECORDS}'))
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "FC_MAX_VALUE_BYTES": str(LIMIT)}
    proc = subprocess.run(
        [FC_ASSETS, "check-file", "inventory", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["rows"], summary["accepted"], summary["rejected"]) == (4, 2, 2)


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ('{"data": {"rows": RECORDS}}', "data.rowz.item"),
        ('{"data": {"rows": RECORDS}}', ("data", "rowz")),
        ('{"data": {"rows": RECORDS}}', ("rows",)),
        ('{"meta": "' + "m" * 200 + '"}', "data.rows.item"),
    ],
)
def test_a_path_matching_nothing_is_refused_naming_the_file_and_the_path(tmp_path, template, path):
    """Before: read as a file of 0 rows, accepted (a full snapshot of nothing)."""
    target = write(tmp_path, "stock.json", wrap(template))
    with pytest.raises(FileUnreadable) as e:
        run(feed(path), target)
    shown = path if isinstance(path, str) else json.dumps(list(path))
    assert str(e.value).startswith(f"{target}: ") and shown in str(e.value)
    assert "matches nothing" in str(e.value)


def test_a_path_matching_nothing_in_a_long_file_is_refused(tmp_path):
    meta = json.dumps([{"k": "v" * 100}] * (HEAD_BYTES // 100))
    with pytest.raises(FileUnreadable, match=r"long\.json: .*data\.rows\.item.*matches nothing"):
        run(
            feed("data.rows.item"),
            write(tmp_path, "long.json", wrap('{"meta": ' + meta + ', "rows": RECORDS}')),
        )


def test_a_key_path_to_something_else_than_an_array_is_refused(tmp_path):
    with pytest.raises(FileUnreadable, match=r'x\.json: .*\["data"\].*not an array'):
        run(feed(["data"]), write(tmp_path, "x.json", wrap('{"data": {"rows": RECORDS}}')))


def test_an_empty_array_at_the_path_is_a_file_without_records(tmp_path):
    out = run(feed(["data", "v1.0"]), write(tmp_path, "empty.json", b'{"data": {"v1.0": []}}'))
    assert out.report.rows == 0


@pytest.mark.parametrize(
    ("path", "nested", "dotted"),
    [
        ("a.b.item", READ, READ),  # a dotted string: either spelling, each at its own depth
        (("a", "b"), READ, "matches nothing"),
        (("a.b",), "matches nothing", READ),
    ],
    ids=["dotted", "two-keys", "one-key"],
)
def test_both_spellings_of_a_dotted_path_in_different_files(tmp_path, path, nested, dotted):
    """`{"a": {"b": [...]}}` and `{"a.b": [...]}` are the same prefix to ijson: a dotted string reads
    either, a list of keys only its own."""
    for template, expected in (('{"a": {"b": RECORDS}}', nested), ('{"a.b": RECORDS}', dotted)):
        target = write(tmp_path, "f.json", wrap(template))
        if expected == READ:
            out = run(feed(path), target)
            assert (out.column("sku_ref"), out.rejects) == (READ, REJECTS), template
        else:
            with pytest.raises(FileUnreadable, match=expected):
                run(feed(path), target)


def test_a_key_path_refuses_a_file_holding_the_other_spelling_first(tmp_path):
    """ijson would read both arrays (the same prefix): refused rather than reading the wrong records."""
    data = wrap('{"a.b": RECORDS, "a": {"b": RECORDS}}')
    with pytest.raises(FileUnreadable, match=r'both\.json: .*\["a", "b"\].*\["a\.b"\]'):
        run(feed(("a", "b")), write(tmp_path, "both.json", data))


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ('{"a": {"b": RECORDS}, "a.b": RECORDS}', ("a", "b")),
        ('{"a": {"b": []}, "a.b": RECORDS}', ("a", "b")),
        ('{"a.b": RECORDS, "x": [1, {"y": [2, 3]}], "a": {"b": SMALL}}', ("a.b",)),
        ('{"a": {"b": RECORDS}, "a.b": RECORDS}', "a.b.item"),
        ('{"a.b": RECORDS, "a": {"b": SMALL}}', "a.b.item"),
        ('{"a.b": RECORDS, "a": {"b": SMALL}}', None),
    ],
    ids=["keys", "keys-empty", "one-key", "dotted-nested-first", "dotted-dotted-first", "detected"],
)
def test_a_file_holding_both_spellings_is_refused_when_the_other_comes_after(tmp_path, template, path):
    """The parser reads every array at the dotted path; the guard counts the elements of the one resolved,
    and more records than that refuse the file (before: read from both, the second's at the wrong depth).
    (A deeper array after it, longer than FC_MAX_VALUE_BYTES, opens at the records' depth: the guard passes
    the parser its marker instead, so nothing of it is read: `SMALL` here.)"""
    with pytest.raises(
        FileUnreadable, match=r"both\.json: .*is ambiguous in this file: \d records were read"
    ):
        run(feed(path), write(tmp_path, "both.json", wrap(template)))


@pytest.mark.parametrize(
    "template",
    [
        '{"x": [1, 2], "a": {"b": RECORDS}, "y": [{"c": [1, 2]}, 3], "a.c": RECORDS}',
        '{"a": {"z": [{"q": 1}, 2], "b": RECORDS, "w": [3, 4]}, "b": [5, 6]}',
    ],
)
def test_arrays_beside_the_records_are_not_counted_as_theirs(tmp_path, template):
    out = run(feed(("a", "b")), write(tmp_path, "f.json", wrap(template)))
    assert (out.column("sku_ref"), out.rejects) == (READ, REJECTS)


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 1 << 16])
def test_the_guard_counts_the_separators_of_the_nth_array_at_its_depth(block):
    """Commas in strings, in records and in the arrays beside it are not the array's; one block at a time."""
    doc = (
        b'{"m": [1, {"k": "a,b]"}], "a": {"z": [1, 2, 3], "b": [{"s": ",[,"}, 7, [8, 9], "t,u", {}], '
        b'"w": [{"v": [1, 2]}]}, "c": [1, 2]}'
    )
    for ordinal, commas in ((1, 2), (2, 4), (3, 0)):  # opening at depth 3: m's object (0), z, b, w
        guard = JsonGuard(io.BytesIO(doc), "g.json", 1000, record_depth=4, array_ordinal=ordinal)
        while guard.read(block):
            pass
        assert (guard.array_state, guard.array_commas) == ("after", commas)


def test_a_key_path_is_declared_as_a_list_or_tuple_of_keys():
    assert FormatOptions(json_records=["data", "v1.0"]).json_records == ("data", "v1.0")
    assert hash(replace(FormatOptions(), json_records=("a",)))
    for bad in (["data", 1], ["data", ""], [], "", b"data.item", 3):
        with pytest.raises(ValueError, match="json_records"):
            FormatOptions(json_records=bad)


def test_an_xml_record_name_with_a_dot_is_read(tmp_path):
    """XML names its record element by local name, no path: a dot in it is just a character."""
    rows = "".join(
        f"<sap.item><sku>{s}</sku><location>L</location><qty>1</qty></sap.item>" for s in ("A", "B")
    )
    path = tmp_path / "x.xml"
    path.write_text(f"<sap.export><meta.x><n>2</n></meta.x>{rows}</sap.export>")
    out = run(inventory_feed(format_options=FormatOptions(xml_record="sap.item")), path)
    assert out.column("sku_ref") == ["A", "B"]


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ('{"pages": [{"n": 1, "items": RECORDS}, {"n": 2, "items": SMALL}]}', "pages.item.items.item"),
        ('{"pages": [{"items": []}, {"items": RECORDS}, {"items": SMALL}]}', "pages.item.items.item"),
        ('[{"rows": RECORDS}, {"rows": SMALL}]', "item.rows.item"),
        ('{"batches": [RECORDS, SMALL]}', "batches.item.item"),
    ],
    ids=["pages", "first-page-empty", "top-array", "array-of-arrays"],
)
def test_a_dotted_path_through_an_array_reads_the_records_of_each(tmp_path, template, path):
    """ijson reads the records of every array a path through an array names (each page's), as before
    c88fc67; there they were refused as "ambiguous" after the first page (the guard counted its records
    only)."""
    out = run(feed(path), write(tmp_path, "paged.json", wrap(template)))
    assert (out.column("sku_ref"), out.rejects) == ([*READ, "C"], REJECTS)


def straddling(shift: int) -> str:
    """Metadata whose escaped surrogate pair (`\\ud83d\\ude00`, an emoji as `json.dumps` writes it) starts
    `shift` bytes before the end of the head, then the records (after the head)."""
    text = '{"meta": ['
    while len(text) < HEAD_BYTES - 200:
        text += json.dumps("note " + "x" * 60) + ", "
    text += '"' + "y" * (HEAD_BYTES - shift - len(text) - 1) + '\\ud83d\\ude00"], "rows": RECORDS}'
    assert text.index("\\ud83d") == HEAD_BYTES - shift
    return text


@pytest.mark.parametrize("encoding", ["plain", "gzip"])
@pytest.mark.parametrize("path", ["rows.item", ("rows",)], ids=["dotted", "keys"])
@pytest.mark.parametrize("shift", [6, 9, 12])
def test_a_surrogate_pair_cut_by_the_end_of_the_head_is_not_refused(tmp_path, shift, path, encoding):
    """The path is looked for in the head first: its end is not the document's. Failed before (shifts 6 and
    9): "unpaired UTF-16 surrogate escape \\ud83d"."""
    out = run(feed(path), write(tmp_path, "late.json", wrap(straddling(shift)), encoding))
    assert (out.column("sku_ref"), out.rejects) == (READ, REJECTS)


def test_a_lone_surrogate_at_the_end_of_the_head_is_still_refused(tmp_path):
    text = straddling(6).replace("\\ude00", "x")
    with pytest.raises(FileUnreadable, match=r"unpaired UTF-16 surrogate escape \\ud83d"):
        run(feed(("rows",)), write(tmp_path, "late.json", wrap(text)))


@pytest.mark.parametrize("template", ["RECORDS", '{"": RECORDS}'])
def test_a_path_dot_item_matches_nothing(tmp_path, template):
    """ijson names the elements of an array whose prefix is "" (the root, a top-level key "") `item`, never
    `.item`: before, the array was taken for the records' and the file read as one of 0 rows."""
    with pytest.raises(FileUnreadable, match=r"'\.item' matches nothing"):
        run(feed(".item"), write(tmp_path, "f.json", wrap(template)))


def test_a_repeated_key_is_named_as_a_cause_of_an_ambiguous_path(tmp_path):
    with pytest.raises(FileUnreadable, match=r"ambiguous in this file: 1 records.*a key repeated"):
        run(feed(None), write(tmp_path, "f.json", wrap('{"rows": RECORDS, "rows": SMALL}')))


def test_an_empty_json_records_string_is_refused_at_declaration(tmp_path):
    """`""` (ijson's prefix of the document itself) was read as "not set" at c88fc67, the records detected (the
    first top-level array's elements) where a user may mean the document as one record; an empty list is
    refused."""
    with pytest.raises(ValueError, match="json_records: '' names no path"):
        feed("")


WRONG_KIND = [  # (file, path, what the refusal says after "the feed's json_records <path>")
    (
        '{"data": {"rows": null}}',
        "data.rows.item",
        ": 'data.rows' is null in the file, not an array of records",
    ),
    ('{"data": {"rows": null}}', ("data", "rows"), " is null in the file, not an array of records"),
    (
        '{"data": {"rows": {"sku": "A"}}}',
        "data.rows.item",
        ": 'data.rows' is an object in the file, not an array of records",
    ),
    (
        '{"data": {"rows": {"sku": "A"}}}',
        ("data", "rows"),
        " is an object in the file, not an array of records",
    ),
    (
        '{"data": {"rows": "none today"}}',
        "data.rows.item",
        ": 'data.rows' is a string (\"none today\") in the file, not an array of records",
    ),
    ('{"data": {"rows": 0}}', ("data", "rows"), " is a number (0) in the file, not an array of records"),
    (
        '{"data": {"rows": true}}',
        ("data", "rows"),
        " is a boolean (true) in the file, not an array of records",
    ),
    ('{"data": null}', "data.rows.item", ": 'data' is null in the file, not an object"),
    ('{"data": [1]}', ("data", "rows"), ': ["data"] is an array in the file, not an object'),
    ('[{"sku": "A"}]', ("data", "rows"), ": the file is an array, not an object"),
    (
        '{"pages": [{"rows": null}, {"rows": null}]}',
        "pages.item.rows.item",
        ": 'pages.item.rows' is null in the file, not an array of records",
    ),
]


@pytest.mark.parametrize("stream", ["file", "forward-only"])
@pytest.mark.parametrize(("template", "path", "said"), WRONG_KIND)
def test_a_path_to_something_else_than_an_array_says_what_it_found(tmp_path, template, path, said, stream):
    """Before, a dotted path whose array was null, an object, a string or a number "matches nothing in the
    file", and a key path's "is not an array": the path was there, holding the wrong kind of value."""
    source = write(tmp_path, "s.json", wrap(template)) if stream == "file" else ForwardOnly(wrap(template))
    with pytest.raises(FileUnreadable) as e:
        run(feed(path), source, name="s.json")
    shown = repr(path) if isinstance(path, str) else json.dumps(list(path))
    assert str(e.value) == f"s.json: the feed's json_records {shown}{said}"


def test_a_path_holding_the_wrong_kind_in_the_head_of_a_long_forward_only_stream_says_so():
    """A stream read once is looked at in its first 256 KiB: a null at the path there is named, though the
    file goes on (before: "no records at …: it matches nothing in the file, or an empty array")."""
    meta = json.dumps([{"k": "v" * 100}] * (HEAD_BYTES // 100))
    data = wrap('{"data": {"rows": null}, "meta": ' + meta + "}")
    with pytest.raises(FileUnreadable) as e:
        run(feed(["data", "rows"]), ForwardOnly(data), name="s.json")
    assert (
        str(e.value)
        == 's.json: the feed\'s json_records ["data", "rows"] is null in the file, not an array of records'
    )
    data = wrap('{"data": {"rowz": []}, "meta": ' + meta + ', "data.rows": null}')
    with pytest.raises(FileUnreadable) as e:  # (what the path holds after the head is not looked at)
        run(feed("data.rows.item"), ForwardOnly(data), name="s.json")
    assert "matches nothing in the file's first 256 KiB" in str(e.value)
