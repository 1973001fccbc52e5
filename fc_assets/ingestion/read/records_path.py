"""Where a JSON document's records are: ijson's prefix for them and the depth their brackets open at.

ijson names a value by its keys joined with `.`, unescaped (and `item` for an array's element), so
`{"inventory.items": [...]}` and `{"inventory": {"items": [...]}}` both hold records at
`inventory.items.item`. The prefix is what ijson matches, but the depth a record opens at — which the guard
under ijson needs to keep records within FC_MAX_VALUE_BYTES (json_guard.py) — is the document's: it is
read from the document's own keys (ijson's `map_key` events), in the head and, when the records start
after it, in a second read up to their array.

A feed declares the path (`FormatOptions.json_records`) as ijson's dotted prefix (`"data.rows.item"`:
either spelling of each dot; the first value at it gives the depth) or as the keys leading to the array
(`("data", "v1.0")`: those keys exactly). A path found nowhere in the document refuses the file ("matches
nothing"); one that is there holding something else than an array (null, an object, a string), or that leads
through a value that is not a container, refuses it saying what it holds (`_Finder.wrong`). So does
one that ijson would read from two arrays (`{"a.b": [...], "a": {"b": [...]}}`): a key path's array preceded
by the other spelling, seen here; any array followed by one, seen by the reader — the guard counts the
elements of the array found here (the `ordinal`-th container opening at its depth), and ijson reading more
records than that refuses the file at its end. A dotted string through an array (`pages.item.items.item`)
names an array in each element, every one of them read: not counted.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

from fc_assets.ingestion.read.json_guard import JsonGuard
from fc_assets.ingestion.read.streams import ByteSource
from fc_assets.ingestion.read.unreadable import FileUnreadable

BOM = b"\xef\xbb\xbf"
ITEM = None  # an array's element in a real path (a key is never None)
SHOWN_KEYS = 10  # top-level keys named when a path matches nothing


@dataclass(frozen=True)
class RecordsPath:
    prefix: str  # ijson's prefix of the records
    depth: int  # the depth inside a record's opening bracket (`JsonGuard`'s `record_depth`)
    # False: not looked for in the whole document (a forward-only stream): `_read_json` then refuses a file
    # without records
    found: bool = True
    # the records' array, when known: the how-manieth container opening at its depth (0-based), and whether
    # it is empty — so that the guard counts its elements and the reader refuses records from elsewhere
    ordinal: int | None = None
    empty: bool | None = None
    # not found (`found` False): what the head showed at the path instead of the records' array, if anything
    wrong: str | None = None

    def check_count(
        self, name: str, guard: JsonGuard, read: int, declared: str | tuple[str, ...] | None
    ) -> None:
        """Refuse the file when ijson read more records than the records' array holds: another array at the
        same dotted path (`{"a": {"b": [...]}, "a.b": [...]}`) was read too."""
        if self.ordinal is None or self.empty is None or guard.array_state != "after":
            return
        held = 0 if self.empty else guard.array_commas + 1
        if read > held:
            what = (
                f"the feed's json_records {shown(declared)}"
                if declared
                else f"the records' path {self.prefix!r}"
            )
            raise FileUnreadable(
                name,
                f"{what} is ambiguous in this file: {read - held:,} records were read from another array at "
                f"the same dotted path after its own ({held:,}): a key repeated, or the JSON parser joining "
                'keys with dots (`{"a.b": ...}` and `{"a": {"b": ...}}` are one path to it)',
            )


def shown(path: str | tuple[str, ...]) -> str:
    """The path as a user declared it: the dotted string, or the keys as a JSON list."""
    return repr(path) if isinstance(path, str) else json.dumps(list(path), ensure_ascii=False)


def prefix_depth(prefix: str) -> int:
    """The depth for a prefix whose every dot separates two keys (`item`: 2, `data.items.item`: 4), plus the
    bracket; `""` (the document is the record): 1."""
    return prefix.count(".") + 2 if prefix else 1


def resolve(src: ByteSource, path: str | tuple[str, ...], max_value_bytes: int) -> RecordsPath:
    """The records' prefix and depth in this document for a declared path (see the module docstring)."""
    prefix = path if isinstance(path, str) else ".".join([*path, "item"])
    finder = _Finder(path, src.name)
    head = src.head[len(BOM) :] if src.head.startswith(BOM) else src.head
    depth = finder.scan(io.BytesIO(head), max_value_bytes, partial=True)
    if depth is None and not finder.ended:  # the head is not the whole document
        if not src.reopenable:  # a forward-only stream: its head is all there is to look at
            return _unresolved(prefix, path, finder.refusal())
        finder = _Finder(path, src.name)
        with src.open(again=True) as stream:
            if src.head.startswith(BOM):
                stream.read(len(BOM))
            depth = finder.scan(stream, max_value_bytes)
    if depth is None:
        if not finder.ended:  # malformed: the records' read says where
            return _unresolved(prefix, path)
        if finder.wrong is not None:
            raise FileUnreadable(src.name, finder.refusal())  # type: ignore[arg-type]
        keys = ", ".join(json.dumps(k, ensure_ascii=False) for k in finder.top[:SHOWN_KEYS])
        more = ", …" if len(finder.top) > SHOWN_KEYS else ""
        if finder.other:
            hint = f" (the array at {finder.other} has the same dotted path: declare those keys to read it)"
        else:
            hint = f" (its top-level keys: {keys}{more})" if finder.top else ""
        raise FileUnreadable(
            src.name, f"the feed's json_records {shown(path)} matches nothing in the file{hint}"
        )
    return RecordsPath(prefix, depth, True, finder.ordinal, finder.empty)


def _unresolved(prefix: str, path: str | tuple[str, ...], wrong: str | None = None) -> RecordsPath:
    """The path not found in what could be read: a key path's depth is its own; a dotted string's, each dot
    taken to separate two keys."""
    depth = len(path) + 2 if isinstance(path, tuple) else prefix_depth(prefix)
    return RecordsPath(prefix, depth, False, wrong=wrong)


def kind(event: str, value: object) -> str:
    """A JSON value as a message names it, from its first ijson event (a scalar with its text)."""
    if event == "string":
        text = json.dumps(value, ensure_ascii=False)
        return f"a string ({text[:40]}{'…' if len(text) > 40 else ''})"
    if event == "number":
        return f"a number ({value})"
    if event == "boolean":
        return f"a boolean ({'true' if value else 'false'})"
    return {"null": "null", "start_map": "an object", "start_array": "an array"}.get(event, event)


def empty_array(events: Iterator[tuple[str, str, object]]) -> bool | None:
    """Whether the array just started is empty (its next event ends it); None when the stream ends first."""
    import ijson

    try:
        return next(events, ("", "", None))[1] == "end_array"
    except ijson.JSONError:
        return None


class _Finder:
    """Walks ijson's events, keeping the real path (keys, `ITEM` in arrays), to the declared path."""

    def __init__(self, path: str | tuple[str, ...], name: str) -> None:
        self.path, self.name = path, name
        # a dotted string's array: ijson names an array's elements `<its prefix>.item`, or `item` when its
        # prefix is "" (the root, or a top-level key ""): `.item` names no array's elements
        self.joined = path[: -len(".item")] if isinstance(path, str) and path.endswith(".item") else None
        if isinstance(path, str) and path in ("item", ".item"):
            self.joined = "" if path == "item" else None
        self.ended = False  # the whole document was walked
        self.top: list[str] = []  # the root object's keys (for the message when nothing matches)
        self.other = ""  # a key path's: another array at the same dotted path, seen before it (JSON list)
        self.ordinal: int | None = (
            None  # the records' array: the how-manieth container at its depth (0-based)
        )
        self.empty: bool | None = None  # whether it is empty (None: the head ends before it says)
        # the deepest value on the path that is not what the path needs there (the records' array, or an
        # object holding the next key): (its depth, where it is and what it holds, for `refusal`)
        self.wrong: tuple[int, str] | None = None
        # ijson's prefixes of the values on the path (the root's: ""), to look no further at the others
        parts = path if isinstance(path, tuple) else [] if self.joined is None else self.joined.split(".")
        self.on_path = (
            {".".join(parts[:i]) for i in range(len(parts) + 1)} if parts or self.joined == "" else set()
        )

    def refusal(self) -> str | None:
        """The message for a path that holds the wrong kind of value (`wrong`), else None."""
        if self.wrong is None:
            return None
        return f"the feed's json_records {shown(self.path)}{self.wrong[1]}"

    def _saw(self, real: list[str | None], prefix: str, event: str, value: object) -> None:
        """Note a value (its first event, inside `real`) on the path that is not what the path needs there:
        the records' array, or a container holding the next step."""
        if isinstance(self.path, str):  # (a path without `.item` is to records themselves: any value is one)
            if self.joined is None or not (
                not real or prefix == self.joined or self.joined.startswith(prefix + ".")
            ):
                return
            last = prefix == self.joined
            step = "" if last else (self.joined[len(prefix) + 1 :] if real else self.joined).split(".")[0]
            at = repr(prefix)
        else:
            if len(real) > len(self.path) or real != list(self.path[: len(real)]):
                return
            last = len(real) == len(self.path)
            step = "" if last else self.path[len(real)]
            at = "" if last else json.dumps(real, ensure_ascii=False)  # (the path itself: shown already)
        if not last and (event == "start_map" or (event == "start_array" and step == "item")):
            return  # (a dotted string's `item`: an array's elements, or a map's key "item")
        if self.wrong is not None and len(real) <= self.wrong[0]:
            return  # (the deepest is named)
        needed = "an array of records" if last else "an object"
        if not real and not last:
            said = f": the file is {kind(event, value)}, not {needed}"
        else:
            said = f"{': ' + at if at else ''} is {kind(event, value)} in the file, not {needed}"
        self.wrong = (len(real), said)

    def scan(self, stream, max_value_bytes: int, partial: bool = False) -> int | None:
        """The records' depth, or None when the stream ends (or breaks) before they are found. `partial`: the
        stream is the document's head (`JsonGuard`)."""
        import ijson

        guarded = JsonGuard(stream, self.name, max_value_bytes, partial=partial)
        try:
            return self._walk(ijson.parse(guarded))
        except ijson.JSONError:
            return None

    def _walk(self, events: Iterator[tuple[str, str, object]]) -> int | None:
        real: list[str | None] = []  # one part per open container: its current key, or ITEM
        opened: list[int] = []  # containers opened so far with as many around them as the index
        for prefix, event, value in events:
            if event == "map_key":
                real[-1] = value  # type: ignore[assignment]
                if len(real) == 1 and len(self.top) <= SHOWN_KEYS:
                    self.top.append(value)  # type: ignore[arg-type]
                continue
            if event in ("end_map", "end_array"):
                real.pop()
                continue
            depth = self._match(prefix, event, real, value)
            if depth is not None:
                # the records' array (not a value at the path that is one record), reached by keys only: which
                # one at its depth, and empty or not. Through an array (`pages.item.items.item`) ijson reads the
                # records of every array the path names, each page's: none of them is the only one.
                if event == "start_array" and depth == len(real) + 2 and ITEM not in real:
                    self.ordinal = opened[len(real)] if len(real) < len(opened) else 0
                    self.empty = empty_array(events)
                return depth
            if prefix in self.on_path:
                self._saw(real, prefix, event, value)
            if event in ("start_map", "start_array"):
                opened.extend([0] * (len(real) + 1 - len(opened)))
                opened[len(real)] += 1
                real.append("" if event == "start_map" else ITEM)
        self.ended = True
        return None

    def _match(self, prefix: str, event: str, real: list[str | None], value: object = None) -> int | None:
        """The records' depth when this value (starting at `prefix`, inside `real`) is theirs or their array."""
        if isinstance(self.path, str):
            if prefix == self.path:  # the first record (an array's element, or a key `item`'s value)
                return len(real) + 1
            if event == "start_array" and prefix == self.joined:  # their array, maybe empty
                return len(real) + 2
            return None
        if event != "start_array":
            if real == list(self.path):
                self._saw(real, prefix, event, value)
                raise FileUnreadable(self.name, self.refusal())  # type: ignore[arg-type]
            return None
        if real == list(self.path):
            if self.other:
                raise FileUnreadable(
                    self.name,
                    f"the feed's json_records {shown(self.path)} is ambiguous in this file: the array at "
                    f"{self.other} before it has the same dotted path (the JSON parser would read both)",
                )
            return len(real) + 2
        if prefix == ".".join(self.path) and not self.other:  # ijson would read this array's elements too
            self.other = json.dumps([p if p is not ITEM else "item" for p in real], ensure_ascii=False)
        return None
