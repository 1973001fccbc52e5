"""Hostile and broken input (issue 14): each case through `fc-assets check-file` as a user runs it (exit code,
the one stderr line) and, where values matter, through the validation functions.

Every command runs with its address space capped (RLIMIT_AS 3 GiB), so a reader that blows up on deep
nesting fails the test instead of taking the machine down (a 200 KB file of `[` once reached 23 GB)."""

from __future__ import annotations

import gzip
import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fc_assets.ingestion.feeds import inventory_feed
from fc_assets.ingestion.read.readers import open_raw
from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets.ingestion.read.validate import check_file
from fc_assets_tests.ingestion_files.helpers import parse_rejects, run

FC_ASSETS = str(Path(sys.executable).parent / "fc-assets")
ADDRESS_SPACE = 3 * 1024**3
INVENTORY = inventory_feed()
ROWS = b'{"sku":"A","location":"L","qty":1}'


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _files(d: Path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """name → (check-file arguments, extra environment)."""
    w = lambda name, body: (d / name).write_bytes(body) and str(d / name)  # noqa: E731
    record = b'{"sku":"A","location":"L","qty":1,"x":'
    long_value = b"x" * 1_500_000
    xml_items = b"<item><sku>X&xxe;Y</sku><location>L</location><qty>1</qty></item>" + (
        b"<item><sku>A</sku><location>L</location><qty>1</qty></item>"
    )
    return {
        # JSON nesting: refused before the parser tracks 100k levels (memory stays bounded)
        "brackets": ([w("brackets.json", b"[" * 100_000)], {}),
        "deep_object": (
            [w("deep.json", b"[" + record + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}]")],
            {},
        ),
        "deep_array": ([w("deeparr.json", b"[" + record + b"[" * 300 + b"1" + b"]" * 300 + b"}]")], {}),
        "deep_jsonl": (
            [
                w(
                    "deep.jsonl",
                    record + b'{"a":' * 900 + b"1" + b"}" * 900 + b"}\n"
                    b'{"sku":"B","location":"L","qty":2,"x":' + b"[" * 300 + b"1" + b"]" * 300 + b"}\n"
                    b'{"sku":"C","location":"L","qty":3}\n',
                ),
                "--rejects",
                str(d / "deep.rejects.csv"),
            ],
            {},
        ),
        # long values: a per-value limit (FC_MAX_VALUE_BYTES) with a clear error / a rejected line
        "long_string": (
            [w("long.json", b'[{"sku":"A","location":"L","qty":1,"note":"' + long_value + b'"}]')],
            {"FC_MAX_VALUE_BYTES": "1000000"},
        ),
        "long_number": (
            [w("longnum.json", b'[{"sku":"A","location":"L","qty":' + b"1" * 1_500_000 + b"}]")],
            {"FC_MAX_VALUE_BYTES": "1000000"},
        ),
        "long_line": (
            [w("long.jsonl", b'{"note":"' + long_value + b'"}\n' + ROWS + b"\n")],
            {"FC_MAX_VALUE_BYTES": "1000000"},
        ),
        # CSV field limits of the header parser
        "no_newlines": ([w("nonl.csv", b"sku,location,qty," + b"x" * 400_000)], {}),
        "big_header_field": ([w("bigfield.csv", b"sku,location,qty," + b"x" * 140_000 + b"\nA,L,1\n")], {}),
        "long_header": (
            [
                w(
                    "wide.csv",
                    b"sku,location,qty," + b",".join(b"c%d" % i for i in range(60_000)) + b"\nA,L,1\n",
                )
            ],
            {},
        ),
        # decompressed size
        "gzip_bomb": (
            [w("bomb.csv.gz", gzip.compress(b"sku,location,qty\n" + b"A,L,1\n" * 1_000_000))],
            {"FC_MAX_DECOMPRESSED_BYTES": "1000000"},
        ),
        "gzip_within_limit": (
            [w("fine.csv.gz", gzip.compress(b"sku,location,qty\n" + b"A,L,1\n" * 1000))],
            {"FC_MAX_DECOMPRESSED_BYTES": "1000000"},
        ),
        # XML: DOCTYPE hidden behind a processing instruction holding "<!--", an external DTD
        "xml_pi_comment": (
            [
                w(
                    "pi.xml",
                    b'<?xml version="1.0"?><?foo <!-- ?><!DOCTYPE r [<!ENTITY xxe "EVIL">]><!-- -->'
                    b"<inventory>" + xml_items + b"</inventory>",
                )
            ],
            {},
        ),
        "xml_external_dtd": (
            [
                w(
                    "ext.xml",
                    b'<?xml version="1.0"?><!DOCTYPE inventory SYSTEM "http://127.0.0.1:9/x.dtd">'
                    b"<inventory>" + xml_items + b"</inventory>",
                )
            ],
            {},
        ),
        "xml_bare_doctype": (
            [
                w(
                    "bare.xml",
                    b'<?xml version="1.0"?><?pi <!-- ?><!DOCTYPE inventory><!-- c --><inventory>'
                    + xml_items.replace(b"X&xxe;Y", b"XY")
                    + b"</inventory>",
                )
            ],
            {},
        ),
        # smaller ones
        "header_only": ([w("header-only.csv", b"sku,location,qty")], {}),
        "header_only_newline": ([w("header-only-nl.csv", b"sku,location,qty\n")], {}),
        "utf16": ([w("unicode.txt", "sku\tlocation\tqty\r\nÄ1\tL1\t5\r\n".encode("utf-16"))], {}),
    }


# launched as real commands (each pays seconds of imports on a loaded machine); the others in-process
CLI_CASES = ("brackets", "deep_object", "deep_array", "big_header_field", "gzip_bomb", "header_only")
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return _files(tmp_path_factory.mktemp("hostile-files"))


@pytest.fixture
def check(files, settings_env):
    """`check(name)`: the in-process equivalent of the command with the file's settings: the report, or the
    FileUnreadable (exit 2)."""

    def check_one(name):
        args, env = files[name]
        settings_env(**env)
        try:
            return check_file("inventory", args[0], args[2] if len(args) > 2 else None)
        except FileUnreadable as e:
            return e

    return check_one


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    scenarios = {k: v for k, v in _files(d).items() if k in CLI_CASES}
    procs = {
        name: subprocess.Popen(
            [FC_ASSETS, "check-file", "inventory", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore", **env},
            preexec_fn=_cap_memory,
        )
        for name, (args, env) in scenarios.items()
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=600)
        results[name] = (proc.returncode, out, err)
    return d, results


UNREADABLE = [
    ("brackets", "brackets.json: JSON nesting deeper than 64 levels"),
    ("deep_object", "deep.json: JSON nesting deeper than 64 levels"),
    ("deep_array", "deeparr.json: JSON nesting deeper than 64 levels"),
    ("long_string", "long.json: JSON value longer than 1,000,000 bytes (FC_MAX_VALUE_BYTES)"),
    ("long_number", "longnum.json: JSON value longer than 1,000,000 bytes (FC_MAX_VALUE_BYTES)"),
    ("no_newlines", "nonl.csv: CSV header line longer than 256 KiB"),
    ("big_header_field", "bigfield.csv: CSV header cannot be parsed: field larger than field limit"),
    ("long_header", "wide.csv: CSV header line longer than 256 KiB"),
    ("gzip_bomb", "bomb.csv.gz: decompressed content is larger than 1,000,000 bytes"),
    ("xml_pi_comment", "pi.xml: XML DOCTYPE declares entities: refused"),
    ("xml_external_dtd", "ext.xml: XML DOCTYPE has a subset or DTD: refused"),
]


@pytest.mark.parametrize(("name", "message"), UNREADABLE, ids=[n for n, _ in UNREADABLE])
def test_hostile_file_is_unreadable_with_its_reason(cli, check, name, message):
    if name in CLI_CASES:
        code, out, err = cli[1][name]
        assert (code, out) == (2, ""), err[-3000:]
        assert err.count("\n") == 1 and "Traceback" not in err
    else:
        e = check(name)
        assert isinstance(e, FileUnreadable), e
        err = str(e)
    assert message in err


def _summary(check, cli, name):
    if name not in CLI_CASES:
        report = check(name)
        assert not isinstance(report, FileUnreadable), report
        return report.summary()
    code, out, err = cli[1][name]
    assert code == 0, err[-3000:]
    return json.loads(out)


def test_too_deep_jsonl_records_are_rejected_rows(files, check, cli):
    s = _summary(check, cli, "deep_jsonl")
    assert (s["rows"], s["accepted"], s["rejected"]) == (3, 1, 2)
    rejects = parse_rejects(Path(files["deep_jsonl"][0][2]).read_bytes())
    assert [(r[0], r[1], r[3]) for r in rejects] == [
        (1, "_record", "record nested deeper than 64 levels"),
        (2, "_record", "record nested deeper than 64 levels"),
    ]


def test_jsonl_line_over_the_value_limit_is_a_rejected_row(check, cli):
    s = _summary(check, cli, "long_line")
    assert (s["rows"], s["accepted"], s["rejected"]) == (2, 1, 1)
    assert s["reasons"] == {"_record: line longer than 1,000,000 bytes (FC_MAX_VALUE_BYTES)": 1}


def test_gzip_within_the_decompressed_limit_is_read(check, cli):
    assert _summary(check, cli, "gzip_within_limit")["accepted"] == 1000


def test_a_bare_doctype_after_a_processing_instruction_is_fine(check, cli):
    s = _summary(check, cli, "xml_bare_doctype")
    assert (s["rows"], s["accepted"]) == (2, 2)


@pytest.mark.parametrize("name", ["header_only", "header_only_newline"])
def test_a_header_only_csv_is_a_valid_empty_file(check, cli, name):
    s = _summary(check, cli, name)
    assert (s["rows"], s["accepted"], s["rejected"], s["failed"]) == (0, 0, 0, False)


def test_utf16_with_bom_is_decoded(files, check, cli):
    s = _summary(check, cli, "utf16")
    assert (s["rows"], s["accepted"]) == (1, 1)
    out = run(INVENTORY, Path(files["utf16"][0][0]))
    assert (out.column("sku_ref"), out.column("location_ref"), out.column("qty")) == (["Ä1"], ["L1"], [5])


# ------------------------------------------------------------------------------- in-process cases


def _read_seconds(body: bytes) -> float:
    """CPU seconds of one read (process time: other processes on a loaded machine do not count)."""
    start = time.process_time()
    raw = open_raw(io.BytesIO(body), name="x.jsonl")
    assert sum(b.num_rows for b in raw.batches) == 2
    return time.process_time() - start


def test_a_long_jsonl_line_is_read_in_linear_time(settings_env):
    """Before: the unfinished line was re-copied with every 1 MiB block (300 MB line: 89 s)."""
    settings_env(FC_MAX_VALUE_BYTES=1 << 30)
    line = lambda mb: b'{"note":"' + b"x" * (mb << 20) + b'"}\n' + ROWS + b"\n"  # noqa: E731
    small_body, large_body = line(12), line(48)
    # interleaved, best of three each: a burst of load hits both sizes alike
    rounds = [(_read_seconds(small_body), _read_seconds(large_body)) for _ in range(3)]
    small, large = min(r[0] for r in rounds), min(r[1] for r in rounds)
    assert large / small < 8, (small, large)  # 4x the bytes: linear ~4, quadratic ~16


def test_nul_bytes_in_refs_reject_the_row():
    body = b"sku,location,qty\nA\x00B,L,1\nC,L\x00,2\nD,L,3\n"
    out = run(INVENTORY, io.BytesIO(body), name="nul.csv")
    assert out.column("sku_ref") == ["D"]
    assert [(r[0], r[1], r[3]) for r in out.rejects] == [
        (1, "sku_ref", "contains a NUL byte"),
        (2, "location_ref", "contains a NUL byte"),
    ]


def test_rejects_file_neutralises_spreadsheet_formulas():
    body = b"sku,location,qty\nA,L,=1+2\nB,L,-3\nC,L,@SUM(A1)\nD,L,+x\nE,L,\"-2+3+cmd|' /C calc'!A0\"\n"
    out = run(INVENTORY, io.BytesIO(body), name="f.csv")
    assert [r[2] for r in out.rejects] == ["'=1+2", "-3", "'@SUM(A1)", "'+x", "'-2+3+cmd|' /C calc'!A0"]


def test_unexpanded_entity_never_cuts_a_value(monkeypatch):
    """Defence in depth behind the prolog check: a record holding an entity reference the parser did not
    expand (an external DTD is never loaded) makes the file unreadable instead of `X&xxe;Y` → `X`."""
    from fc_assets.ingestion.read import xml_records

    monkeypatch.setattr(xml_records, "check_prolog", lambda head, name: None)
    xml = (
        b'<?xml version="1.0"?><!DOCTYPE inventory SYSTEM "x.dtd"><inventory>'
        b"<item><sku>X&xxe;Y</sku><location>L</location><qty>1</qty></item>"
        b"<item><sku>A</sku><location>L</location><qty>1</qty></item></inventory>"
    )
    with pytest.raises(FileUnreadable, match="entity reference"):
        run(INVENTORY, io.BytesIO(xml), name="ent.xml")


@pytest.mark.parametrize("block", [1, 2, 3, 5, 7, 64])
def test_json_guard_tracks_strings_and_escapes_across_blocks(block):
    """Brackets inside strings, escaped quotes and runs of backslashes never count as nesting, wherever
    the parser's reads cut the bytes; real nesting and long tokens do."""
    import json as stdlib_json

    from fc_assets.ingestion.read.json_guard import JsonGuard

    doc = b'[{"a":"x\\\\\\"[[[[[\\\\","b":"]]]]{{","c":[[1]],"d":"\\\\\\\\"}]'
    assert stdlib_json.loads(doc)[0]["c"] == [[1]]  # (valid JSON: 4 levels)

    def drain(data: bytes, depth: int, value: int) -> None:
        guard = JsonGuard(io.BytesIO(data), "g.json", value, depth)
        while guard.read(block):
            pass

    drain(doc, 4, 20)
    with pytest.raises(FileUnreadable, match="nesting deeper than 3 levels"):
        drain(doc, 3, 20)
    with pytest.raises(FileUnreadable, match="value longer than 12 bytes"):
        drain(doc, 4, 12)  # "x\\\"[[[[[\\" is 17 bytes between its quotes


def test_a_lone_surrogate_escape_never_becomes_a_changed_value():
    """`"SUR\\ud800X"` (an unpaired UTF-16 surrogate: no Unicode character) was read as `SUR?X` by the JSON
    parser and sent to Fluent as that ref; a paired escape (an emoji) is a character and stays one."""
    lone = b'[{"sku":"SUR\\ud800X","location":"L","qty":1},{"sku":"B","location":"L","qty":2}]'
    with pytest.raises(FileUnreadable, match=r"unpaired UTF-16 surrogate escape \\ud800"):
        run(INVENTORY, io.BytesIO(lone), name="lone.json")
    low = lone.replace(b"\\ud800X", b"\\uDC00")
    with pytest.raises(FileUnreadable, match=r"unpaired UTF-16 surrogate escape \\uDC00"):
        run(INVENTORY, io.BytesIO(low), name="low.json")
    paired = lone.replace(b"\\ud800X", b"\\ud83d\\ude00X")
    assert run(INVENTORY, io.BytesIO(paired), name="pair.json").column("sku_ref") == ["SUR\U0001f600X", "B"]
    escaped = lone.replace(b"\\ud800X", b"\\\\ud800X")  # a backslash, then the text "ud800X"
    assert run(INVENTORY, io.BytesIO(escaped), name="bs.json").column("sku_ref") == ["SUR\\ud800X", "B"]


@pytest.mark.parametrize("block", [1, 2, 3, 5, 7, 64])
def test_json_guard_checks_surrogate_escapes_across_blocks(block):
    from fc_assets.ingestion.read.json_guard import JsonGuard

    def drain(data: bytes) -> None:
        guard = JsonGuard(io.BytesIO(data), "g.json", 100)
        while guard.read(block):
            pass

    drain(b'["\\ud83d\\ude00", "\\\\ud800", "\\\\\\ud83d\\uDE00"]')  # pairs, an escaped backslash
    for bad in (b'["\\ud83d"]', b'["x\\ud83d\\u0041"]', b'["\\ude00\\ud83d"]', b'["\\\\\\udfff"]'):
        with pytest.raises(FileUnreadable, match="unpaired UTF-16 surrogate"):
            drain(bad)
