"""Cursor logic without servers: ties at the mark, late files, holds, limits, monotonic mark, small size."""

from __future__ import annotations

import dagster as dg

from fc_assets.ingestion.deliver.cursor import Cursor, ListedFile, plan_tick
from fc_assets.ingestion.deliver.files import FileLocation, FileRef, slug


def f(key: str, mtime: float, size: int = 10, etag: str | None = None) -> ListedFile:
    return ListedFile(key, mtime, size, etag)


def run(cursor: Cursor, listing, **kw):
    plan = plan_tick(Cursor.parse(cursor.dump()), listing, **kw)  # through JSON, as Dagster stores it
    return [x.key for x in plan.ready], plan


def test_ties_at_the_mark_are_neither_missed_nor_repeated():
    listing = [f("a", 100), f("b", 100), f("c", 99)]
    got, plan = run(Cursor(), listing)
    assert got == ["c", "a", "b"] and plan.cursor.mark == 100
    # a new file with exactly the mark's time (the SDK's `>` watermark drops it, pitfalls §2 item 8)
    listing.append(f("d", 100))
    got, plan2 = run(plan.cursor, listing)
    assert got == ["d"]
    got, plan3 = run(plan2.cursor, listing)
    assert got == []
    assert plan3.cursor.mark == 100 and len(plan3.cursor.tie_keys) == 3


def test_mark_never_regresses_and_late_files_inside_lookback_are_found():
    _, p1 = run(Cursor(), [f("new", 1000)])
    # a file that appears later but carries an older time (S3 multipart: time of upload start)
    got, p2 = run(p1.cursor, [f("new", 1000), f("late", 950), f("ancient", 10)], lookback_s=100)
    assert got == ["late"]  # "ancient" is older than the lookback window: assumed handled long ago
    assert p2.cursor.mark == 1000
    got, _ = run(p2.cursor, [f("new", 1000), f("late", 950)], lookback_s=100)
    assert got == []


def test_new_version_of_same_key_is_new_identical_is_not():
    _, p1 = run(Cursor(), [f("a", 100, 10)])
    assert run(p1.cursor, [f("a", 100, 10)])[0] == []
    assert run(p1.cursor, [f("a", 100, 11)])[0] == ["a"]  # same second, new size: new version (SFTP)
    assert run(p1.cursor, [f("a", 100, 10, etag="x")])[0] == ["a"]  # S3: new etag


def test_deleted_files_do_not_break_the_cursor():
    _, p1 = run(Cursor(), [f("a", 100), f("b", 100)])
    got, p2 = run(p1.cursor, [f("b", 100)])
    assert got == [] and p2.cursor.mark == 100


def test_growing_file_is_held_until_stable_across_two_ticks():
    got, p1 = run(Cursor(), [f("g", 100, 5)], stability="size_stable")
    assert got == [] and "still being written" in p1.held[0].reason
    got, p2 = run(p1.cursor, [f("g", 101, 9)], stability="size_stable")
    assert got == []
    got, p3 = run(p2.cursor, [f("g", 101, 9)], stability="size_stable")
    assert got == ["g"] and p3.cursor.pending == {}
    assert run(p3.cursor, [f("g", 101, 9)], stability="size_stable")[0] == []


def test_marker_file_gates_the_data_file():
    got, p1 = run(Cursor(), [f("x.csv", 100)], stability="marker", markers=set())
    assert got == [] and "marker" in p1.skip_summary()
    got, _ = run(p1.cursor, [f("x.csv", 100)], stability="marker", markers={"x.csv"})
    assert got == ["x.csv"]


def test_limits_defer_and_hold_but_never_drop():
    listing = [f(f"k{i:02d}", 100 + i % 3) for i in range(10)] + [f("big", 50, size=10_000)]
    seen: list[str] = []
    cursor = Cursor()
    for _ in range(5):
        got, plan = run(cursor, listing, max_files=4, max_bytes=1000)
        seen += got
        cursor = plan.cursor
        if got:
            assert plan.deferred or len(seen) == 10
    assert sorted(seen) == sorted(x.key for x in listing if x.key != "big")
    assert "too large" in plan.skip_summary()
    got, _ = run(cursor, listing, max_files=4, max_bytes=100_000)  # limit raised: the held file goes
    assert got == ["big"]


def test_cursor_stays_small_with_long_names_and_many_ties():
    listing = [f("x" * 400 + str(i), 100) for i in range(2500)]
    _, plan = run(Cursor(), listing, max_files=2500)
    assert len(plan.cursor.dump()) < 40_000  # 12 hex per file, names never stored


def test_partition_keys_are_valid_for_any_file_name():
    names = [
        "stock file (1).csv",
        "stock_(1).csv",
        "a&b [x].csv",
        "Übersicht—Lager ünicode.csv",
        "weird...name....csv",
        "pipe|name.csv",
        "x" * 600 + ".csv",
        "日本語.csv",
        "tab\tname.csv",
    ]
    loc = FileLocation("s3", "s3", "bucket/inbox/")
    keys = [FileRef.of("inventory", loc, f(f"inbox/{n}", 1718000000)).partition_key for n in names]
    assert len(set(keys)) == len(keys)  # no collisions even where slugs coincide
    pd = dg.DynamicPartitionsDefinition(name="t")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(pd.name, keys)  # Dagster validates the keys
        assert set(instance.get_dynamic_partitions(pd.name)) == set(keys)
    assert all(len(k) <= 11 + 48 + 9 and "..." not in k and "|" not in k for k in keys)
    assert slug("stock file (1).csv") == "stock_file_1_.csv"
