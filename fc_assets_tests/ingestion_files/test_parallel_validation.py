"""Chunks mapped and validated on worker threads (validate.WORKERS) must give exactly what one thread gives:
every record once, under its own row number, accepted or rejected for the same reason. Checked on generated
CSV files with malformed records (wrong field counts, quoted values spanning lines, blank lines) at random
positions, with and without a BOM and CRLF line ends, read in small Arrow blocks and small chunks so that
many chunks are in flight; the row numbers are also checked against Python's csv module as the reference."""

from __future__ import annotations

import csv
import io
import random
import threading

import pytest

from fc_assets.ingestion.feeds import get_feed
from fc_assets.ingestion.read import readers, validate
from fc_assets.ingestion.read.rejects import RECORD_FIELD, RejectsWriter
from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets_tests.ingestion_files.helpers import parse_rejects, run

INVENTORY = get_feed("inventory")
HEADER = ["sku", "location", "qty", "status"]


def generate(rng: random.Random, records: int, *, bom: bool, crlf: bool) -> bytes:
    eol = "\r\n" if crlf else "\n"
    lines = [",".join(HEADER)]
    for i in range(records):
        if rng.random() < 0.03:
            lines.append("")  # a blank line: not a record
        fields = [f"SKU-{i}", f"LOC-{i % 7}", str(rng.randint(0, 500)), rng.choice(["AVAILABLE", "reserved"])]
        roll = rng.random()
        if roll < 0.03:
            fields.append("extra")  # too many fields
        elif roll < 0.06:
            fields.pop()  # too few
        elif roll < 0.09:
            fields[1] = f'"LOC{eol}{i}"'  # a quoted value over two lines
        elif roll < 0.12:
            fields[2] = rng.choice(["N/A", "12abc", "-1"])  # a rejected cell
        lines.append(",".join(fields))
    text = eol.join(lines) + eol
    return (b"\xef\xbb\xbf" if bom else b"") + text.encode()


def reference(data: bytes) -> tuple[dict[int, str], set[int]]:
    """Python's csv module: data record number -> sku of the well-formed records, and the malformed ones."""
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""))
    next(reader)
    good, bad, n = {}, set(), 0
    for fields in reader:
        if not fields:
            continue
        n += 1
        if len(fields) == len(HEADER):
            good[n] = fields[0]
        else:
            bad.add(n)
    return good, bad


@pytest.mark.parametrize("seed", range(6))
def test_workers_number_and_keep_every_record_as_one_thread_does(tmp_path, monkeypatch, seed):
    rng = random.Random(seed)
    data = generate(rng, rng.randint(500, 3000), bom=seed % 2 == 1, crlf=seed % 3 == 0)
    path = tmp_path / f"stock-{seed}.csv"
    path.write_bytes(data)
    monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", 2048)  # many Arrow blocks, invalid rows across them
    chunk = rng.choice([17, 64, 301])

    monkeypatch.setattr(validate, "WORKERS", 1)
    serial = run(INVENTORY, path, chunk_rows=chunk)
    monkeypatch.setattr(validate, "WORKERS", 3)
    parallel = run(INVENTORY, path, chunk_rows=chunk)

    assert parallel.accepted.equals(serial.accepted)
    assert parallel.rejects == serial.rejects
    assert parallel.report.summary() | {"seconds": 0} == serial.report.summary() | {"seconds": 0}

    good, bad = reference(data)
    accepted_rows = parallel.column("_row")
    assert accepted_rows == sorted(set(accepted_rows))  # in file order, none twice
    rejected_rows = {r[0] for r in parallel.rejects}
    assert set(accepted_rows).isdisjoint(rejected_rows)
    assert set(accepted_rows) | rejected_rows == set(good) | bad  # none lost
    assert {r[0] for r in parallel.rejects if r[1] == RECORD_FIELD} == bad
    assert dict(zip(accepted_rows, parallel.column("sku_ref"), strict=True)).items() <= good.items()
    assert parallel.report.rows == len(good) + len(bad)


def test_a_worker_failure_is_raised_and_the_threads_end(tmp_path, monkeypatch):
    path = tmp_path / "stock.csv"
    path.write_bytes(generate(random.Random(9), 2000, bom=False, crlf=False))
    calls = 0
    original = validate.ChunkValidator.run

    def failing(self, mapped, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 5:
            raise RuntimeError("chunk 5 failed")
        return original(self, mapped, **kwargs)

    monkeypatch.setattr(validate.ChunkValidator, "run", failing)
    monkeypatch.setattr(validate, "WORKERS", 2)
    before = set(threading.enumerate())
    with pytest.raises(RuntimeError, match="chunk 5 failed"):
        run(INVENTORY, path, chunk_rows=50)
    assert not [t for t in threading.enumerate() if t not in before and t.is_alive()]


@pytest.mark.parametrize("workers", [1, 3])
def test_invalid_utf8_deep_in_the_file_names_its_row(tmp_path, monkeypatch, workers):
    lines = [b"sku,location,qty"] + [f"SKU-{i},L,{i}".encode() for i in range(1, 3001)]
    lines[2500] = b"SKU-\xff,L,1"  # data record 2500
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", 2048)
    monkeypatch.setattr(validate, "WORKERS", workers)
    with pytest.raises(FileUnreadable, match="bad.csv") as e:
        run(INVENTORY, path, chunk_rows=64)
    assert e.value.row == 2500 and "UTF-8" in str(e.value)


def test_a_file_refused_on_a_worker_stops_its_parser_while_the_error_is_held(tmp_path, monkeypatch):
    """Invalid UTF-8 is found on a worker thread; the parsing thread (and its open file) must end when the
    error is raised, not when the last reference to the error (a report, a log record) goes."""
    lines = [b"sku,location,qty"] + [f"SKU-{i},L,{i}".encode() for i in range(1, 20_001)]
    lines[500] = b"SKU-\xff,L,1"
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", 2048)
    monkeypatch.setattr(validate, "WORKERS", 2)
    before = set(threading.enumerate())
    with pytest.raises(FileUnreadable, match="UTF-8") as held:
        validate.check_file("inventory", path, tmp_path / "rejects.csv", chunk_rows=64)
    assert held.value.row == 500
    assert not [t.name for t in threading.enumerate() if t not in before and t.is_alive()]


def _stock_with(path, changes: dict[int, bytes], records: int = 30_000) -> None:
    """A file whose record 20,000 (after the head that sizes the CSV blocks) is longer than two blocks."""
    lines = [b"sku,location,qty"] + [f"SKU-{i},L,{i}".encode() for i in range(1, records + 1)]
    for row, line in changes.items():
        lines[row] = line
    path.write_bytes(b"\n".join(lines) + b"\n")


@pytest.mark.parametrize("workers", [1, 2])
def test_the_first_error_in_the_file_is_reported_when_the_parser_fails_later(tmp_path, monkeypatch, workers):
    """Invalid UTF-8 (found on a worker) in chunk 1, a record the parser cannot read in chunk 3: the file is
    refused for its first error, as by one thread, not for whichever the parsing thread reaches first."""
    path = tmp_path / "stock.csv"
    _stock_with(path, {30: b"SKU-\xff,L,1", 20_000: b"SKU-0,L," + b"9" * 6000})
    monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", 2048)
    monkeypatch.setattr(validate, "WORKERS", workers)
    with pytest.raises(FileUnreadable) as e:
        run(INVENTORY, path, chunk_rows=8192)
    assert e.value.row == 30 and "UTF-8" in str(e.value)


@pytest.mark.parametrize("workers", [1, 2])
def test_rows_before_a_parser_failure_are_all_validated_first(tmp_path, monkeypatch, workers):
    """The chunks before the one the parser fails in are validated and their rejects written, in order,
    before the failure is raised: those in flight on the workers are not dropped."""
    path = tmp_path / "stock.csv"
    _stock_with(path, {10: b"SKU-10,L,x", 9000: b"SKU-9000,L,y", 20_000: b"SKU-0,L," + b"9" * 6000})
    monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", 2048)
    monkeypatch.setattr(validate, "WORKERS", workers)
    sink = io.BytesIO()
    run_ = validate.validate_file(INVENTORY, path, rejects_sink=RejectsWriter(sink), chunk_rows=8192)
    with pytest.raises(FileUnreadable, match="cannot be parsed"):
        for _ in run_:
            pass
    assert [r[0] for r in parse_rejects(sink.getvalue())] == [10, 9000]
    assert run_.report.rows == 2 * 8192
