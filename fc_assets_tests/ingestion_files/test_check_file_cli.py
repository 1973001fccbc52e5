"""`fc-assets check-file`, run as the real console command: output, exit codes, stderr lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fc_assets_tests.ingestion_files.corpus import INVENTORY_REJECTS, billion_laughs, inventory_csv
from fc_assets_tests.ingestion_files.helpers import parse_rejects

FC_ASSETS = str(Path(sys.executable).parent / "fc-assets")


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """Every scenario launched at once (each command pays ~2 s of imports), results by name."""
    d = tmp_path_factory.mktemp("check-file")
    (d / "stock.csv").write_bytes(inventory_csv(";", bom=True, crlf=True))
    (d / "wrong.csv").write_bytes(b"sku,quantity\n1,2\n")
    (d / "lol.xml").write_bytes(billion_laughs())
    (d / "empty.xml").write_bytes(b"")
    (d / "declaration.xml").write_bytes(b'<?xml version="1.0" encoding="UTF-8"?>\n')
    (d / "empty.jsonl").write_bytes(b"")
    (d / "blank.jsonl").write_bytes(b"\xef\xbb\xbf\n \r\n\t\n")  # a BOM and blank lines
    (d / "entity.xml").write_bytes(
        b"<stock>\n<item><sku>A</sku><location>L</location><qty>1</qty></item>\n"
        b"<item><sku>&nbsp;B</sku><location>L</location><qty>1</qty></item>\n</stock>\n"
    )
    ok_rows = b"sku,location,qty\n" + b"".join(f"S{i},L,{i}\n".encode() for i in range(99)) + b"bad,L,x\n"
    (d / "ok.csv.gz").write_bytes(__import__("gzip").compress(ok_rows))
    scenarios = {
        "ok": ["inventory", str(d / "stock.csv"), "--rejects", str(d / "out" / "rejects.csv")],
        "missing_column": ["inventory", str(d / "wrong.csv")],
        "billion_laughs": ["inventory", str(d / "lol.xml")],
        "undeclared_entity": ["inventory", str(d / "entity.xml")],
        "empty_xml": ["inventory", str(d / "empty.xml")],
        "declaration_only": ["inventory", str(d / "declaration.xml")],
        "empty_jsonl": ["inventory", str(d / "empty.jsonl")],
        "blank_jsonl": ["inventory", str(d / "blank.jsonl")],
        "unknown_feed": ["nope", str(d / "stock.csv")],
        "no_file": ["inventory", str(d / "absent.csv")],
        "strict_failed": ["inventory", str(d / "stock.csv"), "--strict"],
        "strict_passed": ["inventory", str(d / "ok.csv.gz"), "--strict"],
        "parquet": [
            "inventory",
            str(d / "ok.csv.gz"),
            "--write-parquet",
            str(d / "out" / "accepted.parquet"),
        ],
    }
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = {
        name: subprocess.Popen(
            [FC_ASSETS, "check-file", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name, args in scenarios.items()
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=180)
        results[name] = (proc.returncode, out, err)
    return d, results


def test_a_readable_file_prints_one_json_line_and_exits_0(cli):
    d, results = cli
    code, out, err = results["ok"]
    assert code == 0, err
    assert err == ""  # stderr is not a terminal: no progress
    lines = out.splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert {
        k: summary[k]
        for k in ("feed", "path", "format", "rows", "accepted", "rejected", "rejects_path", "failed")
    } == {
        "feed": "inventory",
        "path": str(d / "stock.csv"),
        "format": "csv",
        "rows": 11,
        "accepted": 4,
        "rejected": 7,
        "rejects_path": str(d / "out" / "rejects.csv"),
        "failed": True,
    }
    assert isinstance(summary["seconds"], float)
    assert parse_rejects((d / "out" / "rejects.csv").read_bytes()) == INVENTORY_REJECTS


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("missing_column", ["wrong.csv: field location_ref: missing required column", "'sku', 'quantity'"]),
        ("billion_laughs", ["lol.xml: XML DOCTYPE declares entities"]),
        # (both were "XML prolog too large to inspect (no root element in the first 256 KiB)")
        ("empty_xml", ["empty.xml: empty file: no XML root element ("]),
        ("declaration_only", ["declaration.xml: empty file: no XML root element, only its prolog ("]),
        # (both were read as 0 rows: an empty snapshot, which with send_disappeared deletes every row sent
        # before; a 0-byte CSV, JSON or XML file is refused too)
        ("empty_jsonl", ["empty.jsonl: empty file: no JSON lines ("]),
        ("blank_jsonl", ["blank.jsonl: empty file: no JSON lines ("]),
        # (was "row 2: XML syntax error at line 0: no element found")
        (
            "undeclared_entity",
            [
                "entity.xml: row 2: XML syntax error at line 3: Entity 'nbsp' not defined "
                "(XML predefines only &amp; &lt; &gt; &quot; &apos;: a literal & is written &amp;)"
            ],
        ),
        ("unknown_feed", ["unknown feed 'nope' (feeds: inventory, locations, products)"]),
        ("no_file", ["absent.csv: cannot open: No such file or directory"]),
    ],
)
def test_unreadable_files_exit_2_with_one_clear_line(cli, scenario, expected):
    _, results = cli
    code, out, err = results[scenario]
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("fc-assets check-file: ")
    for part in expected:
        assert part in err


def test_strict_exits_3_only_over_the_threshold(cli):
    _, results = cli
    code, out, _ = results["strict_failed"]
    assert code == 3 and json.loads(out)["failed"] is True
    code, out, err = results["strict_passed"]
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["rows"], summary["rejected"], summary["failed"], summary["rejects_path"]) == (
        100,
        1,
        False,
        None,
    )


def test_write_parquet_streams_the_accepted_rows_typed(cli):
    import pyarrow.parquet as pq

    from fc_assets.ingestion.feeds import get_feed

    d, results = cli
    code, out, err = results["parquet"]
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["accepted"], summary["rejected"]) == (99, 1)
    assert summary["parquet_path"] == str(d / "out" / "accepted.parquet")
    table = pq.read_table(summary["parquet_path"])
    assert table.schema.names == get_feed("inventory").arrow_schema.names
    assert table.num_rows == 99
    assert table.column("sku_ref").to_pylist() == [f"S{i}" for i in range(99)]  # "bad" (qty x) is not there
    assert table.column("qty").to_pylist()[:3] == [0, 1, 2]
    assert not list((d / "out").glob("accepted.parquet.tmp*"))
    # dictionary-encoded: the text columns that repeat (location "L"), not the unique SKUs
    group = pq.ParquetFile(summary["parquet_path"]).metadata.row_group(0)
    columns = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    assert columns["location_ref"].has_dictionary_page
    assert not columns["sku_ref"].has_dictionary_page and not columns["_row"].has_dictionary_page


def test_progress_goes_to_a_terminal_at_most_once_a_second(monkeypatch, capsys):
    from fc_assets.ingestion.read import check_file as command
    from fc_assets.ingestion.read.validate import ValidationReport

    progress = command._Progress("big.csv")
    report = ValidationReport("inventory", "big.csv", rows=1_000_000, rejected=12)
    progress(report)  # within the first second: nothing
    monkeypatch.setattr(command, "PROGRESS_EVERY_S", 0.0)
    progress(report)
    progress.done()
    err = capsys.readouterr().err
    assert err == "\rbig.csv: 1,000,000 rows, 12 rejected …\n"


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_a_stopped_check_leaves_no_partial_parquet_and_says_so(tmp_path, signame):
    """`kill` (or a closed terminal) during `--write-parquet`: the temporary Parquet file is removed, one
    line on stderr names the file and the signal, and the exit status is 128 + the signal's number."""
    import signal
    import time

    rows = 3_000_000
    src = tmp_path / "big.csv"
    src.write_bytes(b"sku,location,qty\n" + b"SKU-000000001,LOC-1,5\n" * rows)
    out = tmp_path / "out" / "accepted.parquet"
    proc = subprocess.Popen(
        [FC_ASSETS, "check-file", "inventory", str(src), "--write-parquet", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("out/accepted.parquet.tmp*")):
        assert proc.poll() is None, "check-file ended before its Parquet file was started"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    sig = getattr(signal, signame)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, (proc.returncode, stderr)
    assert stdout == ""
    assert not list(tmp_path.glob("out/accepted.parquet*"))
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and signame in lines[0] and str(src) in lines[0], stderr


_SIGNAL_AFTER_THE_CHECK = """
import os, signal, sys, time
from fc_assets.ingestion.read import validate
from fc_assets.ingestion.read.validate import ValidationReport

class Report(ValidationReport):
    def summary(self):  # the check is over: the signal comes while its JSON line is being made
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.5)
        return super().summary()

validate.check_file = lambda feed, path, *a, **k: Report(feed, path)
sys.argv = ["fc-assets", "check-file", "inventory", "x.csv"]
from fc_assets.cli import main
main()
"""


def test_a_signal_after_the_check_is_no_traceback():
    """SIGTERM once the check has ended (while its JSON line is printed): the process ends by the signal,
    not with `_Stopped` escaping as a traceback and exit status 1 (the handler outlived the check)."""
    import signal

    proc = subprocess.run(
        [sys.executable, "-c", _SIGNAL_AFTER_THE_CHECK],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode in (-signal.SIGTERM, 128 + signal.SIGTERM), (proc.returncode, proc.stderr)


def test_a_stop_while_the_parquet_file_is_being_opened_leaves_nothing(tmp_path, monkeypatch):
    """The race behind a flaky SIGTERM test: the signal came right after the temporary file was created,
    before the writer was assigned, and `abort` (which only cleaned up after a writer) left the file."""
    import pyarrow.parquet as pq

    from fc_assets.ingestion.read.validate import check_file

    class Stopped(BaseException):
        pass

    def opened_then_stopped(where, *args, **kwargs):
        open(where, "wb").close()  # noqa: SIM115 - the file exists, as after ParquetWriter's first step
        raise Stopped

    monkeypatch.setattr(pq, "ParquetWriter", opened_then_stopped)
    src = tmp_path / "stock.csv"
    src.write_bytes(b"sku,location,qty\nS1,L1,5\n")
    with pytest.raises(Stopped):
        check_file("inventory", src, parquet_path=tmp_path / "out" / "accepted.parquet")
    assert not list((tmp_path / "out").glob("accepted.parquet*"))
