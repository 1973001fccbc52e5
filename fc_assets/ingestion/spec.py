"""The vocabulary of feed declarations: the types `feeds.py` declares feeds with (`Field`,
`AttributeColumns`, `FormatOptions`) and the Arrow shapes a feed's canonical schema is made of.

Its own module so that the declarations and the readers depend on it, and not on each other: `feeds.py`
imports nothing from `read/`; `read/` imports the declarations.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pyarrow as pa

    from fc_assets.ingestion.read.mapping import Columns

ROW = "_row"  # the record's number in the file (see read/readers.py for what is counted)
ERROR = "_error"  # why the record could not be parsed (the row is then rejected as a whole), else null
RAW = "_raw"  # the unparsed text of such a record (for the rejects file), else null
TECHNICAL = (ROW, ERROR, RAW)
# a reader's raw batch: the record's attribute keys folded into one `list<struct{name, value}>` column (JSON,
# JSONL, XML read for a feed with attributes: read/folded.py), not one column per key; never a file's key
FOLDED = "_attributes"

Kind = Literal["text", "code", "int", "decimal", "bool", "datetime", "time", "list"]


def _arrow_shapes() -> dict[str, Any]:
    import pyarrow as pa

    utc = pa.timestamp("us", "UTC")
    return {
        "UTC": utc,
        "ARROW_TYPES": {
            "text": pa.string(),
            "code": pa.string(),
            "int": pa.int64(),
            "decimal": pa.float64(),
            "bool": pa.bool_(),
            "datetime": utc,
            "time": pa.int32(),
            "list": pa.list_(pa.string()),
        },
        "ATTRIBUTE_TYPE": pa.struct([("name", pa.string()), ("type", pa.string()), ("value", pa.string())]),
        "PRICE_TYPE": pa.struct([("type", pa.string()), ("currency", pa.string()), ("value", pa.float64())]),
    }


def __getattr__(name: str) -> Any:
    """`UTC`, `ARROW_TYPES` (by `Kind`), `ATTRIBUTE_TYPE` and `PRICE_TYPE` are built on first use (PEP 562),
    so declaring the feeds at every code-location load does not import pyarrow (~0.2 s with numpy)."""
    if name in ("UTC", "ARROW_TYPES", "ATTRIBUTE_TYPE", "PRICE_TYPE"):
        shapes = _arrow_shapes()
        globals().update(shapes)
        return shapes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# XML 1.0 (fifth edition) NameStartChar and NameChar, without ':': a record is matched by its local name
_NAME_START = (
    "A-Z_a-z\xc0-\xd6\xd8-\xf6\xf8-\u02ff\u0370-\u037d\u037f-\u1fff\u200c\u200d\u2070-\u218f"
    "\u2c00-\u2fef\u3001-\ud7ff\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff"
)
_NAME_MORE = "\\-.0-9\xb7\u0300-\u036f\u203f\u2040"


def xml_name_problem(name: object) -> str | None:
    """Why `name` cannot be an element's local name, or None when it can (a feed's `xml_record`: checked at
    declaration, where a bad one would otherwise match no element of any file, refused at run time)."""
    import re

    if not isinstance(name, str):
        return "not a string"
    if not name:
        return "empty"
    for i, c in enumerate(name):
        if re.fullmatch(f"[{_NAME_START}]" if i == 0 else f"[{_NAME_START}{_NAME_MORE}]", c):
            continue
        if c == ":":
            return f"':' cannot be in a local name (without its prefix: {name.rpartition(':')[2]!r})"
        if c == "/":
            return "'/' cannot be in a name (a path: name the record element alone)"
        return f"{c!r} cannot {'start' if i == 0 else 'be in'} a name"
    return None


@dataclass(frozen=True)
class FormatOptions:
    """How a feed's files are read (all optional: detected when not set)."""

    format: str | None = None  # csv | json | jsonl | xml | parquet; None: from the extension/content
    delimiter: str | None = None  # CSV; None: detected from the header line
    encoding: str = "utf-8"  # CSV text encoding (a UTF-8, UTF-16 or UTF-32 BOM is always accepted)
    # local name of the record element (any depth); None: the root's repeated child. An XML name (checked by
    # `Feed`, which names itself in the error: `xml_name_problem`)
    xml_record: str | None = None
    # JSON: where the records are; None: detected. ijson's dotted prefix ("inventory.item": the elements of
    # the array at key "inventory"; a dot in it stands for either a key's dot or the step to a nested key),
    # or the keys leading to the array, exactly (("data", "v1.0"); a list is kept as a tuple). A path that
    # matches nothing in a file makes it unreadable (read/records_path.py).
    json_records: str | tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        path = self.json_records
        if isinstance(path, list | tuple):
            if not path or not all(isinstance(k, str) and k for k in path):
                raise ValueError(
                    f"json_records: a list of keys must hold one or more non-empty strings, not {path!r}"
                )
            object.__setattr__(self, "json_records", tuple(path))
        elif path is not None and not isinstance(path, str):
            raise ValueError(f"json_records: a dotted string or a list of keys, not {path!r}")
        elif path == "":  # (read as "not set": the first array in the file, not the document as one record)
            raise ValueError("json_records: '' names no path (None: detected)")


@dataclass(frozen=True)
class Field:
    """One canonical field: its source (mapping) and its rules (conversion + pandera schema)."""

    name: str
    kind: Kind = "text"
    aliases: tuple[str, ...] = ()
    required: bool = False  # the column must exist (unless default/constant/compute) and never be empty
    default: str | None = None  # used when the column is absent or the value empty
    constant: str | None = None  # always this value
    fallback: str | None = None  # another canonical field whose value fills an empty one
    compute: Callable[[Columns], pa.Array] | None = None
    transform: Callable[[pa.Array], pa.Array] | None = None
    # rules
    values: tuple[str, ...] | Callable[[], Iterable[str]] = ()  # allowed values (codes: upper case); a
    # callable is evaluated when the schema is first built (e.g. the IANA time zone names)
    values_error: str | None = None  # the reject reason for a value not allowed (default lists them)
    pattern: str | None = None  # text/code: full-match regular expression
    min: float | None = None  # int/decimal/time
    max: float | None = None
    max_length: int | None = None  # text/code, in characters
    separator: str = "|"  # list: between items (a JSON array text is also accepted)
    formats: tuple[str, ...] = ()  # datetime: strptime formats accepted besides ISO-8601
    description: str = ""

    @property
    def needs_column(self) -> bool:
        return self.required and self.default is None and self.constant is None and self.compute is None

    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class AttributeColumns:
    """Source columns that become Fluent attributes, `list<struct{name, type, value}>` in one field.

    A column belongs here when its name starts with one of `prefixes` (case-insensitive; the attribute is
    named by the rest, e.g. `attr_colour` → `colour`) or is listed in `columns` (named as in the file).
    Empty values are left out of a row's list; `type` is every attribute's unless a JSON/XML record gives
    Fluent's own list under the key `field` (`[{name, type, value}]`, read/attribute_list.py: each element
    read as the key `<field>.<name>`, so only when `<field>.` is one of `prefixes`)."""

    prefixes: tuple[str, ...] = ("attr_", "attribute_", "attributes.")
    columns: tuple[str, ...] = ()
    type: str = "STRING"
    field: str = "attributes"
