"""The JSONL fast path (`jsonl_fast.py`) against the line-by-line reader: generated files, clean and with
each feature the fast path must not read itself at a random line, plus random byte mutations, give exactly
the same batches (columns, values, line numbers, rejects) or exactly the same refusal.

Blocks are made tiny (a few hundred bytes) so that lines straddle block cuts, and batches small, so that
the hand-over happens after the fast path has already yielded batches."""

from __future__ import annotations

import gzip
import io
import json
import random
import time

import pyarrow as pa
import pytest

from fc_assets.ingestion.read import jsonl_fast, readers
from fc_assets.ingestion.read.arrow_values import as_batch
from fc_assets.ingestion.read.streams import ByteSource
from fc_assets_tests.ingestion_files.corpus import ForwardOnly

KEYS = ["sku", "location", "qty", "status", "expected_on", "note.text", "", "x y", "Größe", "a:b,c"]
VALUES = ["SKU-1", "00123", "", " padded ", "Zürich €5", "日本", "{x}", "[1]", "a:b", "c,d", "'", "🙂"]
MAX_BYTES = 2000
BOM = b"\xef\xbb\xbf"


def _record(rng: random.Random, keys: list[str] | None, compact: bool) -> str:
    keys = keys if keys is not None else rng.sample(KEYS, rng.randint(1, 6))
    record = {k: rng.choice(VALUES) for k in keys}
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":") if compact else None)
    return text


def generate(seed: int, n: int, same: bool) -> list[str]:
    """Lines of a clean file: random keys per record, or `same` keys in every record (the usual file)."""
    rng = random.Random(seed)
    keys = rng.sample(KEYS, rng.randint(1, 7)) if same else None
    compact = rng.random() < 0.7
    lines = [_record(rng, keys, compact) for _ in range(n)]
    for _ in range(rng.choice([0, 0, 3])):  # blank lines (skipped, counted)
        lines.insert(rng.randrange(len(lines) + 1), "")
    return lines


def assemble(lines: list[str], rng: random.Random) -> bytes:
    data = "\n".join(lines).encode() + rng.choice([b"\n", b"", b"\n\n"])
    return (b"\xef\xbb\xbf" if rng.random() < 0.2 else b"") + data


def _read(data: bytes, chunk_rows: int, fast: bool, gz: bool = False, forward: bool = False):
    """The batches (or the exception) of the reader with its fast path, or of the line-by-line reader."""
    if gz:
        data = gzip.compress(data)
    src = ByteSource(ForwardOnly(data) if forward else io.BytesIO(data), "f.jsonl")
    batches: list[pa.RecordBatch] = []
    try:
        if fast:
            batches.extend(readers._read_jsonl(src, chunk_rows))
        else:
            with src.open() as stream:
                batches.extend(readers._read_jsonl_lines(stream, chunk_rows, MAX_BYTES))
        return ("ok", batches)
    except Exception as e:  # noqa: BLE001 - compared
        return ("raised", batches, type(e).__name__, str(e))


def assert_same(fast, slow) -> None:
    assert fast[0] == slow[0], (fast, slow)
    assert len(fast[1]) == len(slow[1])
    for a, b in zip(fast[1], slow[1], strict=True):
        assert isinstance(b, pa.RecordBatch)  # (the fast path's chunk over blocks: a table of them)
        a = as_batch(a)
        assert a.schema.names == b.schema.names
        assert a.equals(b), (a.to_pydict(), b.to_pydict())
    assert fast[2:] == slow[2:]


def both(data: bytes, chunk_rows: int, **kw) -> None:
    assert_same(_read(data, chunk_rows, True, **kw), _read(data, chunk_rows, False, **kw))


def fast_only(data: bytes, chunk_rows: int) -> tuple[list[pa.RecordBatch], jsonl_fast.Rest | None]:
    """What the fast path alone yields, and its `Rest` (None: it read the whole file)."""
    gen = jsonl_fast.fast_batches(io.BytesIO(data), chunk_rows, MAX_BYTES)
    batches = []
    while True:
        try:
            batches.append(next(gen))
        except StopIteration as stop:
            return batches, stop.value


@pytest.fixture(autouse=True)
def limit(monkeypatch):
    monkeypatch.setattr(readers, "_max_value_bytes", lambda: MAX_BYTES)


@pytest.fixture(params=[200, 1 << 20], ids=["tiny_blocks", "big_blocks"])
def blocks(request, monkeypatch):
    monkeypatch.setattr(jsonl_fast, "BLOCK_BYTES", request.param)
    return request.param


@pytest.mark.parametrize("same", [False, True], ids=["mixed", "same_keys"])
@pytest.mark.parametrize("seed", range(12))
def test_clean_files_are_read_by_the_fast_path_exactly_as_line_by_line(seed, same, blocks):
    rng = random.Random(seed)
    data = assemble(generate(seed, rng.randint(1, 150), same), rng)
    chunk_rows = rng.choice([1, 7, 64, 65_536])
    batches, rest = fast_only(data, chunk_rows)
    assert rest is None  # the fast path read it all...
    assert_same(("ok", batches), _read(data, chunk_rows, False))
    for gz in (False, True):  # ...and the reader gives the same, gzipped and forward-only too
        both(data, chunk_rows, gz=gz, forward=gz)


def _at(fn):
    def change(lines: list[str], k: int) -> None:
        lines[k] = fn(lines[k])

    return change


def _insert(text: str):
    def change(lines: list[str], k: int) -> None:
        lines.insert(k, text)

    return change


FEATURES = {  # each must make the fast path hand over, and the reader give what the line-by-line one gives
    "escape_quote": _at(lambda r: r.replace("{", '{"esc":"a\\"b",', 1)),
    "escape_unicode": _at(lambda r: r.replace("{", '{"esc":"caf\\u00e9",', 1)),
    "escape_surrogate": _at(lambda r: r.replace("{", '{"esc":"\\ud800",', 1)),
    "integer": _at(lambda r: r.replace("{", '{"n":5,', 1)),
    "minus_zero": _at(lambda r: r.replace("{", '{"n":-0,', 1)),
    "float": _at(lambda r: r.replace("{", '{"n":3.50,', 1)),
    "exponent": _at(lambda r: r.replace("{", '{"n":1e5,', 1)),
    "null": _at(lambda r: r.replace("{", '{"n":null,', 1)),
    "true": _at(lambda r: r.replace("{", '{"n":true,', 1)),
    "nested": _at(lambda r: r.replace("{", '{"loc":{"ref":"L1"},', 1)),
    "array": _at(lambda r: r.replace("{", '{"tags":["a","b"],', 1)),
    "duplicate_key": _at(lambda r: r.replace("{", '{"dup":"1","dup":"2",', 1)),
    "technical_key": _at(lambda r: r.replace("{", '{"_row":"9",', 1)),
    "error_key": _at(lambda r: r.replace("{", '{"_error":"x",', 1)),
    "empty_object": _insert("{}"),
    "not_an_object": _insert('["a","b"]'),
    "string_line": _insert('"just text"'),
    "number_line": _insert("42"),
    "malformed": _at(lambda r: r[:-1]),
    "trailing_comma": _at(lambda r: r[:-1] + ",}"),
    "missing_colon": _insert('{"a" "b"}'),
    "missing_comma": _insert('{"a":"b" "c":"d"}'),
    "two_objects": _at(lambda r: r + r),
    "leading_space": _at(lambda r: " " + r),
    "trailing_space": _at(lambda r: r + " "),
    "space_after_brace": _at(lambda r: r.replace("{", "{ ", 1)),
    "tab": _at(lambda r: r.replace("{", '{"t":"a\tb",', 1)),
    "crlf": _at(lambda r: r + "\r"),
    "cr_in_value": _at(lambda r: r.replace("{", '{"t":"a\rb",', 1)),
    "control_char": _at(lambda r: r.replace("{", '{"t":"a\x01b",', 1)),
    "nul": _at(lambda r: r.replace("{", '{"t":"a\x00b",', 1)),
    "whitespace_line": _insert("   "),
    "formfeed_line": _insert("\x0c"),
    "string_across_lines": _at(lambda r: r.replace("{", '{"t":"a\nb",', 1)),
    "unclosed_string": _insert('{"a":"b}'),
    "long_line": _at(lambda r: r.replace("{", '{"long":"' + "x" * (MAX_BYTES + 10) + '",', 1)),
    "long_bad_line": _insert("x" * (3 * MAX_BYTES)),
    "bom_later": _at(lambda r: "\ufeff" + r),
    "adjacent_strings": _insert('{"a""b"}'),
    "colon_twice": _insert('{"a"::"b"}'),
    "value_without_key": _insert('{"a":"b":"c"}'),
    "comma_for_colon": _insert('{"a","b"}'),
    "colon_for_comma": _insert('{"a":"b":"c":"d"}'),
    "next_line_for_comma": _insert('{"a":"b"}\n{"c","d"}'),
    "record_for_value": _insert('{"a":"b"}\n{"c":"d","e":"f"}\n{"g"}\n{"h":"i"}'),
    "nan": _at(lambda r: r.replace("{", '{"n":NaN,', 1)),
}


@pytest.mark.parametrize("feature", sorted(FEATURES))
@pytest.mark.parametrize("seed", range(4))
def test_each_feature_at_a_random_line_gives_the_same_result(feature, seed, blocks):
    rng = random.Random(f"{feature}{seed}")
    lines = generate(seed, rng.randint(2, 60), same=seed % 2 == 1)
    k = rng.randrange(len(lines))
    if lines[k] == "":
        lines[k] = _record(rng, None, True)
    FEATURES[feature](lines, k)
    data = assemble(lines, rng)
    chunk_rows = rng.choice([1, 2, 5, 65_536])
    assert fast_only(data, chunk_rows)[1] is not None  # the fast path hands over...
    both(data, chunk_rows)  # ...and the reader gives what the line-by-line one gives
    both(data, chunk_rows, gz=True, forward=True)


INVALID_UTF8 = [b"\xc3\x28", b"\xed\xa0\x80", b"\xff", b"\xc0\xaf"]


@pytest.mark.parametrize("bad", INVALID_UTF8)
def test_invalid_utf8_gives_the_same_result(bad, blocks):
    rng = random.Random(bad)
    lines = [line.encode() for line in generate(3, 40, same=True)]
    lines[17] = lines[17].replace(b'":"', b'":"' + bad, 1)
    data = b"\n".join(lines) + b"\n"
    assert fast_only(data, 5)[1] is not None
    for chunk_rows in (5, 65_536):
        both(data, chunk_rows)
    del rng


MUTATIONS = [
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b":",
    b",",
    b"\\",
    b" ",
    b"\n",
    b"\r",
    b"\t",
    b"0",
    b"a",
    b"\xc3",
    b"\xff",
]


@pytest.mark.parametrize("seed", range(60))
def test_random_mutations_give_the_same_result(seed, monkeypatch):
    """A clean file with a few random bytes inserted, deleted or replaced: whatever the fast path does
    not read itself (or reads), the result is the line-by-line reader's."""
    rng = random.Random(seed)
    monkeypatch.setattr(jsonl_fast, "BLOCK_BYTES", rng.choice([100, 300, 1 << 20]))
    data = bytearray(assemble(generate(seed, rng.randint(5, 80), same=rng.random() < 0.5), rng))
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(data) + 1)
        op = rng.choice(["insert", "delete", "replace"])
        if op == "insert":
            data[i:i] = rng.choice(MUTATIONS)
        elif op == "delete":
            del data[i : i + rng.randint(1, 3)]
        else:
            data[i : i + 1] = rng.choice(MUTATIONS)
    both(bytes(data), rng.choice([1, 3, 8, 65_536]))


# a file mostly in the fast path's shape, each choice below made with a file's own small probability
CLEAN_KEYS = ["a", "b", "sku", "", "A", "é", "🙂", "a.b", "x y", "k:v", "{}", "\x7f", "q,r", "}{"]
CLEAN_VALUES = ["", "1", "x", " p ", "日本", "🙂", "\u2028", "\x7f", "{", "}", ":", ",", "}{", "a b", "[1]"]
ODD_KEYS = [*CLEAN_KEYS, "_row", "_error", "_raw", "e\u0301", "\\u0061", 'a\\"']
ODD_VALUES = ["\\n", '\\"', "\\ud83d\\ude42", "\\ud800", "\\u0000", "\\\\", "a\\/b", "\t", "\r"]
NOT_STRINGS = ["1", "-0", "1.50", "true", "null", "{}", "[]", '{"x":"y"}', '["a"]', "1e400", "NaN"]
ODD_LINES = [
    " ",
    "\t",
    "\x0c",
    "\x0b",
    "\r",
    "\ufeff",
    "[]",
    "42",
    '"s"',
    "{}",
    "null",
    '{"a":"b"',
    '{"a":"b"}}',
]
ODD_BYTES = [b"{", b"}", b'"', b":", b",", b"\\", b" ", b"\n", b"\r", b"\x00", b"\xc3", b"\xed\xa0\x80", BOM]


def _structured(seed: int) -> tuple[bytes, random.Random]:
    rng = random.Random(seed)
    odd = rng.choice([0, 0.0005, 0.002, 0.01, 0.1])  # how often each odd choice is made
    keys = rng.sample(CLEAN_KEYS, rng.randint(1, 4))

    def record(names: list[str]) -> str:
        fields = []
        for k in names:
            pool = ODD_VALUES + CLEAN_VALUES if rng.random() < odd else CLEAN_VALUES
            value = '"' + "".join(rng.choices(pool, k=rng.randint(0, 2))) + '"'
            value = rng.choice(NOT_STRINGS) if rng.random() < odd / 3 else value
            colon = (
                ":"
                if rng.random() < 0.8
                else rng.choice([": ", " : ", " :"] + ["\t:"] * (rng.random() < odd))
            )
            fields.append(f'"{k}"{colon}{value}')
        comma = "," if rng.random() < 0.8 else rng.choice([", ", " , "] + ["\t,"] * (rng.random() < odd))
        return "{" + comma.join(fields) + "}"

    lines = []
    for _ in range(rng.choice([1, 3, 20, 100, 400, 2000])):
        if rng.random() < 0.05:
            lines.append("")
        elif rng.random() < odd:
            lines.append(rng.choice(ODD_LINES))
        elif rng.random() < odd / 2:
            lines.append(record(["long"]).replace(':"', ':"' + "x" * rng.choice([40, 190, 1990, 2100]), 1))
        else:
            names = (
                keys if rng.random() < 0.7 else rng.sample(ODD_KEYS if rng.random() < odd else CLEAN_KEYS, 3)
            )
            names = names + [rng.choice(names)] if rng.random() < odd else names  # a key twice
            names = rng.sample(names, len(names)) if rng.random() < 0.1 else names  # another order
            text = record(names)
            text = rng.choice(["", " ", "\t", "\ufeff"]) + text if rng.random() < odd else text
            lines.append(text + rng.choice(["", " ", "\r", "\x0b", "\xa0"]) if rng.random() < odd else text)
    if rng.random() < 0.2:  # a run of blank lines
        i = rng.randrange(len(lines) + 1)
        lines[i:i] = [""] * rng.choice([5, 50, 300])
    eol = "\r\n" if rng.random() < odd else "\n"
    data = eol.join(lines).encode() + rng.choice([b"", b"\n", b"\n\n", b"\r\n"])
    data = (BOM if rng.random() < 0.2 else b"") + (BOM if rng.random() < odd else b"") + data
    mutated = bytearray(data)
    for _ in range(rng.choice([1, 3]) if rng.random() < odd * 5 else 0):
        i = rng.randrange(len(mutated) + 1)
        mutated[i : i + rng.choice([0, 1])] = rng.choice(ODD_BYTES)  # inserted or replacing one
    return bytes(mutated), rng


@pytest.mark.parametrize("seed", range(200))
def test_structured_mutations_give_the_same_result(seed, monkeypatch):
    """Files mostly in the fast path's shape (so it reads much of them and hands over late, at block edges
    too) with odd keys, values, separators, lines, BOMs and bytes, each rare: the reader's result is the
    line-by-line reader's (found the BOM read twice at a hand-over from line 1)."""
    data, rng = _structured(seed)
    monkeypatch.setattr(jsonl_fast, "BLOCK_BYTES", rng.choice([30, 64, 100, 300, 1000, 1 << 20]))
    both(data, rng.choice([1, 2, 3, 7, 64, 65_536]), **rng.choice([{}, {"gz": True}, {"forward": True}]))


def test_a_large_clean_file_is_read_in_blocks_exactly(tmp_path):
    rng = random.Random(99)
    lines = generate(0, 40_000, same=False) + generate(1, 40_000, same=True)
    data = assemble(lines, rng)
    assert len(data) > 3 * jsonl_fast.BLOCK_BYTES
    batches, rest = fast_only(data, 4096)
    assert rest is None
    assert_same(("ok", batches), _read(data, 4096, False))


def test_the_hand_over_continues_where_the_fast_path_stopped(monkeypatch):
    """A malformed line far into the file: the batches before it come from the fast path, the rest line by
    line from the first record not yet yielded, with the right line numbers."""
    monkeypatch.setattr(jsonl_fast, "BLOCK_BYTES", 1000)
    lines = generate(5, 500, same=True)
    lines[400] = '{"sku": broken'
    data = "\n".join(lines).encode() + b"\n"
    batches, rest = fast_only(data, 64)
    assert rest is not None and sum(b.num_rows for b in batches) >= 320
    assert rest.line == sum(b.num_rows for b in batches) + 1
    assert rest.data.startswith(lines[rest.line - 1].encode())
    out = _read(data, 64, True)
    assert_same(out, _read(data, 64, False))
    rows = pa.concat_arrays([as_batch(b).column("_row") for b in out[1]]).to_pylist()
    errors = pa.concat_arrays([as_batch(b).column("_error") for b in out[1]]).to_pylist()
    assert rows == list(range(1, 501))
    assert errors[400].startswith("malformed JSON") and errors.count(None) == 499


def test_a_run_of_blank_lines_after_records_hands_over_and_counts_its_lines(monkeypatch):
    monkeypatch.setattr(jsonl_fast, "BLOCK_BYTES", 100)
    data = b'{"a":"1"}\n' + b"\n" * 1000 + b'{"a":"2"}\n'
    assert fast_only(data, 10)[1] is not None
    out = _read(data, 10, True)
    assert_same(out, _read(data, 10, False))
    assert out[1][0].column("_row").to_pylist() == [1, 1002]


@pytest.mark.parametrize(
    "data",
    [
        BOM + BOM + b'{"a":"b"}\n{"a":"c"}\n',  # a second BOM: malformed line by line
        BOM + b'{"a":"' + b"x" * (MAX_BYTES - 8) + b'"}\n{"a":"c"}\n',  # line 1 over the limit with its BOM
        BOM + b'{"a":"' + b"x" * (MAX_BYTES - 11) + b'"}\n{"a":"c"}\n',  # exactly at the limit with its BOM
        BOM + b'{"a":"' + b"x" * (MAX_BYTES - 8) + b'"}',  # the same, the only line, no newline
        BOM + b" " + b'{"a":"' + b"x" * (MAX_BYTES - 9) + b'"}\n',  # handed over at line 1
    ],
    ids=["second_bom", "over_with_bom", "at_limit_with_bom", "over_with_bom_no_newline", "hand_over_at_1"],
)
def test_a_bom_counts_in_line_1_as_line_by_line(data, blocks):
    """Line by line, the BOM is part of line 1 (its length, and stripped once): so in the fast path too, and
    in what it hands over from line 1."""
    for chunk_rows in (1, 65_536):
        both(data, chunk_rows)


def test_wide_records_are_read_no_slower_than_line_by_line(monkeypatch):
    """Records of 20,000 keys, ~3 to a block: the fast path makes Arrow arrays per block and column
    (~15 us each), line by line costs ~1.5 us a value, so with few records to a block it loses (3.5x the
    time and 2.8x the memory here): such blocks are handed over."""
    monkeypatch.setattr(readers, "_max_value_bytes", lambda: 8 << 20)
    data = (b"{" + b",".join(b'"key_%d":"value"' % i for i in range(20_000)) + b"}\n") * 20

    def timed(fast: bool) -> float:
        """CPU seconds of this process (all its threads), not wall time: on a loaded machine (two busy loops,
        load 12-20 on 2 cores) one read took 12-38 s of wall time for 0.6-0.7 s of CPU, and the wall times of
        the two readers, timed one after the other, came 1.9x and 2.5x apart where their CPU times were
        1.06-1.18x apart."""
        src = ByteSource(io.BytesIO(data), "f.jsonl")
        start = time.process_time()
        if fast:
            rows = sum(as_batch(b).num_rows for b in readers._read_jsonl(src, 65_536))
        else:
            with src.open() as stream:
                rows = sum(b.num_rows for b in readers._read_jsonl_lines(stream, 65_536, 8 << 20))
        assert rows == 20
        return time.process_time() - start

    # alternately, so that both see the same machine; the least of 3 each drops the first call's imports.
    # Handed over after the first block, the fast path costs that block's tokenising more (1.06-1.18x);
    # kept on the fast path these records cost 3.5x (a mutant that never hands over: 3.56x).
    times = [(timed(True), timed(False)) for _ in range(3)]
    fast, slow = min(f for f, _ in times), min(s for _, s in times)
    assert fast < 1.5 * slow, (fast, slow)
    # records of 2,000 keys, ~27 to a block, stay on the fast path, a last block of a few records too
    record = b"{" + b",".join(b'"key_%d":"value"' % i for i in range(2_000)) + b"}\n"
    for n in range(56, 60):
        gen = jsonl_fast.fast_batches(io.BytesIO(record * n), 65_536, 8 << 20)
        assert sum(b.num_rows for b in gen) == n


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.99])
def test_a_truncated_gzip_fails_after_the_same_batches(keep):
    """Both read the stream 1 MiB at a time, so the failing read comes after the same records."""
    rng = random.Random(keep)
    lines = [f'{{"sku":"S{i}","qty":"{rng.random()}"}}' for i in range(150_000)]
    data = gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=1)
    cut = data[: int(len(data) * keep)]
    fast, slow = _read(cut, 4096, True), _read(cut, 4096, False)
    assert fast[0] == "raised" and "Truncated" in fast[3] and fast[1]
    assert_same(fast, slow)
