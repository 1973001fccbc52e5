"""Delta detection end to end against the Fluent sandbox (issue 12): rejected rows never become zero stock,
the timestamp strategy loses no rows (ties at the mark, rows without a timestamp, rows Fluent rejected),
hashes do not depend on the machine's time zone, hashing over chosen fields, insert/update counts and the
hybrid strategy. Files go through real sensors and runs of the feed job (flow.py)."""

from __future__ import annotations

import dataclasses

from fc_assets.ingestion.deliver.delta import snapshot_rel
from fc_assets.ingestion.feeds import Delta, inventory_feed
from fc_assets.ingestion.spec import Field
from fc_assets_tests.ingestion_flow.flow import Flow, metadata, on_hand


def csv_body(header: str, lines: list[str]) -> bytes:
    return ("\n".join([header, *lines]) + "\n").encode()


def run_file(flow: Flow, name: str, body: bytes) -> dict:
    flow.put_s3(name, body)
    (req,) = flow.tick("s3")
    result = flow.execute(req)
    assert result.success
    return metadata(result)


def sent_skus(flow: Flow, since: int) -> list[str]:
    return sorted(e["skuRef"] for e in flow.received.entities()[since:])


FILLER = [f"F{i:03d},L1,{i},AVAILABLE" for i in range(40)]  # keeps one reject under the 5 % threshold
INV = "sku_ref,location_ref,qty,status"


def test_rejected_row_keeps_its_stock_and_disappeared_rows_become_zero(make_flow, monkeypatch):
    monkeypatch.setenv("FC_SEND_DISAPPEARED", "products, inventory")  # the setting, no code change
    flow = make_flow(inventory_feed())
    md1 = run_file(flow, "s1.csv", csv_body(INV, ["A,L1,5,AVAILABLE", "B,L1,7,AVAILABLE", *FILLER]))
    assert (md1["sent"], md1["inserts"], md1["updates"]) == (42, 42, 0)

    # A's qty is not a number (rejected), B is gone from the file (disappeared), F000 changes
    n = len(flow.received.entities())
    lines = ["A,L1,12abc,AVAILABLE", *FILLER[1:], "F000,L1,9,AVAILABLE"]
    md2 = run_file(flow, "s2.csv", csv_body(INV, lines))
    assert md2["rejected"] == 1 and md2["rejects_uri"]
    assert md2["rejected_rows_kept"] == 1  # A stays as last sent: neither deleted nor sent
    assert (md2["deletes"], md2["updates"], md2["inserts"], md2["sent"]) == (1, 1, 0, 2)
    assert sent_skus(flow, n) == ["B", "F000"]
    stock = on_hand(flow.resources["fluent"], ["A", "B", "F000"])
    assert stock == {("A", "L1"): 5, ("B", "L1"): 0, ("F000", "L1"): 9}
    snap = {r["sku_ref"]: r["qty"] for r in flow.lake.read_parquet(snapshot_rel("inventory")).to_pylist()}
    assert snap["A"] == 5 and "B" not in snap

    # a rejected row without a usable key (sku missing) could be any row: nothing is treated as disappeared
    n = len(flow.received.entities())
    lines = ["A,L1,5,AVAILABLE", ",L1,3,AVAILABLE", "F000,L1,9,AVAILABLE", *FILLER[2:]]  # F001 is absent
    md3 = run_file(flow, "s3.csv", csv_body(INV, lines))
    assert md3["rejected"] == 1 and md3["rejected_without_key"] == 1 and md3["disappeared_not_sent"] == 1
    assert md3["deletes"] == 0 and md3["sent"] == 0 and sent_skus(flow, n) == []
    assert on_hand(flow.resources["fluent"], ["F001"]) == {("F001", "L1"): 1}
    # the next clean file sends it
    md4 = run_file(flow, "s4.csv", csv_body(INV, lines[:1] + lines[2:]))
    assert md4["deletes"] == 1 and on_hand(flow.resources["fluent"], ["F001"]) == {("F001", "L1"): 0}


def timestamped_feed(strategy: str, **delta):
    base = inventory_feed()
    return dataclasses.replace(
        base,
        fields=(*base.fields, Field("updated_at", "datetime")),
        delta=Delta(strategy=strategy, timestamp_column="updated_at", **delta),
    )


TS = "sku_ref,location_ref,qty,status,updated_at"


def test_timestamp_strategy_loses_no_rows(make_flow):
    flow = make_flow(timestamped_feed("timestamp"))
    md1 = run_file(
        flow,
        "t1.csv",
        csv_body(TS, ["A,L1,1,AVAILABLE,2025-01-01T10:00:00Z", "B,L1,2,AVAILABLE,2025-01-01T12:00:00Z"]),
    )
    assert md1["sent"] == 2

    # C is another key at exactly the mark, D has no timestamp, B is the row already sent at the mark
    n = len(flow.received.entities())
    lines = [
        "A,L1,9,AVAILABLE,2025-01-01T09:00:00Z",  # older than the mark: not sent (the strategy's contract)
        "B,L1,2,AVAILABLE,2025-01-01T12:00:00Z",
        "C,L1,3,AVAILABLE,2025-01-01T13:00:00+01:00",  # = 12:00 UTC
        "D,L1,4,AVAILABLE,",
    ]
    md2 = run_file(flow, "t2.csv", csv_body(TS, lines))
    assert sent_skus(flow, n) == ["C", "D"]
    assert (md2["sent"], md2["no_timestamp"], md2["unchanged"]) == (2, 1, 2)
    assert on_hand(flow.resources["fluent"], ["A", "C", "D"]) == {
        ("A", "L1"): 1,
        ("C", "L1"): 3,
        ("D", "L1"): 4,
    }

    # Fluent rejects E: the watermark must not pass it, so the next file sends it again
    flow.sandbox.admin.set_faults(reject_entities={"skuRefs": ["E"]})
    lines = ["E,L1,5,AVAILABLE,2025-01-02T10:00:00Z", "G,L1,6,AVAILABLE,2025-01-02T11:00:00Z"]
    md3 = run_file(flow, "t3.csv", csv_body(TS, lines))
    assert md3["fluent_rejected"] == 1
    flow.sandbox.admin.clear_faults()
    n = len(flow.received.entities())
    run_file(flow, "t4.csv", csv_body(TS, lines))
    assert "E" in sent_skus(flow, n)
    assert on_hand(flow.resources["fluent"], ["E", "G"]) == {("E", "L1"): 5, ("G", "L1"): 6}
    # and once everything is confirmed the mark moves past both
    n = len(flow.received.entities())
    md5 = run_file(flow, "t5.csv", csv_body(TS, lines))
    assert md5["sent"] == 0 and sent_skus(flow, n) == []


def test_hybrid_sends_only_really_changed_rows(make_flow):
    flow = make_flow(timestamped_feed("hybrid"))
    md1 = run_file(
        flow,
        "h1.csv",
        csv_body(TS, ["A,L1,1,AVAILABLE,2025-01-01T10:00:00Z", "B,L1,2,AVAILABLE,2025-01-01T12:00:00Z"]),
    )
    assert (md1["sent"], md1["inserts"]) == (2, 2)
    n = len(flow.received.entities())
    lines = [
        "A,L1,9,AVAILABLE,2025-01-01T09:00:00Z",  # older than the mark: not even compared
        "B,L1,2,AVAILABLE,2025-01-01T15:00:00Z",  # touched but not changed: not sent
        "C,L1,3,AVAILABLE,2025-01-01T12:00:00Z",  # new key at the mark
        "D,L1,4,AVAILABLE,",  # no timestamp, new
    ]
    md2 = run_file(flow, "h2.csv", csv_body(TS, lines))
    assert sent_skus(flow, n) == ["C", "D"]
    assert (md2["inserts"], md2["updates"], md2["no_timestamp"], md2["unchanged"]) == (2, 0, 1, 2)
    n = len(flow.received.entities())
    md3 = run_file(flow, "h3.csv", csv_body(TS, [*lines[1:3], "D,L1,8,AVAILABLE,"]))
    assert sent_skus(flow, n) == ["D"] and (md3["inserts"], md3["updates"]) == (0, 1)


def test_hash_over_chosen_fields(make_flow):
    flow = make_flow(dataclasses.replace(inventory_feed(), delta=Delta(hash_columns=("qty", "status"))))
    head = "sku_ref,location_ref,qty,status,condition"
    run_file(flow, "c1.csv", csv_body(head, ["A,L1,1,AVAILABLE,NEW", "B,L1,2,AVAILABLE,NEW"]))
    n = len(flow.received.entities())
    md = run_file(flow, "c2.csv", csv_body(head, ["A,L1,1,AVAILABLE,USED", "B,L1,3,AVAILABLE,NEW"]))
    assert sent_skus(flow, n) == ["B"] and (md["updates"], md["unchanged"]) == (1, 1)


def test_same_file_under_another_time_zone_sends_nothing(make_flow, tmp_path):
    """The snapshot is written by a process under TZ=UTC, the same content is then processed by another
    process under TZ=Asia/Tokyo: a datetime column must hash the same."""
    from fc_assets_tests.ingestion_flow import child_run

    flow = make_flow(inventory_feed())
    head = "sku_ref,location_ref,qty,status,expected_on"
    body = csv_body(head, [f"Z{i},L1,{i},ON_ORDER,2025-03-0{1 + i % 5}T08:30:00Z" for i in range(20)])
    fluent = flow.resources["fluent"]
    common = {
        "inbox": f"{flow.bucket}/inventory/",
        "lake_uri": flow.lake.uri,
        "endpoint": flow.lake.endpoint_url,
        "instance_ref": flow.instance.get_ref(),
        "fluent": {
            "base_url": fluent.base_url,
            "client_id": fluent.client_id,
            "client_secret": fluent.client_secret,
        },
    }
    results = []
    for name, zone in (("z1.csv", "UTC"), ("z2.csv", "Asia/Tokyo")):
        flow.put_s3(name, body)
        (req,) = flow.tick("s3")
        job = {**common, "partition_key": req.partition_key, "run_config": req.run_config, "tags": req.tags}
        exchange = tmp_path / f"{zone.replace('/', '-')}.pickle"
        out = child_run.result(child_run.start(job, exchange, TZ=zone), exchange)
        results.append((out["zone"], out["metadata"]))
    (zone1, md1), (zone2, md2) = results
    assert (zone1, zone2) == ("UTC", "Asia/Tokyo")
    assert md1["sent"] == 20
    assert (md2["changed"], md2["sent"], md2["unchanged"]) == (0, 0, 20)
