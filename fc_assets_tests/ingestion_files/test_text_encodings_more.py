"""More of test_text_encodings (review of cafb012/d940f9e): XML in UTF-32 without a byte-order mark, which
libxml2 reads by its `<\\0\\0\\0` (UCS-4), so the DOCTYPE check must not be passed by it and it is refused as
UTF-32 XML with a mark is (d940f9e closed the same hole for UTF-16); a JSON object's records found as far
into a UTF-16/UTF-32 file as into its UTF-8 twin."""

from __future__ import annotations

import pytest

from fc_assets.ingestion.read.unreadable import FileUnreadable
from fc_assets.ingestion.read.validate import check_file
from fc_assets_tests.ingestion_files.corpus import billion_laughs, external_entity
from fc_assets_tests.ingestion_files.test_text_encodings import xml_text


@pytest.mark.parametrize("codec", ["utf-32-le", "utf-32-be"])
@pytest.mark.parametrize("doc", ["billion_laughs", "external_entity", "plain"])
def test_utf32_xml_without_a_mark_is_refused_before_libxml2_sees_it(tmp_path, codec, doc):
    """Failed before the fix: billion laughs reached libxml2 (stopped only by its amplification limit,
    'Maximum entity amplification factor exceeded'), and a plain file was read (11 rows)."""
    decl = f'<?xml version="1.0" encoding="{codec[:6].upper()}"?>'
    text = {
        "billion_laughs": billion_laughs().decode().replace('<?xml version="1.0"?>', decl),
        "external_entity": external_entity("/etc/hostname").decode().replace('<?xml version="1.0"?>', decl),
        "plain": xml_text(decl + "\r\n"),
    }[doc]
    path = tmp_path / "stock.xml"
    path.write_bytes(text.encode(codec))
    with pytest.raises(FileUnreadable) as e:
        check_file("inventory", path)
    message = str(e.value)
    assert "Maximum entity amplification" not in message and "row " not in message, message
    assert f"XML in {codec[:6].upper()}{codec[-2:].upper()} is not supported" in message, message


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-32-be"])
def test_records_found_in_a_json_object_as_far_in_as_in_the_utf8_twin(codec):
    """The records' array of a JSON object is looked for in the head; the UTF-8 twin's head holds 256 KiB of
    text, the transcoded head of a UTF-16 (UTF-32) file only the text of its first 256 KiB of raw bytes,
    i.e. 128 K (64 K) ASCII characters. An export note of 150,000 characters before the records: the UTF-8
    file reads, the UTF-16 one was unreadable ('JSON is neither an array of records nor an object holding
    one')."""
    import gzip
    import io
    import json

    from fc_assets_tests.ingestion_files.corpus import ForwardOnly
    from fc_assets_tests.ingestion_files.test_text_encodings import INVENTORY, encoded, records, run, same

    doc = json.dumps({"exportNote": "n" * 150_000, "inventory": records()})
    twin = run(INVENTORY, io.BytesIO(doc.encode()), name="stock.json")
    assert (twin.report.rows, twin.report.accepted) == (11, 4)
    body = encoded(doc, codec)
    same(run(INVENTORY, io.BytesIO(body), name="stock.json"), twin)
    # a forward-only stream (S3, SFTP) and gzip
    same(run(INVENTORY, ForwardOnly(body), name="stock.json"), twin)
    same(run(INVENTORY, ForwardOnly(gzip.compress(body)), name="stock.json.gz"), twin)
