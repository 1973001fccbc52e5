"""An XML document without records: a file of 0 rows, or unreadable.

A root without child elements (`<inventory/>`, whitespace or comments only) is a file without records — the
empty snapshot a feed with `send_disappeared` sends as deletes. A root holding elements none of which is a
record (the feed's `xml_record` misspelt, another system's export naming its records otherwise) is not: read
as 0 rows it would be that same empty snapshot, every row sent before deleted. So it is unreadable, naming
the record element expected and the root's child elements found. So is a root holding only text (an error
message where the export should be). The full parser (`xml_records.read_xml_full`) reports it at the end of
the document; the fast path never yields a file without records (it hands it to the parser).
"""

from __future__ import annotations

from fc_assets.ingestion.read.unreadable import FileUnreadable

SHOWN_NAMES = 10  # the root's child element names given when none is a record
_LONGEST = 40  # characters of a name or text given


class Seen:
    """The root's name and its child elements' (distinct, first SHOWN_NAMES) seen before any record, and
    its text: what `no_records` says."""

    def __init__(self) -> None:
        self.root: str | None = None
        self.children: list[str] = []  # distinct local names, in document order
        self.more = False  # more distinct names than SHOWN_NAMES
        self.root_text: str | None = None

    def saw(self, depth: int, local: str) -> None:
        """An element (outside any record) starting at `depth` (1: the root)."""
        if depth == 2:
            if local not in self.children:
                if len(self.children) < SHOWN_NAMES:
                    self.children.append(local)
                else:
                    self.more = True
        elif depth == 1:
            self.root = local

    def no_records(self, name: str, record: str | None) -> None:
        """At the end of a document without records: refuse it unless its root holds no element and no
        text (then it is a file without records)."""
        root = f"<{shown(self.root or '')}>"
        if self.children:
            names = ", ".join(f"<{shown(c)}>" for c in self.children) + (", …" if self.more else "")
            folded = (record or "").casefold()
            case = any(c.casefold() == folded for c in [*self.children, self.root or ""])
            hint = "; element names are case-sensitive" if case else ""
            # (without xml_record a root's child is always a record: the second wording is a safeguard)
            what = f"the feed's xml_record <{shown(record)}> matches no element" if record else "no record"
            raise FileUnreadable(
                name,
                f"{what} in the file (the root {root} holds {names}{hint}); a file without records has a "
                "root without child elements",
            )
        if (self.root_text or "").strip():
            raise FileUnreadable(
                name, f"the root {root} holds text and no element: '{shown(self.root_text.strip())}'"
            )


def shown(text: str) -> str:
    """A name or text as given in a message: at most _LONGEST characters, control and other unprintable
    characters escaped."""
    cut = text[:_LONGEST] + ("…" if len(text) > _LONGEST else "")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in cut)
