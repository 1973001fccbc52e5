"""The XML prolog, checked before any parser sees a byte: where the root starts, and a refusal for a DOCTYPE
beyond a bare `<!DOCTYPE name>` (entity expansion, external entities) or a prolog too long to inspect.
Its own module so that both XML readers (`xml_records`, `xml_fast`) use it without importing each other."""

from __future__ import annotations

from fc_assets.ingestion.read.streams import HEAD_BYTES, unmarked_codec
from fc_assets.ingestion.read.unreadable import FileUnreadable

_SPACE = b" \t\r\n"
# a file without a root element is no document: refused as an empty CSV is (read as 0 rows it would be an
# empty snapshot: a failed export deleting every row sent before); an empty export is `<Export/>`
_NO_ROOT = "a file without records is a root without child elements"


def check_prolog(head: bytes, name: str) -> None:
    """Refuse a DOCTYPE with an internal subset or an external DTD — or a prolog too long to inspect —
    before parsing. The prolog is walked token by token (so a `<!--` inside a processing instruction
    cannot hide what follows it)."""
    prolog_end(head, name)


def prolog_end(head: bytes, name: str) -> int:
    """Where the root element starts in `head` (after `check_prolog`'s checks; UTF-16 heads are
    inspected as transcoded bytes, so their offset is not one into the file). A head shorter than HEAD_BYTES
    is the whole file: one without a root element is refused as empty."""
    whole = len(head) < HEAD_BYTES
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16: inspect it as ASCII-compatible bytes
        head = head.decode("utf-16", errors="ignore").encode("utf-8", errors="ignore")
    elif (codec := unmarked_codec(head)) in ("utf-16-le", "utf-16-be"):  # (libxml2 reads it by its `<?xml`)
        head = head.decode(codec, errors="ignore").encode("utf-8", errors="ignore")
    too_long = "XML prolog too large to inspect (no root element in the first 256 KiB)"
    pos = 3 if head.startswith(b"\xef\xbb\xbf") else 0
    prolog = False  # a declaration, processing instruction, comment or DOCTYPE seen
    while True:
        while pos < len(head) and head[pos] in _SPACE:
            pos += 1
        if head.startswith(b"<?", pos):  # XML declaration or processing instruction
            end = head.find(b"?>", pos + 2)
            next_pos = end + 2
        elif head.startswith(b"<!--", pos):
            end = head.find(b"-->", pos + 4)
            next_pos = end + 3
        elif head[pos : pos + 9].upper() == b"<!DOCTYPE":
            end = _doctype_end(head, pos + 9)
            if end == -2:
                what = "declares entities" if b"<!ENTITY" in head[pos:].upper() else "has a subset or DTD"
                raise FileUnreadable(
                    name,
                    f"XML DOCTYPE {what}: refused (entity expansion and external entities are unsafe, and "
                    "entities left unexpanded would change values; only a bare <!DOCTYPE name> is accepted)",
                )
            next_pos = end + 1
        elif pos >= len(head) and whole:
            only = ", only its prolog" if prolog else ""
            raise FileUnreadable(name, f"empty file: no XML root element{only} ({_NO_ROOT})")
        elif pos >= len(head):
            raise FileUnreadable(name, too_long)
        else:
            return pos  # the root element (or something not well-formed, which the parser reports)
        if end == -1 and whole:
            raise FileUnreadable(
                name,
                "no XML root element: the file ends inside its prolog (a comment, processing instruction or "
                "DOCTYPE not closed)",
            )
        if end == -1:
            raise FileUnreadable(name, too_long)
        pos, prolog = next_pos, True


def _doctype_end(head: bytes, pos: int) -> int:
    """Index of the `>` closing a bare `<!DOCTYPE name>`, -2 when it has more (subset, SYSTEM, PUBLIC),
    -1 when the head ends first."""
    end = head.find(b">", pos)
    subset = head.find(b"[", pos)
    if subset != -1 and (end == -1 or subset < end):
        return -2
    if end == -1:
        return -1
    words = head[pos:end].split()
    return end if len(words) <= 1 else -2
