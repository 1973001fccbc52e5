"""extract_periods over an in-memory Fluent: window edges, nested paging, parallel streams, complete-or-fail."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from fc_assets.extraction.entities import ORDERS, VIRTUAL_POSITIONS
from fc_assets.extraction.extract import extract_periods
from fc_assets.extraction.windows import DAY, Window
from fc_assets.resources.fluent_errors import FluentHTTPError, FluentPagingError
from fc_assets.resources.storage import Lake
from fc_assets_tests.extraction.fake_fluent import FakeFluent, make_orders, ts

D1 = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture
def file_lake(tmp_path) -> Lake:
    return Lake(f"file://{tmp_path}/lake")


def days(start: datetime, n: int) -> list[Window]:
    return list(Window(start, start + n * DAY).periods(DAY))


def read(lake: Lake, key: str):
    return pq.read_table(lake.path(key))


def test_midnight_edges_belong_to_the_day_they_start(file_lake):
    # 3 days, each with orders exactly at its midnight: the one at D2 00:00 is D2's, never D1's
    orders = make_orders(D1, 50) + make_orders(D1 + DAY, 40) + make_orders(D1 + 2 * DAY, 30)
    fake = FakeFluent({"orders": orders})
    results = list(
        extract_periods(ORDERS, days(D1, 3), client=fake, lake=file_lake, concurrency=3, page_size=7)
    )

    assert [r.rows for r in results] == [50, 40, 30]
    assert (
        results[0].boundary_rows == 2
    )  # D2's midnight orders were returned by D1's inclusive query, dropped
    for r, day in zip(results, ["2025-03-01", "2025-03-02", "2025-03-03"], strict=True):
        assert r.key == f"fluent/orders/dt={day}/part-0.parquet"
        table = read(file_lake, r.key)
        assert table.num_rows == r.rows
        assert all(u.strftime("%Y-%m-%d") == day for u in table.column("updated_on").to_pylist())
    all_ids = [i for r in results for i in read(file_lake, r.key).column("id").to_pylist()]
    assert sorted(all_ids) == sorted(o["id"] for o in orders)  # nothing lost, nothing twice
    assert not file_lake.list_files("_tmp")


def test_nested_items_are_paged_to_the_end(file_lake):
    orders = make_orders(D1, 5, items=123)  # 123 items > itemsFirst 50: two follow-up pages each
    fake = FakeFluent({"orders": orders})
    [result] = extract_periods(ORDERS, days(D1, 1), client=fake, lake=file_lake, concurrency=1)
    table = read(file_lake, result.key)
    assert [len(items) for items in table.column("items").to_pylist()] == [123] * 5
    assert table.column("items").to_pylist()[0][-1]["id"] == orders[0]["items"][-1]["id"]
    assert sum(1 for p, _ in fake.calls if p == "orderById.items") == 10
    assert result.requests == result.pages + 10


def test_nested_connection_that_cannot_continue_fails_loudly(file_lake):
    class NoCursor(FakeFluent):
        def _shape(self, node, variables):
            shaped = super()._shape(node, variables)
            shaped["items"]["edges"][-1]["cursor"] = None
            return shaped

    fake = NoCursor({"orders": make_orders(D1, 3, items=60)})
    with pytest.raises(FluentPagingError, match="items of node"):
        list(extract_periods(ORDERS, days(D1, 1), client=fake, lake=file_lake, concurrency=2))
    assert not file_lake.list_files()  # nothing visible, no _tmp leftovers


def test_columns_types_and_nested_values(file_lake):
    fake = FakeFluent({"orders": make_orders(D1, 3, items=2, midnight=1)})
    [result] = extract_periods(ORDERS, days(D1, 1), client=fake, lake=file_lake)
    table = read(file_lake, result.key)
    assert table.schema == ORDERS.arrow_schema
    row = table.slice(0, 1).to_pylist()[0]
    assert row["updated_on"] == D1
    assert row["delivery_city"] == "Sydney" and row["customer_email"] == "ada@example.com"
    assert row["items"][1] == {**row["items"][1], "quantity": 2, "product_ref": "SKU1"}
    assert {a["name"]: a["value"] for a in row["attributes"]} == {"channel": '"web"', "meta": '{"a":1}'}


def test_parallel_streams_are_deterministic_and_complete(file_lake, tmp_path):
    orders = make_orders(D1, 997, items=1, midnight=5)
    serial_lake = Lake(f"file://{tmp_path}/serial")
    [serial] = extract_periods(
        ORDERS,
        days(D1, 1),
        client=FakeFluent({"orders": orders}),
        lake=serial_lake,
        concurrency=1,
        page_size=50,
    )
    runs = []
    for _ in range(2):
        [r] = extract_periods(
            ORDERS,
            days(D1, 1),
            client=FakeFluent({"orders": orders}),
            lake=file_lake,
            concurrency=4,
            page_size=50,
        )
        runs.append(read(file_lake, r.key))
    assert r.tasks == 8  # one day, 4 streams: 8 sub-windows
    assert runs[0].equals(runs[1])  # same bytes-level content and order on re-run
    assert sorted(runs[0].column("id").to_pylist()) == sorted(
        read(serial_lake, serial.key).column("id").to_pylist()
    )
    assert r.validation.passed


def test_row_groups_are_bounded(file_lake):
    spec = dataclasses.replace(ORDERS, row_group_rows=100)
    fake = FakeFluent({"orders": make_orders(D1, 1050, items=1)})
    [result] = extract_periods(spec, days(D1, 1), client=fake, lake=file_lake, concurrency=2, page_size=64)
    meta = pq.ParquetFile(file_lake.path(result.key)).metadata
    assert meta.num_rows == 1050
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [100] * 10 + [50]


def test_stream_failure_writes_nothing_for_that_day(file_lake):
    orders = make_orders(D1, 300) + make_orders(D1 + DAY, 300)
    fake = FakeFluent({"orders": orders}, fail_after_pages={"orders": 9})
    got = []
    with pytest.raises(FluentHTTPError):
        for r in extract_periods(
            ORDERS, days(D1, 2), client=fake, lake=file_lake, concurrency=2, page_size=50
        ):
            got.append(r)
    written = file_lake.list_files()
    assert all(w.endswith("part-0.parquet") for w in written)  # no _tmp objects
    assert len(written) == len(got) <= 1


def test_rerun_replaces_the_partition(file_lake):
    orders = make_orders(D1, 20)
    [r1] = extract_periods(ORDERS, days(D1, 1), client=FakeFluent({"orders": orders}), lake=file_lake)
    [r2] = extract_periods(ORDERS, days(D1, 1), client=FakeFluent({"orders": orders[:5]}), lake=file_lake)
    assert r1.key == r2.key
    assert read(file_lake, r2.key).num_rows == 5
    assert file_lake.list_files() == [r2.key]


def test_empty_day_writes_an_empty_object(file_lake):
    [r] = extract_periods(ORDERS, days(D1, 1), client=FakeFluent({"orders": []}), lake=file_lake)
    table = read(file_lake, r.key)
    assert table.num_rows == 0 and table.schema == ORDERS.arrow_schema


def test_validation_failures_are_counted_with_a_sample(file_lake):
    orders = make_orders(D1, 10)
    orders[3]["items"][0]["quantity"] = 0
    orders[4]["totalPrice"] = -1.0
    orders[5]["id"] = orders[6]["id"]
    [r] = extract_periods(ORDERS, days(D1, 1), client=FakeFluent({"orders": orders}), lake=file_lake)
    report = r.validation
    assert not report.passed
    assert report.failures["total_price: greater_than_or_equal_to(0)"] == 1
    assert report.failures["items: every quantity > 0"] == 1
    assert report.failures["id: unique in partition"] == 1
    assert report.failure_count == 3
    assert any(s.get("key") == orders[3]["id"] for s in report.sample)


def test_rows_outside_the_queried_window_are_dropped_and_reported(file_lake):
    class Sloppy(FakeFluent):
        @staticmethod
        def _matches(node, variables):
            return True  # ignores the updatedOn filter

    orders = make_orders(D1, 10, midnight=0) + make_orders(D1 + 3 * DAY, 4, midnight=0, prefix="X")
    [r] = extract_periods(
        ORDERS, days(D1, 1), client=Sloppy({"orders": orders}), lake=file_lake, concurrency=1
    )
    assert r.rows == 10
    # every sub-window's query answered all 14 orders; only the 10 inside their own sub-window were kept
    assert r.validation.failures["updated_on: inside the queried window"] == r.tasks * 14 - 10


def test_virtual_positions_are_read_per_catalogue(file_lake):
    def vp(i: int, cat: str) -> dict:
        return {
            "id": f"VP{cat}{i}",
            "ref": f"VP{i}",
            "type": "DEFAULT",
            "status": "ACTIVE",
            "productRef": f"P{i}",
            "groupRef": "G1",
            "quantity": i,
            "workflowRef": "VP",
            "workflowVersion": 1,
            "createdOn": ts(D1),
            "updatedOn": ts(D1 + timedelta(minutes=i)),
            "catalogue": {"ref": cat},
        }

    fake = FakeFluent(
        {
            "virtualCatalogues": [{"ref": "VC2"}, {"ref": "VC1"}],
            "virtualPositions": [vp(i, "VC1") for i in range(5)] + [vp(i, "VC2") for i in range(3)],
        }
    )
    [r] = extract_periods(VIRTUAL_POSITIONS, days(D1, 1), client=fake, lake=file_lake, concurrency=2)
    table = read(file_lake, r.key)
    assert table.column("catalogue_ref").to_pylist() == ["VC1"] * 5 + ["VC2"] * 3  # catalogue order, sorted
    assert {v["catalogue"]["ref"] for p, v in fake.calls if p == "virtualPositions"} == {"VC1", "VC2"}


def test_a_multi_day_run_ends_on_short_chains(file_lake):
    # 10 days on 4 streams: one chain per day, but the last 4 days in 4 sub-windows each (a short tail)
    orders = [o for d in range(10) for o in make_orders(D1 + d * DAY, 60, prefix=f"D{d}")]
    results = list(
        extract_periods(
            ORDERS, days(D1, 10), client=FakeFluent({"orders": orders}), lake=file_lake, concurrency=4
        )
    )
    assert [r.tasks for r in results] == [1] * 6 + [4] * 4
    assert [r.rows for r in results] == [60] * 10
    all_ids = [i for r in results for i in read(file_lake, r.key).column("id").to_pylist()]
    assert sorted(all_ids) == sorted(o["id"] for o in orders)


def test_switch_interval_is_short_during_the_run_and_restored_after(file_lake):
    """The streams' threads get the GIL back sooner after a socket read while an extraction runs
    (`short_switch_interval`), and the process's own setting is back afterwards, also after a failure."""
    import sys

    seen: list[float] = []

    class Recording(FakeFluent):
        def paginate(self, *args, **kwargs):
            seen.append(sys.getswitchinterval())
            return super().paginate(*args, **kwargs)

    before = sys.getswitchinterval()
    orders = make_orders(D1, 30)
    list(extract_periods(ORDERS, days(D1, 1), client=Recording({"orders": orders}), lake=file_lake))
    assert seen and all(s <= 0.0005 for s in seen) and before > 0.0005
    assert sys.getswitchinterval() == before
    failing = Recording({"orders": orders}, fail_after_pages={"orders": 0})
    with pytest.raises(FluentHTTPError):
        list(extract_periods(ORDERS, days(D1, 1), client=failing, lake=file_lake, page_size=10))
    assert sys.getswitchinterval() == before


def test_switch_interval_with_two_extractions_in_parallel_threads(file_lake):
    """Two extractions of one process overlap, the first ends first: the interval stays short for the
    second and the process's own value (not the first's short one) is back when the second ends."""
    import sys
    import threading

    first_done, second_started = threading.Event(), threading.Event()
    seen_after_first: list[float] = []

    class First(FakeFluent):
        def paginate(self, *args, **kwargs):
            second_started.wait(10)
            return super().paginate(*args, **kwargs)

    class Second(FakeFluent):
        def paginate(self, *args, **kwargs):
            second_started.set()
            first_done.wait(10)
            seen_after_first.append(sys.getswitchinterval())
            return super().paginate(*args, **kwargs)

    before = sys.getswitchinterval()
    orders = make_orders(D1, 30)

    def run(client: FakeFluent, done: threading.Event | None) -> None:
        list(extract_periods(ORDERS, days(D1, 1), client=client, lake=file_lake, concurrency=1))
        if done is not None:
            done.set()

    a = threading.Thread(target=run, args=(First({"orders": orders}), first_done))
    b = threading.Thread(target=run, args=(Second({"orders": orders}), None))
    a.start()
    b.start()
    a.join(20)
    b.join(20)
    assert first_done.is_set() and seen_after_first and all(s <= 0.0005 for s in seen_after_first)
    assert sys.getswitchinterval() == before > 0.0005


def test_a_direct_extraction_does_not_import_dagster(tmp_path):
    """A script extracting with FluentClient, Lake and extract_periods saves dagster's ~0.8 s import
    (LakeResource / FluentResource live in their own modules, windows.py imports dagster lazily)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from datetime import UTC, datetime\n"
        "from fc_assets.extraction.entities import ORDERS\n"
        "from fc_assets.extraction.extract import extract_periods\n"
        "from fc_assets.extraction.windows import DAY, Window\n"
        "from fc_assets.resources.fluent import FluentClient\n"
        "from fc_assets.resources.storage import Lake\n"
        "from fc_assets_tests.extraction.fake_fluent import FakeFluent, make_orders\n"
        "d = datetime(2025, 3, 1, tzinfo=UTC)\n"
        "client = FakeFluent({'orders': make_orders(d, 30)})\n"
        f"lake = Lake('file://{tmp_path}/lake')\n"
        "[r] = extract_periods(ORDERS, [Window(d, d + DAY)], client=client, lake=lake)\n"
        "print(r.rows, sorted({m.split('.')[0] for m in sys.modules} & {'dagster'}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split(maxsplit=1) == ["30", "[]\n"]
