"""Sending benchmark: a first load of an inventory feed (every row new) through the Batch API sender, to the
Fluent sandbox over HTTP, at 100k and 1M rows (and 10M with `--big`): peak memory and ledger bytes.

    python bench/sending_bench.py                  # 100k and 1M rows (a few minutes)
    python bench/sending_bench.py --big            # also 10M rows (~10 min)
    python bench/sending_bench.py --rows 100000 --rows 300000

Each size runs against a fresh sandbox (`--batch-delay-ms 0`: batches complete as soon as they are
processed; `--bulk-intake`: entities are validated, then kept as 16 bytes each instead of ~3 KB of store
dicts, which at 10M rows would not fit in memory) and a `file://` lake in a temp directory. A first child writes the delta as `pipeline._prepare`
leaves it (delta.parquet with `_op`, `_row`, `_h`, in file order, and a `prepared` ledger entry); a second,
fresh child runs `BatchInventorySender.send` — the stage this benchmark is about — and reports:

- peak RSS of the child (ru_maxrss) and its RSS before sending;
- lake bytes written for the ledger: every write under `state/<feed>/ledger/`, `sends/` and `state.json`
  (each rewrite counted again), against the size of delta.parquet.

Then it proves what arrived: sent == rows, and the sandbox's received entity count, distinct positions, qty
sum and order-independent digest (sandbox/bulk.py) equal the ones a third child reads from delta.parquet;
any difference stops the benchmark. The sandbox's own peak RSS (VmHWM) is printed beside the sender's.

At 1M rows (`--baseline-at`) the same entities are first sent by a bare client (BASELINE below: payloads
serialised before its clock starts, same batch size, one request at a time, every batch polled to
COMPLETE) to another fresh sandbox started with the same arguments, its arrival verified the same way: the
sandbox's own intake rate, the baseline of our sender's time.

Targets (issue 12): peak RSS(1M) <= 1.3 x peak RSS(100k); ledger bytes <= 1 % of the delta's size.
Issue 16: our sending time at 1M rows <= 1.2 x the bare client's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import table_rows

PREPARE = r"""
import json, sys, time
rows, lake_dir = int(sys.argv[1]), sys.argv[2]

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fc_assets.ingestion.deliver.files import FileRef
from fc_assets.ingestion.deliver.ledger import Ledger, LedgerEntry
from fc_assets.resources.storage import Lake

lake = Lake(f"file://{lake_dir}")
feed = "inventory"
ref = FileRef(feed, "s3", f"inventory/first-load-{rows}.csv", "v1", rows * 40, time.time(), "etag")
ledger = Ledger(lake, feed)
entry = LedgerEntry.new(ref)
ledger.advance(entry, "claimed")
delta_rel = ledger.work(ref.file_id, "delta.parquet")

# the delta of a first load: every row an upsert, in file order (what compute_delta writes)
with lake.atomic_write(delta_rel) as out:
    schema = pa.schema([("sku_ref", pa.string()), ("location_ref", pa.string()), ("qty", pa.int64()),
                        ("status", pa.string()), ("_row", pa.int64()), ("_h", pa.string()), ("_op", pa.string())])
    with pq.ParquetWriter(out, schema, compression="zstd") as w:  # row groups as DuckDB's COPY writes them
        rng = np.random.default_rng(7)
        for start in range(0, rows, 122_880):
            idx = np.arange(start, min(rows, start + 122_880))
            m = len(idx)
            w.write_table(pa.table({
                "sku_ref": np.char.add("SKU-", np.char.zfill(idx.astype(str), 10)),
                "location_ref": np.char.add("LOC-", np.char.zfill((idx % 997).astype(str), 4)),
                "qty": rng.integers(0, 100_000, m),
                "status": np.full(m, "AVAILABLE"),
                "_row": idx + 1,
                "_h": [f"{x:032x}" for x in rng.integers(0, 2**62, m)],
                "_op": np.full(m, "upsert"),
            }, schema=schema))
ledger.advance(entry, "prepared")
print(json.dumps({"file_id": ref.file_id}))
"""

SEND = r"""
import json, resource, sys, time
rows, base_url, lake_dir, file_id = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]

from fc_assets.ingestion.deliver.delta_chunks import DeltaFile
from fc_assets.ingestion.deliver.ledger import Ledger
from fc_assets.ingestion.deliver.senders import BatchInventorySender
from fc_assets.resources.fluent import FluentClient
from fc_assets.resources.storage import Lake

lake = Lake(f"file://{lake_dir}")
feed = "inventory"
written = {"ledger": 0}
plain_write = Lake.write_bytes


def counting_write(self, data, *parts):
    rel = "/".join(parts)
    if rel.startswith(f"state/{feed}/") and ("/ledger/" in rel or "/sends/" in rel or rel.endswith("state.json")):
        written["ledger"] += len(data)
    return plain_write(self, data, *parts)


Lake.write_bytes = counting_write
ledger = Ledger(lake, feed)
entry = ledger.get(file_id)
delta_rel = ledger.work(file_id, "delta.parquet")
delta_bytes = lake.fs.get_file_info(lake.path(delta_rel)).size
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

client = FluentClient(base_url, "fc-sandbox", "fc-sandbox-secret", retailer_id="1", timeout=120)


def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


t, c = time.perf_counter(), cpu()
with client:
    outcome = BatchInventorySender(client, ledger, timeout_s=600).send(entry, DeltaFile(lake, delta_rel))
ledger.advance(entry, "confirmed", send_summary=outcome.ids)
seconds = time.perf_counter() - t
print(json.dumps({
    "rows": rows, "sent": outcome.sent, "cpu": cpu() - c, "batches": outcome.ids["batches"], "rejected": len(outcome.rejected),
    "seconds": seconds, "rss_before_mb": rss_before / 1024,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "delta_bytes": delta_bytes, "ledger_bytes": written["ledger"],
}))
"""


# The sandbox's own intake rate: the same entities (built by the sender's own `inventory_entity`, serialised
# before the clock starts) posted by a bare httpx client as the sender posts them — batches of the same size,
# one request at a time — then every batch polled until COMPLETE. No delta reading, ledger or send log.
BASELINE = r"""
import json, resource, sys, time
import httpx, orjson
import pyarrow.parquet as pq
rows, base_url, lake_dir, file_id = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
from fc_assets.ingestion.deliver.ledger import Ledger
from fc_assets.ingestion.deliver.senders import MAX_BATCH, inventory_entity
from fc_assets.resources.storage import Lake

lake = Lake(f"file://{lake_dir}")
rel = Ledger(lake, "inventory").work(file_id, "delta.parquet")
with lake.fs.open_input_file(lake.path(rel)) as f:
    table = pq.read_table(f)
bodies = []
for start in range(0, table.num_rows, MAX_BATCH):
    entities = [inventory_entity(r, "1") for r in table.slice(start, MAX_BATCH).to_pylist()]
    bodies.append(orjson.dumps({"action": "UPSERT", "entityType": "INVENTORY", "entities": entities}))
del table, entities

def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime

t, c = time.perf_counter(), cpu()
with httpx.Client(base_url=base_url, timeout=120) as http:
    token = http.post("/oauth/token", data={"grant_type": "client_credentials", "client_id": "fc-sandbox",
                                             "client_secret": "fc-sandbox-secret"}).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    http.headers["Content-Type"] = "application/json"
    job = http.post("/api/v4.1/job", content=orjson.dumps({"name": "baseline", "retailerId": "1"})).json()["id"]
    batch_ids = []
    for body in bodies:
        r = http.post(f"/api/v4.1/job/{job}/batch", content=body)
        r.raise_for_status()
        batch_ids.append(r.json()["id"])
    for b in batch_ids:
        while (got := http.get(f"/api/v4.1/job/{job}/batch/{b}").json())["status"] != "COMPLETE":
            time.sleep(0.01)
        assert not got["results"], got["results"][:3]
print(json.dumps({"sent": sum(len(orjson.loads(b)["entities"]) for b in bodies), "batches": len(bodies), "rejected": 0,
                  "seconds": time.perf_counter() - t, "cpu": cpu() - c}))
"""

DIGEST = r"""
import json, sys
import pyarrow.parquet as pq

from fc_assets.ingestion.deliver.ledger import Ledger
from fc_assets.resources.storage import Lake
from fc_assets.sandbox.bulk import MASK, entity_digest

lake_dir, file_id = sys.argv[1], sys.argv[2]
lake = Lake(f"file://{lake_dir}")
rel = Ledger(lake, "inventory").work(file_id, "delta.parquet")
rows = qty_sum = digest = 0
with lake.fs.open_input_file(lake.path(rel)) as f:
    for b in pq.ParquetFile(f).iter_batches(columns=["sku_ref", "location_ref", "qty", "_op"]):
        for sku, loc, qty, op in zip(*(b.column(i).to_pylist() for i in range(4))):
            qty = 0 if op == "delete" else qty  # as senders.inventory_entity sends it
            rows, qty_sum = rows + 1, qty_sum + qty
            digest += entity_digest(sku, loc, "LAST_ON_HAND", qty)
print(json.dumps({"rows": rows, "qty_sum": qty_sum, "digest": str(digest & MASK)}))
"""


def peak_rss_mb(pid: int) -> float:
    """VmHWM of a live process (its peak RSS so far), in MB."""
    with open(f"/proc/{pid}/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    return kb / 1024


def verify(rows: int, sent: dict, expected: dict, received: dict) -> None:
    """Stop the benchmark unless everything in the delta arrived once, unchanged."""
    bulk = received["bulk_inventory"]
    checks = {
        "sent == rows": (sent["sent"], rows),
        "delta rows == rows": (expected["rows"], rows),
        "received entities == rows": (received["entity_count"], rows),
        "valid entities == rows": (bulk["entities"], rows),
        "distinct positions == rows": (bulk["positions"], rows),
        "received qty sum == delta qty sum": (bulk["qty_sum"], expected["qty_sum"]),
        "received digest == delta digest": (bulk["digest"], expected["digest"]),
    }
    wrong = {name: pair for name, pair in checks.items() if pair[0] != pair[1]}
    if wrong or sent["rejected"]:
        raise SystemExit(f"{rows:,} rows did not arrive as sent: {wrong}, rejected {sent['rejected']}")


def run(rows: int, baseline: bool) -> dict:
    """Our sender on a fresh sandbox; with `baseline`, first the bare client on another fresh sandbox (the
    same arguments), its arrival verified the same way."""
    from fc_assets.sandbox.runner import SandboxServer

    args = [
        "--orders",
        "0",
        "--inventory-positions",
        "0",
        "--virtual-positions",
        "0",
        "--batch-delay-ms",
        "0",
        "--bulk-intake",
    ]
    with tempfile.TemporaryDirectory(prefix="fc-send-bench-") as lake:
        prepared = child(PREPARE, str(rows), lake)
        expected = child(DIGEST, lake, prepared["file_id"])
        base = None
        if baseline:
            with SandboxServer(args, seed=7) as sandbox:
                base = child(BASELINE, str(rows), sandbox.base_url, lake, prepared["file_id"])
                verify(rows, base, expected, sandbox.admin.received())
        with SandboxServer(args, seed=7) as sandbox:
            sent = child(SEND, str(rows), sandbox.base_url, lake, prepared["file_id"])
            verify(rows, sent, expected, sandbox.admin.received())
            return {
                **sent,
                "baseline": base,
                "sandbox_peak_rss_mb": peak_rss_mb(sandbox.process.pid),
                "qty_sum": expected["qty_sum"],
            }


def child(code: str, *args: str) -> dict:
    """Run `code` in a fresh interpreter (its own peak RSS); its last stdout line is JSON."""
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"child failed {args}:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append", help="sizes to run (default 100k and 1M)")
    parser.add_argument("--big", action="store_true", help="also 10M rows")
    parser.add_argument(
        "--baseline-at",
        type=int,
        action="append",
        help="sizes also sent by a bare client for the sandbox's intake rate (default 1M)",
    )
    table_rows.add_argument(parser)
    opts = parser.parse_args()
    out: list[dict] = []
    sizes = opts.rows or [100_000, 1_000_000]
    if opts.big:
        sizes.append(10_000_000)
    results = []
    for rows in sizes:
        started = time.perf_counter()
        r = run(rows, rows in (opts.baseline_at or [1_000_000]))
        results.append(r)
        print(
            f"{rows:>11,} rows: sent {r['sent']:,} in {r['batches']} batches, {r['seconds']:.1f} s sending "
            f"({r['sent'] / r['seconds']:,.0f} entities/s); peak RSS {r['peak_rss_mb']:.0f} MB "
            f"(before sending {r['rss_before_mb']:.0f} MB); ledger {r['ledger_bytes']:,} B written = "
            f"{100 * r['ledger_bytes'] / r['delta_bytes']:.3f} % of the delta ({r['delta_bytes']:,} B); "
            f"received {r['sent']:,} entities, qty sum {r['qty_sum']:,} and digest as in the delta; sandbox "
            f"peak RSS {r['sandbox_peak_rss_mb']:.0f} MB; {time.perf_counter() - started:.0f} s with set-up; "
            f"load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    for r in results:
        base = r["baseline"]
        if not base:
            continue
        ratio = r["seconds"] / base["seconds"]
        print(
            f"sending {r['rows']:,} rows: ours {r['seconds']:.1f} s ({r['cpu']:.1f} s CPU) vs the sandbox's own "
            f"intake {base['seconds']:.1f} s ({base['cpu']:.1f} s CPU in the bare client), "
            f"{base['batches']} batches each, both arrivals verified: {ratio:.2f}x (target <= 1.2x) "
            f"{'OK' if ratio <= 1.2 else 'NOT MET'} (load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        out.append(
            table_rows.row(
                f"{r['rows']:,} inventory rows through the Batch API vs the sandbox's own intake "
                "(bare client, pre-built payloads)",
                r["seconds"],
                base["seconds"],
                "ratio <= 1.2",
                ratio <= 1.2,
                note=f"CPU ours {r['cpu']:.1f} s, bare client {base['cpu']:.1f} s",
            )
        )
    small = results[0]
    for r in results[1:]:
        ratio = r["peak_rss_mb"] / small["peak_rss_mb"]
        print(
            f"peak RSS {r['rows']:,} vs {small['rows']:,} rows: {r['peak_rss_mb']:.0f} / "
            f"{small['peak_rss_mb']:.0f} MB = {ratio:.2f}x (target <= 1.3x) "
            f"{'OK' if ratio <= 1.3 else 'NOT MET'}"
        )
        out.append(
            table_rows.row(
                f"sending peak RSS, {r['rows']:,} vs {small['rows']:,} rows",
                r["peak_rss_mb"],
                small["peak_rss_mb"],
                "ratio <= 1.3",
                ratio <= 1.3,
                unit="MB",
            )
        )
    for r in results:
        share = r["ledger_bytes"] / r["delta_bytes"]
        print(
            f"ledger bytes {r['rows']:,} rows: {share:.3%} of the delta (target <= 1 %) "
            f"{'OK' if share <= 0.01 else 'NOT MET'}"
        )
        out.append(
            table_rows.row(
                f"sending {r['rows']:,} rows: ledger bytes vs delta.parquet bytes",
                r["ledger_bytes"],
                r["delta_bytes"],
                "ratio <= 0.01",
                share <= 0.01,
                unit="B",
                note=f"sent in {r['seconds']:.1f} s, arrival verified",
            )
        )
    table_rows.emit(opts.rows_json, out)


if __name__ == "__main__":
    main()
