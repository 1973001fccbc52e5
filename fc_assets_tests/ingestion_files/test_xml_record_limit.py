"""An XML record longer than FC_MAX_VALUE_BYTES is a rejected row, as a JSON record is, and is not built
further: the full parser counts the bytes fed while a record is open and, past the limit, drops its
elements as they end; the fast path hands such a file to the full parser.

Before, a record was built whole whatever its size: a 50 MB `<item>` of small children took ~2 GB RSS in
`read_xml_full`, and was accepted."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from fc_assets.ingestion.feeds import inventory_feed
from fc_assets.ingestion.read import xml_fast, xml_records
from fc_assets.ingestion.read.streams import ByteSource
from fc_assets_tests.ingestion_files.helpers import FC_ASSETS, parse_rejects, run, run_measured

LIMIT = 100_000  # the full parser counts whole pieces (32 KiB) fed after the record's start
TOO_LONG = f"record longer than {LIMIT:,} bytes (FC_MAX_VALUE_BYTES)"
INVENTORY = inventory_feed()


def item(sku: str, pad: int = 0, fields: int = 0) -> bytes:
    """A record: `pad` bytes of text in fields under 1 MB (flat: the fast path's shape), or `fields` small
    distinct children."""
    out = f"<item><sku>{sku}</sku><location>L</location><qty>1</qty>"
    out += "".join(f"<p{i}>{'x' * 50_000}</p{i}>" for i in range(pad // 50_000))
    out += "".join(f"<f{i}>v</f{i}>" for i in range(fields))
    return (out + "</item>\n").encode()


def document(*records: bytes) -> bytes:
    return b"<inventory>\n" + b"".join(records) + b"</inventory>\n"


@pytest.fixture
def limit(settings_env):
    settings_env(FC_MAX_VALUE_BYTES=LIMIT)


BODY = document(
    item("A"),
    item("OVER_TEXT", pad=3 * LIMIT),
    item("B"),
    item("OVER_FIELDS", fields=LIMIT // 4),
    item("C"),
    *(item(f"D{i}") for i in range(5)),
)


@pytest.mark.parametrize("path", ["fast", "full"])
def test_records_longer_than_the_limit_are_rejected_rows(limit, monkeypatch, path):
    """Failed before: the long records were accepted (rows 2 and 4 in the output), on both paths."""
    if path == "full":
        monkeypatch.setattr(xml_fast, "fast_batches", _no_fast_path)
    out = run(INVENTORY, io.BytesIO(BODY), name="long.xml")
    assert (out.report.rows, out.report.accepted, out.report.rejected) == (10, 8, 2)
    assert out.column("sku_ref") == ["A", "B", "C", *(f"D{i}" for i in range(5))]
    assert out.column("_row") == [1, 3, 5, 6, 7, 8, 9, 10]
    assert out.rejects == [(row, "_record", "", TOO_LONG) for row in (2, 4)]


def _no_fast_path(*args, **kwargs):
    raise xml_fast.NotSimple("test: the full parser only")
    yield


def test_the_fast_path_hands_a_long_record_to_the_parser():
    """The fast path would read the text-padded record (flat, texts under 1 MB): it must not."""
    data = document(item("A"), item("B"), item("OVER", pad=3 * LIMIT), item("C"))
    with pytest.raises(xml_fast.NotSimple):
        list(xml_fast.fast_batches(ByteSource(io.BytesIO(data), "f.xml"), None, 2, max_record_bytes=LIMIT))
    fast = list(xml_fast.fast_batches(ByteSource(io.BytesIO(data), "f.xml"), None, 2, max_record_bytes=10**9))
    assert sum(b.num_rows for b in fast) == 4


def sized(sku: str, size: int) -> bytes:
    """A record of exactly `size` bytes from `<item>` to `</item>` (texts under 1 MB: the fast path's)."""
    head = f"<item><sku>{sku}</sku><location>L</location><qty>1</qty>".encode()
    pads, room = [], size - len(head) - len(b"</item>")
    while room > 0:
        text = min(room - len(b"<pN></pN>"), 500_000)
        pads.append(b"<p%d>" % len(pads) + b"x" * text + b"</p%d>" % len(pads))
        room -= len(pads[-1])
    record = head + b"".join(pads) + b"</item>"
    assert len(record) == size
    return record + b"\n"


@pytest.mark.parametrize("path", ["fast", "full"])
@pytest.mark.parametrize("before", [0, 1, 333, 3_000])
def test_within_the_limit_never_rejected_two_pieces_over_always(limit, monkeypatch, path, before):
    """At any offset in the file (the full parser counts whole pieces): a record of LIMIT bytes is read, one
    longer than LIMIT by two pieces and a byte is rejected; both paths agree."""
    if path == "full":
        monkeypatch.setattr(xml_fast, "fast_batches", _no_fast_path)
    over = LIMIT + 2 * xml_records.PIECE_BYTES + 1
    body = document(
        *(item(f"N{i}") for i in range(before)), sized("AT", LIMIT), sized("OVER", over), item("Z")
    )
    out = run(INVENTORY, io.BytesIO(body), name="edge.xml")
    assert out.column("sku_ref") == [*(f"N{i}" for i in range(before)), "AT", "Z"]
    assert out.rejects == [(before + 2, "_record", "", TOO_LONG)]


def test_a_long_record_as_the_only_or_first_record(limit):
    for body, rows in (
        (document(item("OVER", fields=LIMIT // 4)), [1]),
        (document(item("OVER", fields=LIMIT // 4), item("A"), item("B")), [1]),
    ):
        src = ByteSource(io.BytesIO(body), "f.xml")
        (batch,) = xml_records.read_xml_full(src, None, 100)
        errors = batch.column("_error").to_pylist()
        assert [i + 1 for i, e in enumerate(errors) if e] == rows
        assert errors[0] == TOO_LONG


# ------------------------------------------------------------------------------ memory, as a user runs it

ADDRESS_SPACE = 3 * 1024**3
PEAK_RSS_MB = 700  # before: ~2.2 GB on the 60 MB record
NORMAL = 20


@pytest.mark.timeout(900)
def test_a_60_mb_record_is_rejected_in_bounded_memory(tmp_path):
    path = tmp_path / "huge.xml"
    huge = b"<item><sku>HUGE</sku><location>L</location><qty>1</qty>" + b"<f>v</f>" * 7_500_000 + b"</item>\n"
    normal = [item(f"S{i:03d}") for i in range(NORMAL)]
    path.write_bytes(document(*normal[:10], huge, *normal[10:]))
    command = [FC_ASSETS, "check-file", "inventory", str(path), "--rejects", f"{path}.rejects.csv"]
    code, out, err, peak_mb = run_measured({"huge": command}, ADDRESS_SPACE, {"huge": path})["huge"]
    print(f"{path.stat().st_size / 1e6:.0f} MB, peak RSS {peak_mb:.0f} MB", file=sys.stderr)
    assert code == 0, err[-3000:]
    assert peak_mb < PEAK_RSS_MB, f"peak RSS {peak_mb:.0f} MB"
    summary = json.loads(out)
    assert (summary["rows"], summary["accepted"], summary["rejected"]) == (NORMAL + 1, NORMAL, 1)
    reason = "record longer than 8,388,608 bytes (FC_MAX_VALUE_BYTES)"
    assert parse_rejects(Path(f"{path}.rejects.csv").read_bytes()) == [(11, "_record", "", reason)]


# ------------------------------------------------------------------- a small limit: records of random sizes

SMALL = 1024


def _rows(batches) -> list[tuple[int, str | None, bool]]:
    """(row, sku, rejected) of each row read."""
    out = []
    for batch in batches:
        d = batch.to_pydict()
        skus = d.get("sku", [None] * batch.num_rows)  # (a batch of rejected rows only: no column)
        out += [(r, s, e is not None) for r, s, e in zip(d["_row"], skus, d["_error"], strict=True)]
    return out


@pytest.mark.parametrize("seed", range(6))
def test_a_small_limit_rejects_no_record_within_it_and_both_paths_agree(seed):
    """Records of random sizes around a 1 KiB limit, at every alignment with the parser's 32 KiB pieces: each
    record within the limit is read, each longer than the limit by two pieces is rejected, one in between
    either (read whole), rows in order; `read_xml` (fast path, then the parser) gives what `read_xml_full`
    gives. Failed before: a 340-byte record that straddles a piece boundary was rejected (the whole piece in
    which it ends was counted as its bytes), by both paths."""
    import random

    rnd = random.Random(seed)
    sizes = [
        rnd.choice(
            [rnd.randint(80, SMALL), rnd.randint(SMALL - 100, SMALL + 100), rnd.randint(SMALL, 3 * SMALL)]
        )
        for _ in range(rnd.randint(150, 400))
    ]
    sizes[rnd.randrange(len(sizes))] = SMALL + 2 * xml_records.PIECE_BYTES + 1
    data = document(*(sized(f"S{i}", size) for i, size in enumerate(sizes)))
    results = []
    for read in (xml_records.read_xml, xml_records.read_xml_full):
        got = _rows(read(ByteSource(io.BytesIO(data), "f.xml"), None, 50, max_record_bytes=SMALL))
        assert [r for r, _, _ in got] == list(range(1, len(sizes) + 1))
        for (row, sku, rejected), size in zip(got, sizes, strict=True):
            if size <= SMALL:
                assert (sku, rejected) == (f"S{row - 1}", False), (row, size)
            elif size > SMALL + 2 * xml_records.PIECE_BYTES:
                assert (sku, rejected) == (None, True), (row, size)
            else:
                assert (sku, rejected) in ((f"S{row - 1}", False), (None, True)), (row, size)
        results.append(got)
    assert results[0] == results[1]


@pytest.mark.parametrize("before_boundary", [6, 7, 40, 5_000, 16_384])
def test_a_record_starting_just_before_a_piece_boundary(before_boundary):
    """The full parser's count at the alignment where the pieces in which a record starts and ends hold the
    least of it: a record of LIMIT bytes is read, one longer than LIMIT by two pieces and its start tag is
    rejected. Failed before (6, 7, 40: the piece in which it ends was counted whole): "AT" rejected."""
    piece = xml_records.PIECE_BYTES
    head = b"<inventory>"
    pad = sized("PAD", 2 * piece - before_boundary - len(head) - 1)
    for size, rejected in ((LIMIT, False), (LIMIT + 2 * piece + len(b"<item>"), True)):
        data = head + pad + sized("AT", size) + sized("Z", 300) + b"</inventory>"
        assert data.index(b"<item><sku>AT") == 2 * piece - before_boundary
        got = _rows(
            xml_records.read_xml_full(
                ByteSource(io.BytesIO(data), "f.xml"), None, 100, max_record_bytes=LIMIT
            )
        )
        assert got == [(1, "PAD", False), (2, None if rejected else "AT", rejected), (3, "Z", False)], size
