"""The crash scenarios shared by test_crash_kill.py and bench/crash_soak.py: per sender, the k-th file
(every row changed, so every row is sent), what Fluent must hold afterwards, and the kill-and-re-execute
cycle with its checks (crash_harness.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fc_assets.ingestion.deliver.crashpoints import POINTS
from fc_assets.ingestion.deliver.files import FileRef
from fc_assets.ingestion.deliver.pipeline import process_file
from fc_assets.ingestion.deliver.plans import plan_for
from fc_assets.ingestion.feeds import inventory_feed, locations_feed, products_feed
from fc_assets_tests.ingestion_flow.crash_harness import (
    KILLED,
    child_run,
    ledger_problems,
    partial_objects,
    pipeline_env,
    run_in_child,
)
from fc_assets_tests.ingestion_flow.flow import Flow, Received, on_hand
from fc_assets_tests.ingestion_flow.helpers import inventory_csv

PRODUCT_QUERY = """query P($refs: [String!]) { standardProducts(ref: $refs, first: 50) { edges { node { ref name } } }
  variantProducts(ref: $refs, first: 50) { edges { node { ref name } } } }"""


@dataclass
class Sender:
    """One sender's scenario: the k-th file changes every row, and what Fluent must hold afterwards."""

    feed: Callable[[], Any]
    batch_size: int
    body: Callable[[int], bytes]
    verify: Callable[[Flow, Received, dict[str, Any], int], list[str]]
    points: tuple[str, ...] = field(default=())


# ---------------------------------------------------------------------------------------------- inventory


def inventory_rows(k: int) -> list[tuple[str, str, int]]:
    return [(f"KIL{i:03d}", f"LOC{i % 5}", 100 * k + i) for i in range(40)]


def verify_inventory(flow: Flow, received: Received, md: dict[str, Any], k: int) -> list[str]:
    want = {(s, loc): q for s, loc, q in inventory_rows(k)}
    got = [((e["skuRef"], e["locationRef"]), e["qty"]) for e in received.entities()]
    out = []
    if len(got) != len(want) or dict(got) != want:
        keys = [key for key, _ in got]
        lost = sorted(set(want) - set(keys))
        twice = sorted({key for key in keys if keys.count(key) > 1})
        out.append(f"entities received {len(got)} for {len(want)} rows; lost {lost[:5]}, twice {twice[:5]}")
    fluent_view = on_hand(flow.resources["fluent"], sorted({s for s, _ in want}))
    if fluent_view != want:
        out.append(f"on hand differs for {sorted(k for k in want if fluent_view.get(k) != want[k])[:5]}")
    if md.get("sent") != len(want):
        out.append(f"metadata sent={md.get('sent')} for {len(want)} rows")
    return out


# ---------------------------------------------------------------------------------------------- products

PRODUCT_ROWS = [
    ("KP-STD-1", "STANDARD", "Shirt", ""),
    ("KP-VAR-1", "VARIANT", "Shirt red", "KP-STD-1"),
    ("KP-STD-2", "STANDARD", "Trousers", ""),
    ("KP-STD-3", "STANDARD", "Socks", ""),
]


def product_names(k: int) -> dict[str, str]:
    return {ref: f"{name} v{k}" for ref, _, name, _ in PRODUCT_ROWS}


def products_body(k: int) -> bytes:
    lines = ["ref,type,name,parent_ref,price,currency,gtin"]
    for i, (ref, typ, _, parent) in enumerate(PRODUCT_ROWS):
        lines.append(f"{ref},{typ},{product_names(k)[ref]},{parent},{10 + i}.50,AUD,{12345670 + i}")
    return ("\n".join(lines) + "\n").encode()


def verify_products(flow: Flow, received: Received, md: dict[str, Any], k: int) -> list[str]:
    want = product_names(k)
    with flow.resources["fluent"].get_client() as client:
        data = client.graphql(PRODUCT_QUERY, {"refs": sorted(want)})
    edges = data["standardProducts"]["edges"] + data["variantProducts"]["edges"]
    held = {e["node"]["ref"]: e["node"]["name"] for e in edges}
    events = [e for e in received.events() if e["name"] == "UPSERT_PRODUCT"]
    out = []
    if held != want:
        out.append(f"Fluent holds {held}, the file says {want}")
    if {e["entityRef"] for e in events} != set(want) or any(e["eventStatus"] != "COMPLETE" for e in events):
        out.append(f"events for {sorted({e['entityRef'] for e in events})}, not every product once")
    duplicates, reported = len(events) - len(want), md.get("events_resent_after_uncertain_post", 0)
    if duplicates > reported:
        out.append(f"{duplicates} duplicate event(s), {reported} reported")
    return out


# --------------------------------------------------------------------------------------------- locations


def location_refs(k: int) -> list[str]:
    return [f"KL{k:02d}-1", f"KL{k:02d}-2", f"KL{k:02d}-3", "KLS-1", "KLS-2"]  # 3 new, 2 updated


def locations_body(k: int) -> bytes:
    head = "ref,name,type,latitude,longitude,street,city,postcode,country\n"
    return (
        head
        + "".join(
            f"{ref},Store {ref} v{k},STORE,-33.8{i},151.2{i},{i} George St,Sydney,2000,AU\n"
            for i, ref in enumerate(location_refs(k))
        )
    ).encode()


def location_names(flow: Flow, refs: list[str]) -> dict[str, str]:
    body = " ".join(f'l{i}: location(ref: "{r}") {{ ref name }}' for i, r in enumerate(refs))
    with flow.resources["fluent"].get_client() as client:
        data = client.graphql(f"query {{ {body} }}")
    return {v["ref"]: v["name"] for v in data.values() if v}


def verify_locations(flow: Flow, received: Received, md: dict[str, Any], k: int) -> list[str]:
    refs = location_refs(k)
    want = {ref: f"Store {ref} v{k}" for ref in refs}
    muts = received.mutations()
    out = []
    if location_names(flow, refs) != want:
        out.append(f"Fluent holds {location_names(flow, refs)}, the file says {want}")
    if not all(m["ok"] for m in muts):
        out.append(f"failed mutations: {[m for m in muts if not m['ok']][:3]}")
    created = [m["input"].get("ref") for m in muts if m["name"] == "createLocation"]
    if len(created) != len(set(created)):
        out.append(f"a location created twice: {sorted(created)}")
    duplicates, reported = len(muts) - len(refs), md.get("mutations_resent_after_uncertain_post", 0)
    if duplicates < 0 or duplicates > reported:
        out.append(f"{len(muts)} mutations for {len(refs)} rows, {reported} resends reported")
    return out


SENDERS = {
    "inventory": Sender(
        inventory_feed, 15, lambda k: inventory_csv(inventory_rows(k)), verify_inventory
    ),  # 3 batches
    "products": Sender(products_feed, 5000, products_body, verify_products),
    "locations": Sender(locations_feed, 2, locations_body, verify_locations),  # 3 requests of ≤2
}
# Kill chains: each file is killed once per point of its chain, each child resuming what the previous one
# left, so a chain also tests recovery from a crash during recovery. Points are in the order a resumed
# run reaches them (`:n` = the n-th time in that child). Together the chains cover every point of
# crashpoints.POINTS: the sender's in SENDER_CHAINS, the flow's (shared by all senders) in PIPELINE_CHAINS.
SENDER_CHAINS = {
    "inventory": [  # 40 rows, batches of 15: 3 batches
        ["inventory.sending", "inventory.job_created", "inventory.posting_recorded"],
        ["after_post", "mid_send", "after_send"],
        ["inventory.posted_recorded", "inventory.batch_complete_recorded", "after_confirm_batches"],
        ["inventory.posting_recorded:2", "after_post:2", "inventory.batch_complete_recorded:3"],
    ],
    "products": [  # 3 standard products, then 1 variant
        ["products.sending", "products.in_flight_recorded", "after_post"],
        ["mid_send", "products.chunk_done", "after_send"],
        # the variant's window recorded in flight, then its re-send killed before the answer is recorded
        ["products.in_flight_recorded:2", "after_post"],
    ],
    "locations": [  # 5 rows, 2 aliases a request: 3 requests
        ["locations.sending", "locations.posting_recorded", "locations.looked_up"],
        ["after_post", "locations.done_recorded", "mid_send"],
        ["locations.posting_recorded:2", "after_post:2", "after_send"],
    ],
}
PIPELINE_CHAINS = [
    ["after_claim", "pipeline.validated", "after_prepare"],
    ["pipeline.slot_taken", "after_confirm", "pipeline.snapshot_committed"],
    ["pipeline.state_committed", "after_commit", "pipeline.archive_target_saved"],
    ["during_archive", "pipeline.archive_moved", "pipeline.archived"],
]


def uncovered_points() -> list[str]:
    """Points of crashpoints.POINTS no chain kills at (must stay empty)."""
    chained = {p.partition(":")[0] for c in [*PIPELINE_CHAINS, *sum(SENDER_CHAINS.values(), [])] for p in c}
    return [p for points in POINTS.values() for p in points if p not in chained]


# ------------------------------------------------------------------------------------------------- cycle


@dataclass
class Cycle:
    """One file: killed at each of `points` in turn (each kill a child re-executing the file), then
    re-executed to the end here; `problems` is what is wrong afterwards."""

    feed: str
    points: list[str]
    killed: list[bool]
    seconds: float
    problems: list[str]
    metadata: dict[str, Any]

    def line(self) -> str:
        kills = ", ".join(
            f"{p}{'' if k else ' (not reached)'}" for p, k in zip(self.points, self.killed, strict=True)
        )
        ok = "no loss, no double count" if self.metadata else "every day complete, no partial object"
        verdict = ok if not self.problems else "; ".join(self.problems)
        return f"{self.feed}: killed at {kills} -> {verdict} ({self.seconds:.1f} s)"


def kill_then_rerun(
    flow: Flow,
    sender: Sender,
    k: int,
    *,
    points: list[str] = (),
    kill_after_s: list[float] = (),
) -> Cycle:
    """File k of the feed: children run it, one killed at each of `points` (a crash point) or after each
    delay of `kill_after_s` (a random moment), each resuming what the one before left; then it is
    re-executed here and checked."""
    started, t0 = time.monotonic(), time.time()
    flow.put_s3(f"f{k:03d}.csv", sender.body(k))
    (req,) = flow.tick("s3")
    ref = FileRef.from_tags(flow.feed.name, req.tags)
    received = Received(flow.sandbox.admin)
    kills = [(p, None) for p in points] + [(None, s) for s in kill_after_s]
    killed, problems = [], []
    for point, delay in kills:
        code = run_in_child(
            child_run(flow, ref, batch_size=sender.batch_size, kill_at=point), kill_after_s=delay
        )
        killed.append(code == KILLED)
        if code not in (KILLED, 0):
            problems.append(f"child exited {code}")
    result = process_file(
        plan_for(flow.feed), ref, pipeline_env(flow.resources, sender.batch_size, f"rerun-{k}")
    )
    md = result.metadata
    problems += sender.verify(flow, received, md, k)
    problems += partial_objects(flow.lake, since=t0)
    problems += ledger_problems(flow.lake, flow.feed.name, [ref.file_id])
    problems += inbox_problems(flow, ref, result.entry.archive_target)
    labels = list(points) + [f"random {s:.2f} s" for s in kill_after_s]
    return Cycle(flow.feed.name, labels, killed, time.monotonic() - started, problems, md)


def inbox_problems(flow: Flow, ref: FileRef, target: str | None) -> list[str]:
    """The file left the inbox exactly once: gone from its key, one archived copy, no new run requested."""
    keys = [o["Key"] for o in flow.s3.list_objects_v2(Bucket=flow.bucket).get("Contents", [])]
    name = ref.key.rsplit("/", 1)[-1].removesuffix(".csv")
    out = []
    if ref.key in keys:
        out.append(f"{ref.key} still in the inbox")
    archived = [x for x in keys if x != ref.key and x.rsplit("/", 1)[-1].startswith(name + ".")]
    if archived != [target] and [a for a in archived if not a.endswith(".rejects.csv")] != [target]:
        out.append(f"archived as {archived}, expected {target}")
    if flow.tick("s3"):
        out.append("the sensor requested another run")
    return out


def cycle_report(cycles: list[Cycle]) -> str:
    return "\n".join(c.line() for c in cycles if c.problems)


# ------------------------------------------------------------------------------------------- extraction

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # a run's DEBUG lines, not shown


def extraction_cycle(sandbox, lake, instance, keys: list[str], kill_after_s: float) -> Cycle:
    """A materialization of `orders` over the days `keys` is killed after `kill_after_s`, then run again
    here: no object may be partial after the kill, and every day's object must hold exactly the ids the
    sandbox reports for that day after the re-execution."""
    import dagster as dg

    from fc_assets.extraction.assets import build_extraction_asset
    from fc_assets.extraction.entities import ORDERS
    from fc_assets_tests.extraction.test_sandbox_extraction import (
        START_DATE,
        expected_ids,
        parquet_ids,
        range_tags,
        resources,
    )
    from fc_assets_tests.ingestion_flow.crash_harness import ExtractRun, resource_fields

    started, t0 = time.monotonic(), time.time()
    res = resources(sandbox, lake)
    run = ExtractRun("orders", keys[0], keys[-1], START_DATE, resource_fields(res), instance.get_ref())
    code = run_in_child(run, kill_after_s=kill_after_s)
    problems = [f"after the kill: {p}" for p in partial_objects(lake, since=t0)]
    again = dg.materialize(
        [build_extraction_asset(ORDERS, START_DATE, retry_policy=None)],
        resources=res,
        instance=instance,
        tags=range_tags(keys[0], keys[-1]),
        run_config=QUIET,
        raise_on_error=False,
    )
    if not again.success:
        problems.append("the re-execution failed")
    else:
        problems += [
            f"{key}: ids differ from the sandbox's"
            for key in keys
            if parquet_ids(lake, "orders", key) != expected_ids(sandbox, "orders", key)
        ]
    problems += partial_objects(lake, since=t0)
    return Cycle(
        f"extraction orders {keys[0]}..{keys[-1]}",
        [f"random {kill_after_s:.2f} s"],
        [code == KILLED],
        time.monotonic() - started,
        problems,
        {},
    )
