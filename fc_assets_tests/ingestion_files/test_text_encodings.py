"""Text files saved in another Unicode encoding than UTF-8: UTF-16 and UTF-32 with a byte-order mark (what
PowerShell's `Out-File` and Excel's "Unicode text" write) read exactly as their UTF-8 twin — rows, accepted
and rejected counts, rejects with their row numbers, byte limits — and text in a Unicode encoding without
its mark, or not valid in its encoding, is unreadable with a reason naming the file and the encoding."""

from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from fc_assets.ingestion.feeds import inventory_feed
from fc_assets.ingestion.read import jsonl_fast
from fc_assets.ingestion.read.readers import open_raw
from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets.ingestion.read.validate import check_file
from fc_assets_tests.ingestion_files.corpus import (
    Endless,
    ForwardOnly,
    billion_laughs,
    inventory_csv,
    inventory_jsonl,
    inventory_records,
)
from fc_assets_tests.ingestion_files.helpers import Outcome, run

INVENTORY = inventory_feed()
FC_ASSETS = str(Path(sys.executable).parent / "fc-assets")
BOMS = {
    "utf-8-sig": codecs.BOM_UTF8,
    "utf-16-le": codecs.BOM_UTF16_LE,
    "utf-16-be": codecs.BOM_UTF16_BE,
    "utf-32-le": codecs.BOM_UTF32_LE,
    "utf-32-be": codecs.BOM_UTF32_BE,
}
CODECS = list(BOMS)
# values beyond ASCII: two and three UTF-8 bytes, and one outside the BMP (a surrogate pair in UTF-16)
SKUS = ["Ä-ö", "日本-1", "😀-2"]


def encoded(text: str, codec: str) -> bytes:
    """`text` as a file in `codec`, with its byte-order mark."""
    plain = "utf-8" if codec == "utf-8-sig" else codec
    return BOMS[codec] + text.encode(plain)


def records() -> list[dict[str, str]]:
    out = inventory_records()
    for i, sku in enumerate(SKUS):
        out[i * 4]["SKU"] = sku
    return out


def json_text() -> str:
    """The inventory corpus as a JSON array, indented with CRLF as PowerShell's `ConvertTo-Json` writes it."""
    return orjson.dumps(records(), option=orjson.OPT_INDENT_2).decode().replace("\n", "\r\n")


def jsonl_text() -> str:
    """The JSONL corpus (a blank line, a malformed line, a line that is no object; CRLF) with non-ASCII SKUs."""
    text = inventory_jsonl().decode()
    for sku, new in zip(("00123", "A,1", "C"), SKUS, strict=True):
        text = text.replace(f'"{sku}"', orjson.dumps(new).decode(), 1)
    assert all(orjson.dumps(s).decode() in text for s in SKUS)
    return text


def xml_text(declaration: str = "") -> str:
    items = "".join(
        f"  <item><sku>{r['SKU'].replace(chr(10), ' ')}</sku><location>{r['Location']}</location>"
        f"<qty>{r['QUANTITY']}</qty></item>\r\n"
        for r in records()
    )
    return f"{declaration}<inventory>\r\n{items}</inventory>\r\n"


def same(out: Outcome, twin: Outcome) -> None:
    report, expected = out.report, twin.report
    assert (report.format, report.rows, report.accepted, report.rejected) == (
        expected.format,
        expected.rows,
        expected.accepted,
        expected.rejected,
    )
    assert out.rejects == twin.rejects
    assert out.accepted.equals(twin.accepted)


def check(path: Path) -> tuple[int, int, int, list]:
    rejects = path.with_suffix(".rejects.csv")
    report = check_file("inventory", path, rejects)
    return report.rows, report.accepted, report.rejected, rejects.read_bytes().splitlines()


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("codec", CODECS)
def test_a_json_array_in_any_unicode_encoding_reads_as_its_utf8_twin(tmp_path, codec, gz):
    twin = run(INVENTORY, io.BytesIO(json_text().encode()), name="stock.json", chunk_rows=3)
    assert (twin.report.rows, twin.report.accepted, twin.report.rejected) == (11, 4, 7)
    assert twin.column("sku_ref")[0] == SKUS[0]
    body = encoded(json_text(), codec)
    path = tmp_path / ("stock.json.gz" if gz else "stock.json")
    path.write_bytes(gzip.compress(body) if gz else body)
    same(run(INVENTORY, path, chunk_rows=3), twin)
    # a forward-only stream (S3, SFTP) and check-file's counts and rejects file
    same(run(INVENTORY, ForwardOnly(path.read_bytes()), name=path.name, chunk_rows=3), twin)
    (tmp_path / "twin.json").write_bytes(json_text().encode())
    assert check(path) == check(tmp_path / "twin.json")


@pytest.mark.parametrize("codec", CODECS)
def test_jsonl_in_any_unicode_encoding_has_the_utf8_twins_line_numbers(tmp_path, codec):
    twin = run(INVENTORY, io.BytesIO(jsonl_text().encode()), name="stock.jsonl", chunk_rows=2)
    assert [r[:2] for r in twin.rejects] == [
        (4, "qty"),
        (5, "_record"),
        (6, "qty"),
        (7, "qty"),
        (8, "_record"),
    ]
    path = tmp_path / "stock.jsonl"
    path.write_bytes(encoded(jsonl_text(), codec))
    same(run(INVENTORY, path, chunk_rows=2), twin)
    (tmp_path / "twin.jsonl").write_bytes(jsonl_text().encode())
    assert check(path) == check(tmp_path / "twin.jsonl")


class Trickle(ForwardOnly):
    """A forward-only stream answering every read with at most `n` bytes (code units and surrogate pairs cut
    anywhere)."""

    def __init__(self, data: bytes, n: int) -> None:
        super().__init__(data)
        self._n = n

    def readinto(self, buffer) -> int:  # type: ignore[override]
        return super().readinto(memoryview(buffer)[: self._n])


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-be"])
def test_flat_jsonl_takes_the_fast_path_on_the_transcoded_bytes(monkeypatch, codec):
    """Flat string records (the fast path's, in 4 KiB blocks), then an escape (line by line from there):
    the same batches as the UTF-8 file, as many by the fast path, however the reads cut the encoded bytes."""
    monkeypatch.setattr(jsonl_fast, "BLOCK_BYTES", 4096)
    taken = []  # rows of the chunks the fast path made
    take = jsonl_fast._take

    def spy(pending, rows, *args):
        taken.append(rows)
        return take(pending, rows, *args)

    monkeypatch.setattr(jsonl_fast, "_take", spy)
    lines = [
        orjson.dumps({"sku": f"{SKUS[i % 3]}{i}", "location": "L1", "qty": str(i % 40 - 2)}).decode()
        for i in range(2000)
    ]
    lines[1500] = lines[1500].replace('"L1"', '"L\\u0031"')
    text = "\n".join(lines) + "\n"
    twin = run(INVENTORY, io.BytesIO(text.encode()), name="s.jsonl", chunk_rows=128)
    assert (twin.report.rows, twin.report.rejected) == (2000, 100)
    assert sum(taken) == 11 * 128  # the chunks before the escape's line (1501): the fast path's
    body = encoded(text, codec)
    for source in (io.BytesIO(body), Trickle(body, 4093), Trickle(body, 7)):
        taken.clear()
        same(run(INVENTORY, source, name="s.jsonl", chunk_rows=128), twin)
        assert sum(taken) == 11 * 128


def test_value_limits_apply_to_the_utf8_bytes(settings_env):
    """FC_MAX_VALUE_BYTES counts the transcoded (UTF-8) bytes, as for the UTF-8 file: 600 ASCII characters
    (1,200 bytes in UTF-16) fit a limit of 1,000; 1,200 do not."""
    settings_env(FC_MAX_VALUE_BYTES=1000)
    fits = [{"sku": "A", "location": "L", "qty": "1", "note": "n" * 600}]
    too_long = [{"sku": "A", "location": "L", "qty": "1", "note": "n" * 1200}]
    for codec in ("utf-16-le", "utf-32-be"):
        out = run(INVENTORY, io.BytesIO(encoded(json.dumps(fits), codec)), name="fits.json")
        assert out.report.accepted == 1
        with pytest.raises(FileUnreadable, match=r"JSON value longer than 1,000 bytes \(FC_MAX_VALUE"):
            run(INVENTORY, io.BytesIO(encoded(json.dumps(too_long), codec)), name="long.json")
        lines = "\n".join(json.dumps(r) for r in fits + too_long + fits) + "\n"
        out = run(INVENTORY, io.BytesIO(encoded(lines, codec)), name="long.jsonl")
        assert (out.report.rows, out.report.accepted) == (3, 2)
        assert out.rejects == [(2, "_record", "", "line longer than 1,000 bytes (FC_MAX_VALUE_BYTES)")]


def test_utf16_json_is_streamed_in_bounded_memory():
    """A forward-only UTF-16 stream of 1 GB: the first batch comes after a few blocks, not the whole."""

    def rows():
        i = 0
        while True:
            yield "".join(f'{{"sku":"Ä{i + k}","location":"L","qty":"1"}},' for k in range(1000)).encode(
                "utf-16-le"
            )
            i += 1000

    stream = Endless(codecs.BOM_UTF16_LE + "[".encode("utf-16-le"), rows(), 1 << 30)
    raw = open_raw(stream, name="endless.json", chunk_rows=1000)
    assert next(raw.batches).num_rows == 1000
    assert stream.consumed < 16 << 20


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_csv_in_a_unicode_encoding_reads_as_its_utf8_twin(codec):
    text = inventory_csv(";", crlf=True).decode()
    twin = run(INVENTORY, io.BytesIO(text.encode()), name="stock.csv")
    assert (twin.report.rows, twin.report.accepted) == (11, 4)
    same(run(INVENTORY, io.BytesIO(encoded(text, codec)), name="stock.csv"), twin)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("declared", [False, True], ids=["bare", "declared"])
def test_utf16_xml_reads_as_its_utf8_twin(codec, declared):
    twin = run(INVENTORY, io.BytesIO(xml_text('<?xml version="1.0"?>\r\n').encode()), name="stock.xml")
    assert (twin.report.rows, twin.report.accepted) == (11, 4)
    text = xml_text('<?xml version="1.0" encoding="UTF-16"?>\r\n' if declared else "")
    same(run(INVENTORY, io.BytesIO(encoded(text, codec)), name="stock.xml"), twin)


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_xml_without_a_mark_but_declared_is_read_as_libxml2_reads_it(codec):
    twin = run(INVENTORY, io.BytesIO(xml_text('<?xml version="1.0"?>\r\n').encode()), name="stock.xml")
    text = xml_text('<?xml version="1.0" encoding="UTF-16"?>\r\n')
    same(run(INVENTORY, io.BytesIO(text.encode(codec)), name="stock.xml"), twin)


def test_a_utf16_json_file_without_an_extension_is_detected_as_json():
    out = run(INVENTORY, io.BytesIO(encoded(json_text(), "utf-16-le")), name="export")
    assert (out.report.format, out.report.rows, out.report.accepted) == ("json", 11, 4)


_LONE = "Ä".encode("utf-16-le"), b"\x00\xd8"  # a high surrogate not followed by a low one
UNREADABLE = {
    "nobom.json": (
        json_text().encode("utf-16-le"),
        "not UTF-8: looks like UTF-16LE without a byte-order mark",
    ),
    "nobom.jsonl": (
        jsonl_text().encode("utf-16-be"),
        "not UTF-8: looks like UTF-16BE without a byte-order mark",
    ),
    "nobom32.jsonl": (
        jsonl_text().encode("utf-32-le"),
        "not UTF-8: looks like UTF-32LE without a byte-order mark",
    ),
    "nobom.csv": (
        inventory_csv().decode().encode("utf-16-le"),
        "not UTF-8: looks like UTF-16LE without a byte-order mark",
    ),
    "nobom.xml": (xml_text().encode("utf-16-le"), "not UTF-8: looks like UTF-16LE without a byte-order mark"),
    "odd.json": (
        encoded(json_text(), "utf-16-le")[:-1],
        f"not valid UTF-16LE (as its byte-order mark says): truncated data at byte {len(encoded(json_text(), 'utf-16-le')) - 2:,}",
    ),
    "lone.jsonl": (encoded(jsonl_text(), "utf-16-le").replace(*_LONE), "not valid UTF-16LE"),
    # past the head (the first 256 KiB): found by the streaming decoder, the rows before it yielded
    "late.jsonl": (
        encoded(jsonl_text() * 1000, "utf-16-be") + b'\x00"\xdc\x00\x00"\x00\n',
        "not valid UTF-16BE",
    ),
    "odd.xml": (encoded(xml_text(), "utf-16-le")[:-1], "(read as UTF-16LE, by its byte-order mark)"),
    # the DOCTYPE check reads UTF-16 without a mark too (libxml2 does, by its `<?xml`): was left to libxml2
    "lol16.xml": (
        billion_laughs()
        .replace(b'version="1.0"', b'version="1.0" encoding="UTF-16"')
        .decode()
        .encode("utf-16-le"),
        "XML DOCTYPE declares entities: refused",
    ),
    "utf32.xml": (encoded(xml_text(), "utf-32-le"), "XML in UTF-32LE is not supported"),
}


@pytest.mark.parametrize("name", list(UNREADABLE))
def test_text_without_its_mark_or_invalid_in_its_encoding_is_unreadable(tmp_path, name):
    body, message = UNREADABLE[name]
    path = tmp_path / name
    path.write_bytes(body)
    with pytest.raises(FileUnreadable) as e:
        check_file("inventory", path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value), str(e.value)


def test_check_file_reads_a_utf16_json_as_its_utf8_twin_and_refuses_one_without_its_mark(tmp_path):
    """The command a user runs: the same JSON line for the UTF-16 file as for the UTF-8 one; exit 2 with one
    line naming the file and why for UTF-16 without its byte-order mark."""
    (tmp_path / "utf8.json").write_bytes(json_text().encode())
    (tmp_path / "utf16.json").write_bytes(encoded(json_text(), "utf-16-le"))
    (tmp_path / "nobom.jsonl").write_bytes(jsonl_text().encode("utf-16-le"))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = {
        name: subprocess.Popen(
            [FC_ASSETS, "check-file", "inventory", str(tmp_path / name)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("utf8.json", "utf16.json", "nobom.jsonl")
    }
    done = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        done[name] = (proc.returncode, out, err)
    lines = {}
    for name in ("utf8.json", "utf16.json"):
        code, out, err = done[name]
        assert code == 0, err[-3000:]
        lines[name] = {k: v for k, v in json.loads(out).items() if k not in ("path", "seconds")}
    assert lines["utf16.json"] == lines["utf8.json"]
    assert (lines["utf8.json"]["rows"], lines["utf8.json"]["accepted"]) == (11, 4)
    code, out, err = done["nobom.jsonl"]
    assert (code, out) == (2, "") and err.count("\n") == 1 and "Traceback" not in err
    assert f"{tmp_path / 'nobom.jsonl'}: not UTF-8: looks like UTF-16LE without a byte-order mark" in err
