"""The inventory sender's prefetch thread (the next chunk read and converted while one is posted): a crash or
an error of the conversion stops it, the error keeps its message, and the rerun posts every chunk once."""

from __future__ import annotations

import threading

import pytest

from fc_assets.ingestion.deliver import senders
from fc_assets.ingestion.deliver.senders import CRASH_ENV, InjectedCrash
from fc_assets_tests.ingestion_flow.test_pipeline_resume import ROWS, World


@pytest.fixture
def world(s3_server, lake, monkeypatch):
    monkeypatch.delenv(CRASH_ENV, raising=False)
    w = World(s3_server, lake)
    w.batch_size = 30  # 7 chunks
    return w


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "inventory-chunks"]


def test_crash_mid_send_stops_the_prefetch_thread_and_rerun_posts_each_chunk_once(world, monkeypatch):
    ref = world.drop("a.csv", ROWS)
    monkeypatch.setenv(CRASH_ENV, "mid_send")
    with pytest.raises(InjectedCrash):
        world.run(ref)
    assert prefetch_threads() == []
    assert len(world.fluent.received) == 30
    monkeypatch.delenv(CRASH_ENV)
    world.run(ref)
    assert len(world.fluent.received) == 200
    assert len({e["skuRef"] for e in world.fluent.received}) == 200
    assert prefetch_threads() == []


def test_a_conversion_error_surfaces_with_its_message_after_the_chunks_before_it(world, monkeypatch):
    real = senders.entities_json
    calls = []

    def bad(table, rid):
        calls.append(table.num_rows)
        if len(calls) == 3:
            raise ValueError("row 61: qty 'x' is not a number")
        return real(table, rid)

    monkeypatch.setattr(senders, "entities_json", bad)
    ref = world.drop("a.csv", ROWS)
    with pytest.raises(ValueError, match="row 61: qty 'x' is not a number"):
        world.run(ref)
    assert prefetch_threads() == []
    assert len(world.fluent.received) == 60  # the two chunks before it were posted, no more
    monkeypatch.setattr(senders, "entities_json", real)
    world.run(ref)
    assert len(world.fluent.received) == 200
    assert len({e["skuRef"] for e in world.fluent.received}) == 200


def test_a_failed_post_stops_the_prefetch_thread(world, monkeypatch):
    ref = world.drop("a.csv", ROWS)
    world.fluent.drop_after_post = 2
    with pytest.raises(Exception, match="(?i)dropped|processed"):
        world.run(ref)
    assert prefetch_threads() == []
    world.fluent.drop_after_post = 0
    world.run(ref)
    assert len(world.fluent.received) == 200
    assert len({e["skuRef"] for e in world.fluent.received}) == 200
