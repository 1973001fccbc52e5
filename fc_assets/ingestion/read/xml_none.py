"""An XML document without records: a file of 0 rows, or unreadable.

A root whose child elements hold nothing (`<inventory/>`, whitespace or comments only, or distinct empty
elements: `<Export><Items/></Export>`, the empty export of a feed whose records sit in a wrapper; `xsi:` and
`xml:` attributes are about an element, not data) is a file without records — the empty snapshot a feed
with `send_disappeared` sends as deletes. An element without attribute, text or child holds no record's
data, so reading such a file as 0 records misreads nothing. A
root holding anything else and no record is not (the feed's `xml_record` misspelt, another system's export
naming its records otherwise, a header with fields: one record named otherwise looks the same; `<item/>
<item/>`, a list): read as 0 rows it would be that same empty snapshot, every row sent before deleted. So
it is unreadable, naming the record element expected and the root's child elements found. So is a root
holding text (an error message where the export should be; U+FEFF, a stray byte-order mark, is no text).
The full parser (`xml_records.read_xml_full`) reports it at the end of the document; the fast path never
yields a file without records (it hands it to the parser).
"""

from __future__ import annotations

from typing import Any

from fc_assets.ingestion.read.unreadable import FileUnreadable

SHOWN_NAMES = 10  # the root's child element names given when none is a record
# attributes about the element, not data: `xsi:nil="true"` (.NET's and JAXB's null list), `xsi:type`,
# `xml:lang`; an element holding only these is empty
_ABOUT = ("{http://www.w3.org/2001/XMLSchema-instance}", "{http://www.w3.org/XML/1998/namespace}")
_LONGEST = 40  # characters of a name or text given


def blank(text: str | None) -> bool:
    """Whether text is whitespace only (a byte-order mark included)."""
    return not (text or "").replace("\ufeff", "").strip()


class Seen:
    """The root's name and its child elements' (distinct, first SHOWN_NAMES) seen before any record, whether
    an element other than the root holds anything, and the root's text: what `no_records` says."""

    def __init__(self) -> None:
        self.root: str | None = None
        self.children: list[str] = []  # distinct local names, in document order
        self.more = False  # more distinct names than SHOWN_NAMES
        self.held = False  # an element other than the root has an attribute, text or a child element, or
        # the root's child repeats the one before it (a list of records, empty or not)
        self.last: str | None = None  # the root's last child element's name
        self.root_text: str | None = None  # the first text (not blank) directly in the root

    def saw(self, depth: int, local: str, el: Any) -> None:
        """An element (outside any record) starting at `depth` (1: the root)."""
        if depth == 2:
            self.held = self.held or local == self.last or any(not k.startswith(_ABOUT) for k in el.attrib)
            self.last = local
            if local not in self.children:
                if len(self.children) < SHOWN_NAMES:
                    self.children.append(local)
                else:
                    self.more = True
        elif depth == 1:
            self.root = local
        else:
            self.held = True  # (an element in the root's child)

    def text(self, text: str | None) -> None:
        """Text directly in the root."""
        if blank(self.root_text) and not blank(text):
            self.root_text = text

    def ended(self, el: Any) -> None:
        """The root's child `el` ended (outside any record), before it and its earlier siblings are cleared:
        its text, and the tails parsed so far of it and of its earlier siblings (text in the root)."""
        self.held = self.held or not blank(el.text)
        while el is not None:
            self.text(el.tail)
            el = el.getprevious()

    def no_records(self, name: str, record: str | None) -> None:
        """At the end of a document without records: refuse it unless its root holds no text and no element
        that holds anything (then it is a file without records)."""
        root = f"<{shown(self.root or '')}>"
        names = ", ".join(f"<{shown(c)}>" for c in self.children) + (", …" if self.more else "")
        if self.held:
            folded = (record or "").casefold()
            case = any(c.casefold() == folded for c in [*self.children, self.root or ""])
            hint = "; element names are case-sensitive" if case else ""
            # (without xml_record a root's child is always a record: the second wording is a safeguard)
            what = f"the feed's xml_record <{shown(record)}> matches no element" if record else "no record"
            raise FileUnreadable(
                name,
                f"{what} in the file (the root {root} holds {names}{hint}); a file without records has a "
                "root without child elements, or with empty ones only",
            )
        if not blank(self.root_text):
            text = shown(self.root_text.replace("\ufeff", "").strip())  # type: ignore[union-attr]
            what = f"and no record (only {names}, empty)" if self.children else "and no element"
            raise FileUnreadable(name, f"the root {root} holds text {what}: '{text}'")


def shown(text: str) -> str:
    """A name or text as given in a message: at most _LONGEST characters, control and other unprintable
    characters escaped."""
    cut = text[:_LONGEST] + ("…" if len(text) > _LONGEST else "")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut)
