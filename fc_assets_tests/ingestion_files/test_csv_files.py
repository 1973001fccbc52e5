"""CSV: RFC 4180 quoting, BOM, CRLF, delimiters, blank lines, row numbers, qty traps, headers.

connector-pitfalls §2: 13 (garbage numerics never coerced), 16 (naive splitting, BOM, delimiters),
17 (per-row rejects with row/field/reason), 19/34 (odd file names)."""

from __future__ import annotations

import gzip
import io
import os

import pytest

from fc_assets.ingestion.feeds import get_feed, inventory_feed
from fc_assets.ingestion.read.mapping import text_schema
from fc_assets.ingestion.read.readers import read_file
from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets.ingestion.spec import FormatOptions
from fc_assets_tests.ingestion_files.corpus import (
    INVENTORY_ACCEPTED,
    INVENTORY_REJECTS,
    INVENTORY_ROWS,
    ForwardOnly,
    inventory_csv,
)
from fc_assets_tests.ingestion_files.helpers import run

INVENTORY = get_feed("inventory")


def assert_inventory(outcome) -> None:
    """Every dialect of the corpus file gives exactly this."""
    r = outcome.report
    assert (r.rows, r.accepted, r.rejected) == (11, 4, 7)
    assert outcome.rejects == INVENTORY_REJECTS
    assert outcome.column("_row") == INVENTORY_ACCEPTED
    assert outcome.column("sku_ref") == ["00123", "A,1", "H", 'J "quoted"']  # text kept exactly
    assert outcome.column("location_ref") == ["LOC-1", "LOC-1", "LOC-3", "LOC-4"]
    assert outcome.column("qty") == [5, 7, 12, 2147483647]
    assert outcome.column("status") == ["AVAILABLE", None, "RESERVED", "ON_ORDER"]
    assert [v.isoformat() if v else None for v in outcome.column("expected_on")] == [
        "2025-01-15T00:00:00+00:00",
        None,
        None,
        "2025-03-01T08:30:00+00:00",
    ]
    assert r.reasons == {
        "qty: not a whole number": 4,
        "qty: must be between 0 and 2147483647": 2,
        "qty: required value is missing": 1,
    }
    assert r.failed  # 7 of 11 rows is over 5 %


@pytest.mark.parametrize(
    ("delimiter", "bom", "crlf"),
    [(",", False, False), (",", True, True), (";", False, True), ("|", True, False), ("\t", True, True)],
    ids=["comma", "comma-bom-crlf", "semicolon-crlf", "pipe-bom", "tab-bom-crlf"],
)
def test_every_dialect_gives_the_same_rows_and_rejects(tmp_path, delimiter, bom, crlf):
    path = tmp_path / "stock.csv"
    path.write_bytes(inventory_csv(delimiter, bom=bom, crlf=crlf))
    out = run(INVENTORY, path)
    assert out.report.format == "csv"
    assert_inventory(out)


def test_gzip_and_forward_only_streams(tmp_path):
    data = inventory_csv(";", bom=True, crlf=True, gz=True)
    path = tmp_path / "stock.csv.gz"
    path.write_bytes(data)
    assert_inventory(run(INVENTORY, path))
    # an S3/SFTP body: not seekable, named by the object key
    assert_inventory(run(INVENTORY, ForwardOnly(data), name="inbox/stock.csv.gz"))
    assert_inventory(run(INVENTORY, io.BytesIO(inventory_csv("|")), name="stock.csv"))


def test_multi_member_gzip_is_read_whole(tmp_path):
    """A gzip of several members (`cat a.gz b.gz`, a writer flushing a member per part: Firehose, bgzip) is one
    file: its head was the first member alone, so a CSV whose header was a member of its own read as 0 rows
    (an empty snapshot) and such an XML file was refused as empty."""
    rows = b"".join(b"S%d,L1,%d\n" % (i, i) for i in range(100))
    path = tmp_path / "stock.csv.gz"
    path.write_bytes(gzip.compress(b"sku_ref,location_ref,qty\n") + gzip.compress(rows))
    out = run(INVENTORY, path)
    assert (out.report.rows, out.report.accepted) == (100, 100)
    assert out.column("sku_ref")[-1] == "S99"
    body = b"".join(
        b"<item><sku_ref>S%d</sku_ref><location_ref>L1</location_ref><qty>1</qty></item>" % i
        for i in range(100)
    )
    xml = tmp_path / "stock.xml.gz"
    xml.write_bytes(
        gzip.compress(b'<?xml version="1.0"?>\n') + gzip.compress(b"<stock>" + body + b"</stock>")
    )
    assert run(INVENTORY, xml).report.accepted == 100


def test_small_chunks_keep_row_numbers_and_order(tmp_path):
    path = tmp_path / "stock.csv"
    path.write_bytes(inventory_csv(",", crlf=True))
    assert_inventory(run(INVENTORY, path, chunk_rows=2))


def test_odd_file_names_are_fine(tmp_path):
    """Spaces, brackets, '&', ':' and non-ASCII in a name (pitfalls 19, 34); a '.xcsv' is not '.csv'."""
    path = tmp_path / "stock (1) & ü:[x].csv"
    path.write_bytes(inventory_csv(","))
    out = run(INVENTORY, path)
    assert out.report.file == str(path)
    assert_inventory(out)
    odd = tmp_path / "stock.xcsv"  # unknown extension: detected from the content (CSV)
    odd.write_bytes(inventory_csv(";"))
    assert run(INVENTORY, odd).report.format == "csv"


def test_declared_delimiter_wins_over_detection(tmp_path):
    path = tmp_path / "stock.csv"
    path.write_bytes(b"sku;location;qty;a,b,c,d\r\n1;L;3;x,y,z,w\r\n")  # as many ',' as ';' in the header
    with pytest.raises(FileUnreadable, match="missing required column"):
        read_file(INVENTORY, path)  # ',' detected on a tie: columns 'sku;location;qty;a', 'b', 'c', 'd'
    feed = inventory_feed(format_options=FormatOptions(delimiter=";"))
    out = run(feed, path)
    assert (out.report.rows, out.report.accepted) == (1, 1)
    assert out.column("qty") == [3]


def test_read_file_gives_canonical_text_columns(tmp_path):
    path = tmp_path / "stock.csv"
    path.write_bytes(inventory_csv(","))
    batches = list(read_file(INVENTORY, path, chunk_rows=4))
    assert [b.num_rows for b in batches] == [4, 4, 3]
    assert batches[0].schema == text_schema(INVENTORY)
    first = batches[0].to_pylist()
    assert first[0] | {} == {
        "sku_ref": "00123",
        "location_ref": "LOC-1",
        "qty": "5",
        "status": "available",
        "expected_on": "2025-01-15",
        "condition": None,
        "_row": 1,
        "_error": None,
        "_raw": None,
    }
    assert first[2]["sku_ref"] == "B\nsecond line"
    assert [b["qty"] for b in first] == [r[2].strip() or None for r in INVENTORY_ROWS[:4]]


def test_missing_required_column_makes_the_file_unreadable(tmp_path):
    path = tmp_path / "stock.csv"
    path.write_bytes(b"SKU,Qty,Colour\n1,2,red\n")
    with pytest.raises(FileUnreadable) as e:
        run(INVENTORY, path)
    msg = str(e.value)
    assert msg.startswith(str(path))
    assert "location_ref" in msg and "'SKU', 'Qty', 'Colour'" in msg
    assert e.value.field == "location_ref"


def test_wrong_field_counts_are_rejected_rows_with_their_numbers(tmp_path):
    path = tmp_path / "stock.csv"
    path.write_bytes(b'sku,location,qty\n1,L,1\n2,L\n"3\nx",L,3\n4,L,4,extra\n\n5,L,5\n6\n')
    out = run(INVENTORY, path, chunk_rows=2)
    assert (out.report.rows, out.report.accepted, out.report.rejected) == (6, 3, 3)
    assert out.column("_row") == [1, 3, 5]
    assert out.rejects == [
        (2, "_record", "2,L", "expected 3 fields, found 2"),
        (4, "_record", "4,L,4,extra", "expected 3 fields, found 4"),
        (6, "_record", "6", "expected 3 fields, found 1"),
    ]
    assert out.report.reasons == {
        "_record: expected 3 fields, found 2": 1,
        "_record: expected 3 fields, found 4": 1,
        "_record: expected 3 fields, found 1": 1,
    }


def test_header_only_and_empty_files(tmp_path):
    header_only = tmp_path / "h.csv"
    header_only.write_bytes(b"sku,location,qty\r\n")
    out = run(INVENTORY, header_only)
    assert (out.report.rows, out.report.accepted, out.report.rejected, out.report.failed) == (0, 0, 0, False)
    empty = tmp_path / "e.csv"
    empty.write_bytes(b"")
    with pytest.raises(FileUnreadable, match="empty file"):
        run(INVENTORY, empty)


def test_invalid_utf8_and_broken_gzip_are_unreadable(tmp_path):
    bad = tmp_path / "latin.csv"
    bad.write_bytes("sku,location,qty\nCAFÉ,L,1\n".encode("latin-1"))
    with pytest.raises(FileUnreadable, match="latin.csv"):
        run(INVENTORY, bad)
    # the same file declared as latin-1 reads fine
    feed = inventory_feed(format_options=FormatOptions(encoding="latin-1"))
    assert run(feed, bad).column("sku_ref") == ["CAFÉ"]
    truncated = tmp_path / "cut.csv.gz"
    truncated.write_bytes(gzip.compress(inventory_csv(",") * 200)[:-400])
    with pytest.raises(FileUnreadable, match="cut.csv.gz"):
        run(INVENTORY, truncated)


def test_other_columns_are_ignored_and_names_match_loosely(tmp_path):
    path = tmp_path / "stock.csv"
    path.write_bytes(
        b"Colour,SKU-REF,locationRef,Qty,STATUS,expected date,condition\r\n"
        b"red, 0042 ,L1,3,quarantine,2025-01-15 10:00,NEW\r\n"
    )
    out = run(INVENTORY, path)
    assert out.accepted.to_pylist()[0] | {"expected_on": None} == {
        "sku_ref": "0042",
        "location_ref": "L1",
        "qty": 3,
        "status": "QUARANTINE",
        "expected_on": None,
        "condition": "NEW",
        "_row": 1,
    }


def test_ambiguous_columns_are_refused(tmp_path):
    path = tmp_path / "stock.csv"
    path.write_bytes(b"sku,SKU,location,qty\n1,2,L,3\n")
    with pytest.raises(FileUnreadable, match=r"all match field sku_ref"):
        run(INVENTORY, path)


def test_streaming_does_not_read_the_whole_file(tmp_path):
    """Pitfall 15: the first batch of a 1 GB stream arrives after reading a bounded prefix."""
    from fc_assets_tests.ingestion_files.corpus import Endless, numbered

    stream = Endless(b"sku,location,qty\n", numbered("SKU{0:012d},LOC-7,{0}\n"), limit=1 << 30)
    batches = read_file(INVENTORY, stream, name="big.csv", chunk_rows=10_000)
    first = next(batches)
    assert first.num_rows >= 10_000 and first.column("_row")[0].as_py() == 1
    assert stream.consumed < 64 << 20  # Arrow's readahead is 32 blocks of 1 MiB (+ one sample)
    batches.close()


def test_the_checked_in_sizes_are_small():
    """The corpus is generated in the tests; nothing big is committed here."""
    here = os.path.dirname(__file__)
    assert all(
        os.path.getsize(os.path.join(here, f)) < 64_000 for f in os.listdir(here) if not f.startswith("__")
    )


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("", [131_072, 131_072, 37_856]),  # narrow rows (~40 bytes): 131,072-row chunks
        ("x" * 400, [65_536] * 4 + [38_144]),  # wide rows: as many as 16 MiB hold, never fewer than 65,536
    ],
)
def test_csv_chunks_follow_the_width_of_the_rows(tmp_path, extra, expected):
    # plain and gzip (the parallel block reader and the streaming one) cut chunks alike; an explicit
    # chunk_rows is kept whatever the width
    rows = sum(expected)
    lines = "".join(f"SKU-{i:08d},LOC-{i % 97:04d},{i % 1000},AVAILABLE,{extra}\n" for i in range(rows))
    body = ("sku_ref,location_ref,qty,status,condition\n" + lines).encode()
    plain, packed = tmp_path / "wide.csv", tmp_path / "wide.csv.gz"
    plain.write_bytes(body)
    packed.write_bytes(gzip.compress(body, compresslevel=1))
    for path in (plain, packed):
        assert [b.num_rows for b in read_file(INVENTORY, str(path))] == expected, path.name
    explicit = [b.num_rows for b in read_file(INVENTORY, str(plain), chunk_rows=100_000)]
    assert explicit == [100_000] * (rows // 100_000) + [rows % 100_000] * bool(rows % 100_000)


def test_wide_rows_after_narrow_ones_keep_65536_row_chunks(tmp_path):
    # the chunk size was fixed by the first rows' width: a file whose first rows are narrow and the rest
    # wide (products listed without, then with descriptions) was read in 131,072-row chunks of wide rows,
    # twice main's bytes per chunk (1.5 KB rows: peak RSS 1.26-1.41 GB against 0.64-0.81 on 4 cores)
    narrow, wide = 131_072, 140_000
    head = "".join(f"SKU-{i:08d},LOC-{i % 97:04d},{i % 1000},AVAILABLE,\n" for i in range(narrow))
    tail = "".join(f"SKU-{i:08d},LOC-{i % 97:04d},{i % 1000},AVAILABLE,{'x' * 300}\n" for i in range(wide))
    body = ("sku_ref,location_ref,qty,status,condition\n" + head + tail).encode()
    plain, packed = tmp_path / "late-wide.csv", tmp_path / "late-wide.csv.gz"
    plain.write_bytes(body)
    packed.write_bytes(gzip.compress(body, compresslevel=1))
    for path in (plain, packed):  # (the parallel block reader, the streaming one)
        chunks = [b.num_rows for b in read_file(INVENTORY, str(path))]
        assert chunks == [131_072, 65_536, 65_536, 8_928], path.name


@pytest.mark.parametrize("packed", [False, True])
def test_the_rejects_file_is_ordered_by_row_across_chunks(tmp_path, packed):
    # rejects.py: "Lines are ordered by row". A batch of the readers holds its block's malformed records
    # after its good ones (`_with_rows`), so a record of a block that spans a chunk boundary is cut into the
    # next chunk and written after the rejects of later rows (an 8 MiB block of the parallel reader holds
    # ~240,000 of these rows: row 10 came after row 1,000 at the default chunk size; gzip: Arrow's 1 MiB
    # block around row 131,072)
    lines = []
    for i in range(1, 300_001):  # 10 MiB: read by blocks when not gzipped
        qty = "N/A" if i in (1_000, 131_050) else str(i % 1000)
        extra = ",extra" if i in (10, 131_000) else ""
        lines.append(f"SKU-{i:08d},LOC-{i % 97:04d},{qty},AVAILABLE,{extra}\n")
    body = ("sku_ref,location_ref,qty,status,condition\n" + "".join(lines)).encode()
    path = tmp_path / ("stock.csv.gz" if packed else "stock.csv")
    path.write_bytes(gzip.compress(body, compresslevel=1) if packed else body)
    out = run(INVENTORY, str(path))
    assert [(r[0], r[1]) for r in out.rejects] == [
        (10, "_record"),
        (1_000, "qty"),
        (131_000, "_record"),
        (131_050, "qty"),
    ]


@pytest.mark.parametrize("chunk_rows", [0, -5])
def test_a_chunk_size_below_one_is_refused_not_an_endless_loop(tmp_path, chunk_rows):
    path = tmp_path / "stock.csv"
    path.write_text("sku_ref,location_ref,qty\nA,L,1\n")
    with pytest.raises(ValueError, match="chunk_rows must be at least 1"):
        list(read_file(INVENTORY, str(path), chunk_rows=chunk_rows))
