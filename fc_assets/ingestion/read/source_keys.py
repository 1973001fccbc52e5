"""Which keys of a self-describing file (JSON, JSONL, XML) a feed can use, and the others, counted.

Why: those readers made one column per distinct key of a chunk, so a file whose records carry ever-changing
keys (`{"sku":…, "x17":…}`, a new key per line) held a 65,536-row column per key: 3 MB of JSONL with
18,000 distinct keys took over 8 GB. A feed only ever reads the source columns its fields name (a field's
name or alias, in the mapper's spelling-insensitive form), its attribute columns (by prefix or listed) and
what its computed fields declare (`join`'s columns), so the readers keep only those: memory is bounded by
the feed's declaration, not by the file. Nested objects are descended only where a wanted key can be.

The keys left out are not silent: their number (distinct, exact up to `DISTINCT_LIMIT`) and the first
`NAMES_SHOWN` of them are reported once per file (`check-file`'s JSON line and the feed run's metadata,
`unknown_keys`). A feed with a computed field that does not declare its columns may read any column: then
nothing is left out, and `records.MAX_CELLS` (keys x records in one chunk, whatever the feed) refuses a
file whose keys never stop changing, as unreadable with its reason, before they exhaust memory.

Attribute keys (`attr_colour`, …: `AttributeColumns`) are keys the feed reads, and a catalogue may carry
thousands of distinct ones (a few per record, by category): a column each made a chunk of 65,536 records with
over 1,024 of them pass `MAX_CELLS`, and the file was refused. So for a feed with attributes (`fold`) the
readers fold them, record by record, into one `list<struct{name, value}>` column (`FOLDED`, read/folded.py)
that the mapper turns into the `attributes` field: memory grows with the values, not keys x records. A key
that is also a column the feed reads (a computed field's declared column) is kept as a column too; a key
that names a field is a field's, never an attribute (as the mapper decides for CSV's columns).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from fc_assets.ingestion.read.mapping import namer, normalise
from fc_assets.ingestion.spec import FOLDED, TECHNICAL

if TYPE_CHECKING:
    from fc_assets.ingestion.feeds import Feed

NAMES_SHOWN = 10  # unknown keys named in the report (the first seen, in file order)
NAME_CHARS = 100  # of each, at most
DISTINCT_LIMIT = 100_000  # unknown keys counted exactly up to here (a hash each: ~10 MB)
_CACHE = 65_536  # names remembered as wanted or not (cleared when full: ever-changing keys)
COLUMN, ATTRIBUTE = 1, 2  # what a key is to the feed (bits of `kind`): a column, an attribute to fold
LIST = 4  # … the feed's attribute field as Fluent's list of `{name, type, value}` (read/attribute_list.py)
IN_LIST = 8  # … a key within that list's XML form, `attributes.attribute.…` (the fast XML path leaves it)


class SourceKeys:
    """The keys a feed can use (`wanted`), and the distinct others seen so far (`summary`)."""

    def __init__(
        self,
        names: Iterable[str] = (),
        *,
        prefixes: Iterable[str] = (),
        listed: Iterable[str] = (),
        fields: Iterable[str] | None = None,
        everything: bool = False,
        fold: bool = False,
        list_key: str | None = None,
    ) -> None:
        """`names`: the columns read (fields' names and aliases, computed fields' columns); attributes by
        `prefixes` or `listed` by name; `fields`: names that are a field's, never an attribute (default:
        `names`); `fold`: attribute keys are folded (`ATTRIBUTE`) instead of kept as columns; `list_key`: the
        top-level key that may hold Fluent's attribute list (`LIST`, folded: only when `<list_key>.` is one
        of `prefixes`, so each element is read as the key `<list_key>.<name>` of the object form)."""
        listed = tuple(listed)
        self.everything = everything
        self.fold = fold and not everything
        self._columns = frozenset(normalise(n) for n in names)
        self._listed = frozenset(normalise(n) for n in listed)
        self._fields = self._columns if fields is None else frozenset(normalise(n) for n in fields)
        self._names = self._columns | self._listed
        self._prefixes = tuple(p.lower() for p in prefixes)
        low = None if list_key is None else list_key.lower()
        self._list = low if self.fold and low is not None and f"{low}." in self._prefixes else None
        # the list's XML element per attribute: `<attributes><attribute>…` (our XML exports' singular)
        self.list_item = None if self._list is None else _singular(self._list)
        self.attribute_name = namer(self._prefixes, listed)  # an attribute key's name, as the mapper's
        self._entries: dict[tuple[str, str], tuple[str, str | None]] = {}
        self._cache: dict[str, int] = {}
        self.known: dict[str, int] = {}  # names found wanted, with their kind (so far; bounded as the cache;
        # never the attribute list's key)
        self._nested: dict[str, bool] = {}
        self._unknown: set[int] = set()
        self.shown: list[str] = []
        self.distinct = 0
        self.capped = False  # more than DISTINCT_LIMIT: `distinct` is a lower bound

    @property
    def list_key(self) -> str | None:
        """The top-level key (lower case) that may hold Fluent's attribute list, else None."""
        return self._list

    @classmethod
    def for_feed(cls, feed: Feed) -> SourceKeys:
        """What the feed's mapper (`mapping.FieldMapper`) can read."""
        fields: list[str] = [n for f in feed.fields for n in f.names()]
        names = list(fields)
        everything = False
        for f in feed.fields:
            if f.compute is not None:
                declared = getattr(f.compute, "columns", None)
                if declared is None:
                    everything = True
                else:
                    names.extend(declared)
        if not feed.attributes:
            return cls(names, fields=fields, everything=everything)
        return cls(
            names,
            prefixes=feed.attributes.prefixes,
            listed=feed.attributes.columns,
            fields=fields,
            everything=everything,
            fold=True,
            list_key=feed.attributes.field,
        )

    def wanted(self, name: str) -> int:
        """What the feed reads the key `name` as (`COLUMN`, `ATTRIBUTE`, `LIST`, …), else 0 and counted as
        unknown."""
        hit = self.usable(name)
        if not hit:
            self.unknown(name)
        return hit

    def usable(self, name: str) -> int:
        """`wanted` without counting (a parsing thread's question: the counting stays in file order)."""
        if self.everything:
            return COLUMN
        hit = self._cache.get(name)
        if hit is None:
            hit = self._kind(name)
            if len(self._cache) >= _CACHE:
                self._cache.clear()
                self.known.clear()
            self._cache[name] = hit
            if hit and not hit & LIST:  # (the list's key is asked for its kind: records.flatten_wanted)
                self.known[name] = hit
        return hit

    def _kind(self, name: str) -> int:
        if name in TECHNICAL or (self.fold and name == FOLDED):
            return 0
        norm, low = normalise(name), name.lower()
        column = norm in self._columns
        attribute = norm in self._listed or any(
            low.startswith(p) and len(name) > len(p) for p in self._prefixes
        )
        if not self.fold:
            return COLUMN if column or attribute else 0
        field = norm in self._fields
        return (
            (COLUMN if column else 0)
            | (ATTRIBUTE if attribute and not field else 0)
            | (LIST if low == self._list and not field else 0)
            | (IN_LIST if self._list is not None and low.startswith(f"{self._list}.{self.list_item}.") else 0)
        )

    def list_entry(self, key: str, name: str) -> tuple[str, str | None]:
        """An element `name` of the attribute list under the record's key `key`: the key it is read as
        (`<key>.<name>`) and its attribute name, None when the feed would not fold that key."""
        hit = self._entries.get((key, name))
        if hit is None:
            entry = f"{key}.{name}"
            hit = (entry, self.attribute_name(entry) if self.usable(entry) else None)
            if len(self._entries) >= _CACHE:
                self._entries.clear()
            self._entries[(key, name)] = hit
        return hit

    def descend(self, prefix: str) -> bool:
        """Whether a key under the nested object `prefix` (dotted, without the final dot) can be wanted;
        when not, the object is skipped whole and `prefix` counted as one unknown key."""
        if self.everything:
            return True
        hit = self._nested.get(prefix)
        if hit is None:
            norm, low = normalise(prefix), prefix.lower() + "."
            hit = any(n.startswith(norm) for n in self._names) or any(
                low.startswith(p) or p.startswith(low) for p in self._prefixes
            )
            if len(self._nested) >= _CACHE:
                self._nested.clear()
            self._nested[prefix] = hit
        if not hit:
            self.unknown(prefix)
        return hit

    def unknown(self, name: str) -> None:
        key = hash(name)
        if key in self._unknown:
            return
        if len(self._unknown) >= DISTINCT_LIMIT:
            self.capped = True
            return
        self._unknown.add(key)
        self.distinct += 1
        if len(self.shown) < NAMES_SHOWN:
            self.shown.append(_printable(name[:NAME_CHARS]))

    def summary(self) -> dict[str, Any] | None:
        """`{"distinct": N, "names": [first few]}` (`"distinct_at_least"` instead when capped), or None."""
        if not self.distinct:
            return None
        return {
            ("distinct_at_least" if self.capped else "distinct"): self.distinct,
            "names": list(self.shown),
        }


def _singular(tag: str) -> str:
    """An XML list element's item name, as extraction/export_files.py writes it (`attributes` → `attribute`)."""
    return tag[:-1] if tag.endswith("s") else f"{tag}_item"


def _printable(name: str) -> str:
    """A key as shown in logs and metadata: control characters escaped (a key is the file's text; a newline in
    it must not start a log line of its own)."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in name)
