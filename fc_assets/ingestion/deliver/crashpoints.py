"""Named crash points at the stage boundaries of the ingestion flow: a test hook, free when unused.

Two environment variables, never set in production (not settings; read at each point so a test can set them):

- `FC_CRASH_AT=<point>[,<point>…]` raises `InjectedCrash` at the point: the step fails there, in-process
  (`finally` blocks and context managers still run).
- `FC_KILL_AT=<point>[:<n>][,…]` sends SIGKILL to the own process the n-th time (default: the first) the
  point is reached: nothing after it runs, nothing is cleaned up, no exception handler sees it — what a
  killed pod or an OOM kill does. The crash tests (fc_assets_tests/ingestion_flow/test_crash_kill.py) run
  a file in a child process killed at every point of `POINTS`, then re-execute it.

A point names the boundary just passed: `inventory.posting_recorded` = the batch is recorded `posting` in
the send log and its POST has not been made. Points without a sender prefix are shared by every sender
(or kept from the first version of this hook).
"""

from __future__ import annotations

import os
import signal
from collections import Counter

CRASH_ENV = "FC_CRASH_AT"
KILL_ENV = "FC_KILL_AT"

# every point, by the part of the flow that passes it, in the order a file passes them
POINTS: dict[str, tuple[str, ...]] = {
    "pipeline": (
        "after_claim",  # ledger entry `claimed`
        "pipeline.validated",  # downloaded, validated (accepted rows and rejects in the lake), no delta yet
        "after_prepare",  # `prepared`: the delta is written
        "pipeline.slot_taken",  # the feed's in-flight slot names this file, nothing sent
        "after_confirm",  # `confirmed`: Fluent finished with every request
        "pipeline.snapshot_committed",  # snapshot (and watermark ties) replaced, feed state not yet
        "pipeline.state_committed",  # feed state (watermark, slot freed) written, entry not yet `committed`
        "after_commit",  # `committed`
        "pipeline.archive_target_saved",  # the archive target is in the entry, nothing moved
        "during_archive",  # S3: copy made and verified, source not deleted; SFTP: before the rename
        "pipeline.archive_moved",  # the source sits in processed/ or error/, the entry not yet `archived`
        "pipeline.archived",  # `archived`, work files not yet removed
    ),
    "batch_inventory": (
        "inventory.sending",  # entry `sending`, send log opened
        "inventory.job_created",  # Fluent created the job, not yet recorded
        "inventory.posting_recorded",  # batch recorded `posting`, not POSTed
        "after_post",  # Fluent took the batch, its id not recorded
        "inventory.posted_recorded",  # batch id recorded `posted`
        "mid_send",  # the first of several batches sent
        "after_send",  # every batch posted, none confirmed
        "inventory.batch_complete_recorded",  # one batch confirmed COMPLETE and recorded
        "after_confirm_batches",  # every batch confirmed
    ),
    "event_product": (
        "products.sending",
        "products.in_flight_recorded",  # a window of events recorded in flight, none POSTed
        "after_post",  # Fluent answered the event, the answer not recorded
        "mid_send",
        "products.chunk_done",  # a chunk's events all answered and recorded
        "after_send",
    ),
    "graphql_location": (
        "locations.sending",
        "locations.looked_up",  # existing refs looked up, nothing recorded, mutations not sent
        "locations.posting_recorded",  # the request recorded `posting`, mutations not sent
        "after_post",  # Fluent ran the mutations, the per-alias results not recorded
        "locations.done_recorded",
        "mid_send",
        "after_send",
    ),
}

_hits: Counter[str] = Counter()


class InjectedCrash(RuntimeError):
    """Raised at a named point when `FC_CRASH_AT` lists it (see the module doc)."""


def crash_point(point: str) -> None:
    """Crash here if a test asked for it (see the module doc); otherwise two dictionary lookups."""
    crash, kill = os.environ.get(CRASH_ENV), os.environ.get(KILL_ENV)
    if not crash and not kill:
        return
    if crash and point in {s.strip() for s in crash.split(",")}:
        raise InjectedCrash(f"injected crash at stage {point!r} ({CRASH_ENV})")
    if kill:
        wanted = {}
        for item in kill.split(","):
            name, _, nth = item.strip().partition(":")
            wanted[name] = int(nth or 1)
        if point in wanted:
            _hits[point] += 1
            if _hits[point] == wanted[point]:
                os.kill(os.getpid(), signal.SIGKILL)
