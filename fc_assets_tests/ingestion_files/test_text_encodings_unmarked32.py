"""XML in UTF-32 without a byte-order mark: libxml2 reads it by its `<\\0\\0\\0` (UCS-4), so the DOCTYPE check
must see it as text too, and it is refused as UTF-32 XML with a mark is (cafb012: "UTF-32 XML is refused as
not supported"). d940f9e closed the same hole for UTF-16 without a mark."""

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
