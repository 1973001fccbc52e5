"""Fluent's own attribute list in a JSON or JSONL record, `"attributes": [{"name": "colour", "type": "STRING",
"value": "red"}, …]` (AttributeInput: what Fluent's API returns and its exports carry), read as the attribute
keys it stands for.

Why: the readers knew attribute keys only (`attr_colour`, the object form `"attributes": {"colour": "red"}`
flattened to `attributes.colour`); a list was an unknown key, and products exported from Fluent and imported
again lost every attribute. Each element is read as the key `<key>.<name>` of the object form (`key` spelled
as in the record), so it is kept, folded, named and mapped exactly as that key is (source_keys.py,
mapping.folded_attribute_lists): the same attribute `attr_colour` or `attributes.colour` gives.

- `value`: a scalar's text, an object or array as JSON text (what any attribute key's value becomes); null,
  absent or empty: no attribute (as an empty `attr_*` value).
- `name`: trimmed (`" colour "` is `colour`). `type`: sent as given (trimmed); absent, null or empty: the
  feed's (`AttributeColumns.type`).
- A record whose list is not in that shape is rejected, the reason naming the element (`attributes[2].name
  is missing`), as is a record giving one attribute name twice (twice in the list, or in the list and as an
  attribute key such as `attr_colour`) with different values or types. The same value twice is one
  attribute. (Attribute keys alone are left as they were: `attr_colour` and `attribute_colour` in one record
  are two entries, as two CSV columns are.)
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from fc_assets.ingestion.read.value_text import scalar_text

if TYPE_CHECKING:
    from fc_assets.ingestion.read.source_keys import SourceKeys

INVALID = "attribute list not in Fluent's shape"  # (reasons are counted by their text up to the colon)
TWICE = "attribute given twice with different values"


class BadAttributes(ValueError):
    """A record's attribute list cannot be read as attributes (the record is rejected with this reason)."""


class Typed(dict):
    """A flattened record whose attribute list gave types: `types`, by key (`BatchBuilder` folds them)."""

    __slots__ = ("types",)


class Listed:
    """The attributes a record's list gave so far: by name, `[label, key, value text, type]`."""

    def __init__(self) -> None:
        self.entries: dict[str, list[Any]] = {}

    def types(self) -> dict[str, str]:
        return {key: type_ for _, key, _, type_ in self.entries.values() if type_ is not None}


def fold_list(
    key: str, value: Any, keys: SourceKeys, out: dict[str, str | None], listed: Listed | None
) -> Listed:
    """The list `value` of the record's key `key` into `out`, each element as the key `<key>.<name>`."""
    listed = Listed() if listed is None else listed
    if value is None or (isinstance(value, str) and not value.strip()):  # (empty: no attributes)
        return listed
    if not isinstance(value, list):
        raise BadAttributes(f"{INVALID}: {key} is {_what(value)}, not a list of objects with name and value")
    for i, element in enumerate(value):
        label = f"{key}[{i}]"
        if not isinstance(element, dict):
            raise BadAttributes(f"{INVALID}: {label} is {_what(element)}, not an object with name and value")
        name = element.get("name")
        if name is None:
            raise BadAttributes(f"{INVALID}: {label}.name is missing")
        if not isinstance(name, str):
            raise BadAttributes(f"{INVALID}: {label}.name is {_what(name)}, not text")
        if not name.strip():
            raise BadAttributes(f"{INVALID}: {label}.name is empty")
        type_ = element.get("type")
        if type_ is not None and not isinstance(type_, str):
            raise BadAttributes(f"{INVALID}: {label}.type is {_what(type_)}, not text")
        entry, named = keys.list_entry(key, name.strip())  # (" colour " is colour, as its value is trimmed)
        if named is None:  # (not read, as the object form's key would not be)
            continue
        text = scalar_text(element.get("value"))
        new = [label, entry, text, (type_ or "").strip() or None]
        old = listed.entries.get(named)
        if old is not None:
            new = _one(old, new)
        listed.entries[named] = new
    return listed


def one_name_one_value(out: dict[str, str | None], keys: SourceKeys, listed: Listed) -> dict[str, str | None]:
    """`out` with the list's attributes (after the record's keys) once the record's attribute keys are checked
    against them: an attribute given by both is one entry (the list's: it may carry a type), unless their
    values differ (`BadAttributes`)."""
    from fc_assets.ingestion.read.source_keys import ATTRIBUTE

    for key in list(out) if listed.entries else ():
        kind = keys.known.get(key) or keys.usable(key)
        entry = listed.entries.get(keys.attribute_name(key)) if kind & ATTRIBUTE else None  # type: ignore[arg-type]
        text = None if entry is None else _present(out[key])
        if text is None:
            continue  # (not the list's name, or empty: an empty value is no attribute)
        if _present(entry[2]) is None:
            entry[2] = out[key]
        elif text != _present(entry[2]):
            raise BadAttributes(f"{TWICE}: {entry[0]} {_shown(entry[2])}, {key} {_shown(out[key])}")
        if kind == ATTRIBUTE:
            del out[key]
        else:  # (also a column the feed reads: it stays, and the list's entry goes)
            del listed.entries[keys.attribute_name(key)]  # type: ignore[arg-type]
    for _, key, text, _ in listed.entries.values():
        out[key] = text
    types = listed.types()
    if not types:
        return out
    typed = Typed(out)
    typed.types = types
    return typed


def _one(old: list[Any], new: list[Any]) -> list[Any]:
    """Two elements of the list with one name: one attribute, or `BadAttributes` when they differ."""
    a, b = _present(old[2]), _present(new[2])
    if a is not None and b is not None and a != b:
        raise BadAttributes(f"{TWICE}: {old[0]} {_shown(old[2])}, {new[0]} {_shown(new[2])}")
    if old[3] is not None and new[3] is not None and old[3] != new[3]:
        raise BadAttributes(f"{TWICE}: {old[0]} of type {old[3]!r}, {new[0]} of type {new[3]!r}")
    return [old[0], old[1], old[2] if a is not None else new[2], old[3] or new[3]]


def _present(text: str | None) -> str | None:
    """A value as the mapper keeps it: trimmed, empty as none."""
    return (text or "").strip() or None


def _shown(text: str | None) -> str:
    return repr((text or "")[:100])


def _what(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
