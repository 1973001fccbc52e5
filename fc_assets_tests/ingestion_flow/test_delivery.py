"""Delivery you can trust (issue 12), end to end on a real Dagster instance against the Fluent sandbox over
HTTP, with files on moto's S3: a daily job the sandbox no longer knows, product events and location
mutations whose POST failed or whose answer was lost, and the per-file job strategy."""

from __future__ import annotations

import pytest

from fc_assets.ingestion.deliver.senders import CRASH_ENV
from fc_assets.ingestion.feeds import inventory_feed, locations_feed, products_feed
from fc_assets_tests.ingestion_flow.flow import Flow, Received, failure_metadata, metadata, on_hand
from fc_assets_tests.ingestion_flow.helpers import inventory_csv


def retried(result) -> int:
    return sum(1 for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY")


def run_file(flow: Flow, name: str, body: bytes, **config) -> tuple[bool, dict]:
    flow.put_s3(name, body)
    (req,) = flow.tick("s3")
    result = flow.execute(req, **config)
    return result.success, metadata(result) if result.success else failure_metadata(result)


ROWS = [(f"DLV{i:04d}", f"LOC{i % 5}", i % 50) for i in range(40)]
SKUS = sorted({s for s, _, _ in ROWS})


@pytest.fixture
def inventory_flow(make_flow):
    return make_flow(inventory_feed())


# ------------------------------------------------------------------------------ the daily job is gone


def test_daily_job_gone_after_sandbox_reset_opens_a_new_job(inventory_flow):
    flow = inventory_flow
    ok, first = run_file(flow, "a.csv", inventory_csv(ROWS))
    assert ok and first["sent"] == 40
    flow.sandbox.admin.reset()  # the sandbox restarts from its seed: it knows no job any more
    flow.received = Received(flow.sandbox.admin)
    changed = [(s, loc, q + 1) for s, loc, q in ROWS]
    ok, second = run_file(flow, "b.csv", inventory_csv(changed))
    assert ok, second.get("error")
    assert second["sent"] == 40 and second["batches"] == 1
    batches = flow.received.batches()
    assert len(batches) == 1 and len(flow.received.entities()) == 40  # the batch sent once
    assert [j["id"] for j in flow.sandbox.admin.received()["jobs"]] == [batches[0]["jobId"]]  # one new job
    assert on_hand(flow.resources["fluent"], SKUS) == {(s, loc): q for s, loc, q in changed}
    # and the next file of the day reuses that new job
    ok, third = run_file(flow, "c.csv", inventory_csv(ROWS))
    assert ok and third["fluent_job_ids"] == second["fluent_job_ids"]
    assert len(flow.sandbox.admin.received()["jobs"]) == 1


# ------------------------------------------------------------------------------ product events


PRODUCTS = (
    "ref,type,name,parent_ref,price,currency,gtin,attr_colour\n"
    "DL-STD-1,STANDARD,Shirt,,19.99,AUD,12345678,\n"
    "DL-VAR-1,VARIANT,Shirt red,DL-STD-1,21.50,AUD,12345679,red\n"
    "DL-STD-2,STANDARD,Trousers,,49.00,AUD,12345680,\n"
    "DL-STD-3,STANDARD,Socks,,5.00,AUD,12345681,\n"
)
PRODUCT_NAMES = {"DL-STD-1": "Shirt", "DL-VAR-1": "Shirt red", "DL-STD-2": "Trousers", "DL-STD-3": "Socks"}

PRODUCT_QUERY = """query P($refs: [String!]) { standardProducts(ref: $refs, first: 50) { edges { node { ref name } } }
  variantProducts(ref: $refs, first: 50) { edges { node { ref name } } } }"""


def product_names(flow: Flow) -> dict[str, str]:
    """What Fluent holds now for the file's products (GraphQL)."""
    with flow.resources["fluent"].get_client() as client:
        data = client.graphql(PRODUCT_QUERY, {"refs": sorted(PRODUCT_NAMES)})
    edges = data["standardProducts"]["edges"] + data["variantProducts"]["edges"]
    return {e["node"]["ref"]: e["node"]["name"] for e in edges}


@pytest.fixture
def products_flow(make_flow):
    return make_flow(products_feed())


@pytest.mark.parametrize(
    "fault",
    [
        {"server_errors": {"count": 1, "status": 503}},  # refused: the event never ran
        {"lose_responses": 1},  # ran, but the answer was lost
        {"drop_connections": 1},  # connection dropped before the answer
        {"server_errors": {"count": 2, "status": 503}},  # a burst: the client's max_retries (2) absorbs it
    ],
    ids=["5xx", "answer_lost", "dropped", "5xx_burst"],
)
def test_product_event_with_uncertain_post_is_resent_never_lost(products_flow, fault):
    flow = products_flow
    flow.sandbox.admin.set_faults(paths=["/api/v4.1/event"], **fault)
    flow.put_s3("products.csv", PRODUCTS.encode())
    (req,) = flow.tick("s3")
    again = flow.execute(req)  # the POST gets no answer: the upsert is repeated at once, in the same attempt
    flow.sandbox.admin.clear_faults()
    assert again.success
    assert retried(again) == 0  # a short burst does not cost the file an attempt
    md = metadata(again)
    assert product_names(flow) == PRODUCT_NAMES  # every product's final state is right
    assert md["sent"] == 4 and md["fluent_rejected"] == 0
    assert md["events_resent_after_uncertain_post"] == fault.get("server_errors", {}).get("count", 1)
    events = [e for e in flow.received.events() if e["name"] == "UPSERT_PRODUCT"]
    ran_twice = 1 if "lose_responses" in fault else 0  # only a lost answer leaves a (harmless) duplicate
    assert len(events) == 4 + ran_twice and {e["entityRef"] for e in events} == set(PRODUCT_NAMES)
    # the snapshot holds all four: the same file again sends nothing
    ok, md2 = run_file(flow, "products-2.csv", PRODUCTS.encode())
    assert ok and md2["sent"] == 0


def test_product_send_log_is_written_per_window_of_events_not_per_event(products_flow, monkeypatch):
    """120 events cost a handful of send-log writes (one per window of EVENT_WINDOW events, plus the plan,
    the first event's checkpoint and the chunk's end), not one lake PUT per event (2x the requests)."""
    from fc_assets.ingestion.deliver import senders
    from fc_assets.ingestion.deliver.ledger import SendLog

    writes: list[str] = []
    real_put = SendLog.put
    monkeypatch.setattr(SendLog, "put", lambda self, key, rec: writes.append(key) or real_put(self, key, rec))
    body = "ref,type,name,price,currency\n" + "".join(
        f"WIN-{i:03d},STANDARD,P {i},1.00,AUD\n" for i in range(120)
    )
    ok, md = run_file(products_flow, "many.csv", body.encode())
    assert ok and md["sent"] == 120 and md["events_resent_after_uncertain_post"] == 0
    event_writes = [k for k in writes if k.startswith("e")]
    assert len(event_writes) <= -(-120 // senders.EVENT_WINDOW) + 2, event_writes


# ------------------------------------------------------------------------------ location mutations

LOCATIONS = "ref,name,type,latitude,longitude,street,city,postcode,country\n" + "".join(
    f"DL-LOC-{i},Store {i},STORE,-33.8{i},151.2{i},{i} George St,Sydney,2000,AU\n" for i in range(1, 6)
)


@pytest.fixture
def locations_flow(make_flow):
    return make_flow(locations_feed())


def location_names(flow: Flow) -> dict[str, str]:
    refs = [f"DL-LOC-{i}" for i in range(1, 6)]
    body = " ".join(f'l{i}: location(ref: "{r}") {{ ref name }}' for i, r in enumerate(refs))
    with flow.resources["fluent"].get_client() as client:
        data = client.graphql(f"query {{ {body} }}")
    return {v["ref"]: v["name"] for v in data.values() if v}


def test_location_failed_alias_retried_alone_per_alias_results_over_several_requests(locations_flow):
    flow = locations_flow
    # DL-LOC-2 fails once (retried alone, then created); DL-LOC-4 fails every time (reported, sent next file)
    flow.sandbox.admin.set_faults(fail_mutations={"DL-LOC-2": 1, "DL-LOC-4": 99})
    ok, md = run_file(flow, "locations.csv", LOCATIONS.encode(), batch_size=2)  # 2 aliases a request
    assert ok
    # 3 requests of 2, 2 and 1 aliases, then the two failed aliases alone: 7 mutations in 5 requests
    assert md["sent"] == 7 and md["fluent_requests"] == 5 and md["fluent_retried_rows"] == 2
    assert md["fluent_rejected"] == 1 and md["fluent_created"] == 4
    assert "DL-LOC-4" in md["fluent_rejections"] or "row 4" in md["fluent_rejections"]
    muts = flow.received.mutations()
    by_ref = {}
    for m in muts:
        by_ref.setdefault(m["input"].get("ref"), []).append(m["ok"])
    assert by_ref == {
        "DL-LOC-1": [True],
        "DL-LOC-2": [False, True],
        "DL-LOC-3": [True],
        "DL-LOC-4": [False, False],
        "DL-LOC-5": [True],
    }
    assert location_names(flow) == {f"DL-LOC-{i}": f"Store {i}" for i in (1, 2, 3, 5)}
    flow.sandbox.admin.clear_faults()
    ok, md2 = run_file(flow, "locations-2.csv", LOCATIONS.encode(), batch_size=2)
    assert ok and md2["sent"] == 1 and md2["fluent_created"] == 1  # only the rejected one goes again
    assert location_names(flow) == {f"DL-LOC-{i}": f"Store {i}" for i in range(1, 6)}


# ------------------------------------------------------------------------------ crashes, every sender

STAGES = [
    "after_claim",
    "after_prepare",
    "after_post",  # Fluent acted on the first request, its answer was never recorded
    "mid_send",
    "after_send",
    "after_confirm",
    "after_commit",
    "during_archive",
]


def crash_then_rerun(flow: Flow, name: str, body: bytes, stage: str, monkeypatch, **config) -> dict:
    flow.put_s3(name, body)
    (req,) = flow.tick("s3")
    monkeypatch.setenv(CRASH_ENV, stage)
    first = flow.execute(req, **config)
    assert not first.success and "injected crash" in failure_metadata(first)["error"]
    monkeypatch.delenv(CRASH_ENV)
    again = flow.execute(req, **config)
    assert again.success
    md = metadata(again)
    assert md["resumed_from_stage"] != "new" and md["outcome"] == "processed"
    assert flow.s3.list_objects_v2(Bucket=flow.bucket, Prefix=f"{flow.feed.name}/{name}")["KeyCount"] == 0
    return md


@pytest.mark.parametrize("stage", [*STAGES, "after_confirm_batches"])
def test_inventory_crash_at_each_stage_then_rerun(inventory_flow, stage, monkeypatch):
    flow = inventory_flow
    md = crash_then_rerun(flow, "stock.csv", inventory_csv(ROWS), stage, monkeypatch, batch_size=15)
    entities = flow.received.entities()
    assert len(entities) == 40 and len({(e["skuRef"], e["locationRef"]) for e in entities}) == 40  # once
    assert on_hand(flow.resources["fluent"], SKUS) == {(s, loc): q for s, loc, q in ROWS}
    assert md["sent"] == 40 and md["batches"] == 3 and len(flow.received.batches()) == 3
    assert md.get("fluent_batches_adopted", 0) == (1 if stage == "after_post" else 0)
    ok, again = run_file(flow, "stock-2.csv", inventory_csv(ROWS))  # the snapshot was committed once
    assert ok and again["sent"] == 0


@pytest.mark.parametrize("stage", STAGES)
def test_products_crash_at_each_stage_then_rerun(products_flow, stage, monkeypatch):
    flow = products_flow
    md = crash_then_rerun(flow, "products.csv", PRODUCTS.encode(), stage, monkeypatch)
    assert product_names(flow) == PRODUCT_NAMES  # no loss: every product's final state is right
    events = [e for e in flow.received.events() if e["name"] == "UPSERT_PRODUCT"]
    resent = md["events_resent_after_uncertain_post"]
    # a crash right after the first POST: that event reaches Fluent twice; the rerun cannot know how far the
    # window of events in flight got, so it re-sends the whole window and counts each as a possible duplicate
    duplicates = 1 if stage == "after_post" else 0
    assert len(events) == 4 + duplicates and all(e["eventStatus"] == "COMPLETE" for e in events)
    # every duplicate is counted; the count is bounded by the window in flight (the first pass's three
    # standard products), and nothing is counted when the crash was outside a window
    assert duplicates <= resent <= (3 if stage in ("after_post", "mid_send") else 0)
    assert md["sent"] == 4 and md["fluent_rejected"] == 0
    ok, again = run_file(flow, "products-2.csv", PRODUCTS.encode())
    assert ok and again["sent"] == 0


@pytest.mark.parametrize("stage", STAGES)
def test_locations_crash_at_each_stage_then_rerun(locations_flow, stage, monkeypatch):
    flow = locations_flow
    md = crash_then_rerun(flow, "locations.csv", LOCATIONS.encode(), stage, monkeypatch, batch_size=2)
    assert location_names(flow) == {f"DL-LOC-{i}": f"Store {i}" for i in range(1, 6)}
    muts = flow.received.mutations()
    assert all(m["ok"] for m in muts)  # never an "already exists" error
    assert [m["name"] for m in muts].count("createLocation") == 5
    resent = md["mutations_resent_after_uncertain_post"]
    assert resent == (2 if stage == "after_post" else 0)  # the first request's two aliases, as updates
    assert len(muts) == 5 + resent and md["fluent_created"] + md["fluent_updated"] == 5
    ok, again = run_file(flow, "locations-2.csv", LOCATIONS.encode(), batch_size=2)
    assert ok and again["sent"] == 0


def test_per_file_job_strategy_opens_one_job_per_file(make_flow):
    flow = make_flow(inventory_feed(job_strategy="per_file"))
    ok, first = run_file(flow, "a.csv", inventory_csv(ROWS), batch_size=15)
    assert ok and first["batches"] == 3
    ok, second = run_file(flow, "b.csv", inventory_csv([(s, loc, q + 1) for s, loc, q in ROWS]))
    assert ok and second["batches"] == 1
    jobs = flow.sandbox.admin.received()["jobs"]
    assert len(jobs) == 2 and first["fluent_job_ids"] != second["fluent_job_ids"]
    by_job = {}
    for b in flow.received.batches():
        by_job.setdefault(b["jobId"], []).append(len(b["entities"]))
    assert by_job == {first["fluent_job_ids"]: [15, 15, 10], second["fluent_job_ids"]: [40]}
    assert jobs[0]["name"] != jobs[1]["name"]  # named after the file, not the day


# ------------------------------------------------------------------------------ refused, not uncertain


def test_a_rate_limited_event_is_not_reported_as_resent(products_flow):
    """429 (more often than the client retries) is Fluent refusing without acting: the next attempt sends
    the event once, and nothing is reported as a re-send after an uncertain POST."""
    flow = products_flow
    flow.sandbox.admin.set_faults(rate_limit={"count": 3, "retry_after": 0}, paths=["/api/v4.1/event"])
    flow.put_s3("products.csv", PRODUCTS.encode())
    (req,) = flow.tick("s3")
    result = flow.execute(req)
    assert result.success and retried(result) == 1
    md = metadata(result)
    events = [e for e in flow.received.events() if e["name"] == "UPSERT_PRODUCT"]
    assert len(events) == 4 and md["sent"] == 4
    assert md["events_resent_after_uncertain_post"] == 0


def test_a_rate_limited_lookup_is_not_reported_as_resent_mutations(locations_flow):
    """The lookup before the mutations is refused (429): no mutation was sent, none is reported re-sent."""
    flow = locations_flow
    flow.sandbox.admin.set_faults(rate_limit={"count": 3, "retry_after": 0}, paths=["/graphql"])
    ok, md = run_file(flow, "locations.csv", LOCATIONS.encode(), batch_size=2)
    assert ok and md["sent"] == 5 and len(flow.received.mutations()) == 5
    assert md["mutations_resent_after_uncertain_post"] == 0
