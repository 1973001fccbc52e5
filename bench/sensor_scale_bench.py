"""Sensor ticks at scale, three scenarios (docs/scaling.md):

- S3, our side at `--s3-objects` (100,000): the sensor's own `tick_result` given the listing, with the full
  scan against a `file://` ledger of as many entries (no S3 listing: its time at this size is arithmetic in
  docs/scaling.md, moto needing minutes per listing);
- S3 end to end at `--moto-objects` (10,000): the real `s3_inventory_sensor` of `fc_assets.definitions`
  through moto's server (inbox and ledger objects written straight into moto's backend, backdated two days);
- SFTP at `--sftp-files` (10,000): the real `sftp_inventory_sensor` on our asyncssh server (files on the
  served disk, backdated).

Each ticks `--ticks` times with the cursor carried; prints each tick's time, requests and cursor size against
the targets (issue 16): S3 tick < 10 s, SFTP tick < 30 s, cursor < 4 KB. On a loaded machine moto can take
over 3 s for a LIST page, past pyarrow's request time-out: the end-to-end scenario then fails.

    python bench/sensor_scale_bench.py [--s3-objects 100000] [--moto-objects 10000] [--sftp-files 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import table_rows  # noqa: E402

TARGETS = {"s3_tick_s": 10.0, "sftp_tick_s": 30.0, "cursor_bytes": 4096}
BACKDATE = timedelta(days=2)


def serve_s3(port: int, objects: int, ledger_entries: int) -> None:
    """Child process: moto's server with the inbox and lake buckets filled through its backend."""
    import secrets

    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    backend = s3_backends["123456789012"]["aws"]
    backend.create_bucket("inbox", "us-east-1")
    backend.create_bucket("lake", "us-east-1")
    when = datetime.now(UTC).replace(tzinfo=None) - BACKDATE
    body = b"sku,location,qty\nS1,L1,1\n"
    for i in range(objects):
        key = backend.put_object("inbox", f"inventory/stock-{i:06d}.csv", body)
        key.last_modified = when + timedelta(seconds=i // 100)  # 100 files per second, as a batch upload
    for _ in range(ledger_entries):
        backend.put_object("lake", f"lake/state/inventory/ledger/{secrets.token_hex(8)}.json", b"{}")
    print("ready", flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.stop()


def free_port() -> int:
    from fc_assets.local_stack.process import free_port as fp

    return fp()


def tick_times(sensor_name: str, ticks: int, resources: dict) -> list[dict]:
    """Evaluate the sensor `ticks` times with the cursor carried, on a real (SQLite) Dagster instance."""
    import importlib

    import dagster as dg

    import fc_assets.definitions

    defs = importlib.reload(fc_assets.definitions).defs  # the code location as this environment loads it
    sensor = defs.get_sensor_def(sensor_name)
    out, cursor = [], None
    with tempfile.TemporaryDirectory() as home, dg.instance_for_test(temp_dir=home) as instance:
        for n in range(ticks):
            ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
            t0 = time.perf_counter()
            if os.environ.get("BENCH_PROFILE") and n == 1:
                import cProfile
                import pstats

                prof = cProfile.Profile()
                result = prof.runcall(sensor, ctx)
                pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
            else:
                result = sensor(
                    ctx
                )  # the sensor's own code, as the daemon's tick runs it (run requests unresolved)
            elapsed = time.perf_counter() - t0
            cursor = result.cursor
            for req in result.dynamic_partitions_requests or []:
                if isinstance(req, dg.AddDynamicPartitionsRequest):
                    instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
            parsed = json.loads(cursor) if cursor else {}
            out.append(
                {
                    "tick": n + 1,
                    "seconds": round(elapsed, 2),
                    "run_requests": len(result.run_requests or []),
                    "cursor_bytes": len(cursor or ""),
                    "cursor_pending": len(parsed.get("pending", {})),
                    "cursor_digests": len(parsed.get("tie_keys", []))
                    + sum(len(v) // 12 for v in parsed.get("recent", {}).values()),
                }
            )
            print(f"  {sensor_name} tick {n + 1}: {out[-1]}", flush=True)
    return out


def start_s3(objects: int, ledger_entries: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve-s3", str(port), str(objects), str(ledger_entries)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    for line in server.stdout:  # moto prints a line of its own first
        if line.strip() == "ready":
            return server, f"http://127.0.0.1:{port}"
    raise RuntimeError("the S3 server process ended before it was ready")


def page_times(endpoint: str) -> list[float]:
    """Seconds per ListObjectsV2 page (1,000 keys) of the inbox, listed as the sensor lists it."""
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.list_buckets()  # connection and credentials outside the timing
    times, token = [], None
    while True:
        kw = {"ContinuationToken": token} if token else {}
        t0 = time.perf_counter()
        page = client.list_objects_v2(Bucket="inbox", Prefix="inventory/", Delimiter="/", **kw)
        times.append(time.perf_counter() - t0)
        token = page.get("NextContinuationToken")
        if not token:
            return times


def bench_s3_end_to_end(objects: int, ticks: int) -> dict:
    """The whole tick through moto's server (inbox and lake on it), at a size moto can list."""
    server, endpoint = start_s3(objects, objects)
    try:
        print(f"S3 end to end: {objects} inbox objects, {objects} ledger entries", flush=True)
        os.environ.update(
            AWS_ENDPOINT_URL=endpoint,
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            AWS_REGION="us-east-1",
            FC_INBOX_S3_URI="s3://inbox",
            FC_LAKE_URI="s3://lake/lake",
        )
        from fc_assets.definitions import lake_resource
        from fc_assets.ingestion.definitions import s3_resource
        from fc_assets.settings import get_settings

        get_settings.cache_clear()
        pages = page_times(endpoint)
        print(
            f"  LIST: {len(pages)} pages, {sum(pages):.2f} s, median {sorted(pages)[len(pages) // 2]:.3f} s a page"
        )
        result = tick_times("s3_inventory_sensor", ticks, {"s3": s3_resource(), "lake": lake_resource()})
        return {
            "objects": objects,
            "ledger_entries": objects,
            "list_pages_s": [round(p, 3) for p in pages],
            "ticks": result,
        }
    finally:
        server.stdin.close()
        server.wait(timeout=60)


def bench_s3_our_side(objects: int, ticks: int) -> dict:
    """Everything of a tick but the LIST requests, at full size: the listing (as `list_s3` returns it) given
    to the sensors' own `tick_result`, with the full scan against a ledger of `objects` processed files in a
    file:// lake (one directory listing)."""
    import secrets

    import dagster as dg

    from fc_assets.ingestion.deliver.cursor import ListedFile
    from fc_assets.ingestion.deliver.ledger import Ledger
    from fc_assets.ingestion.deliver.plans import plan_for
    from fc_assets.ingestion.feeds import FEEDS
    from fc_assets.ingestion.sensors import tick_result
    from fc_assets.resources.storage import Lake
    from fc_assets.settings import get_settings

    os.environ["FC_INBOX_S3_URI"] = "s3://inbox"
    get_settings.cache_clear()
    (location,) = [loc for loc in plan_for(FEEDS["inventory"]).locations if loc.kind == "s3"]
    when = time.time() - BACKDATE.total_seconds()
    listing = [
        ListedFile(f"{location.prefix}stock-{i:06d}.csv", when + i // 100, 30, secrets.token_hex(16))
        for i in range(objects)
    ]
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as home:
        lake = Lake(f"file://{tmp}/lake")
        ledger_dir = Path(tmp) / "lake" / "state" / "inventory" / "ledger"
        ledger_dir.mkdir(parents=True)
        for _ in range(objects):
            (ledger_dir / f"{secrets.token_hex(8)}.json").write_bytes(b"{}")
        ledger = Ledger(lake, "inventory")
        partitions = dg.DynamicPartitionsDefinition(name="inventory_files")
        out, cursor = [], None
        with dg.instance_for_test(temp_dir=home) as instance:
            for n in range(ticks):
                ctx = dg.build_sensor_context(instance=instance, cursor=cursor)
                t0 = time.perf_counter()
                result = tick_result(
                    ctx,
                    feed="inventory",
                    asset_name="inventory_feed",
                    location=location,
                    partitions_def=partitions,
                    listing=listing,
                    markers=set(),
                    lookback_s=None,
                    retention_days=30,
                    ledger=ledger,
                )
                elapsed = time.perf_counter() - t0
                cursor = result.cursor
                out.append(
                    {
                        "tick": n + 1,
                        "seconds": round(elapsed, 2),
                        "run_requests": len(result.run_requests or []),
                        "cursor_bytes": len(cursor),
                    }
                )
                print(f"  tick_result over {objects} objects, tick {n + 1}: {out[-1]}", flush=True)
    return {"objects": objects, "ledger_entries": objects, "ticks": out}


def bench_sftp(files: int, ticks: int) -> dict:
    from fc_assets.local_stack.sftp_server import sftp_server
    from fc_assets.resources.sftp import SFTPResource
    from fc_assets.settings import get_settings

    with tempfile.TemporaryDirectory() as tmp:
        root, state = Path(tmp) / "root", Path(tmp) / "state"
        inbox = root / "inbox" / "inventory"
        inbox.mkdir(parents=True)
        when = time.time() - BACKDATE.total_seconds()
        t0 = time.perf_counter()
        for i in range(files):
            p = inbox / f"stock-{i:06d}.csv"
            p.write_bytes(b"sku,location,qty\nS1,L1,1\n")
            os.utime(p, (when + i // 100, when + i // 100))
        print(f"SFTP: {files} files in {time.perf_counter() - t0:.1f} s", flush=True)
        port = free_port()
        with sftp_server(root, state, port=port, log_path=Path(tmp) / "sftp.log"):
            os.environ.update(
                FC_SFTP_HOST="127.0.0.1",
                FC_SFTP_PORT=str(port),
                FC_SFTP_USERNAME="fc",
                FC_SFTP_PASSWORD="fc-sftp",
                FC_SFTP_KNOWN_HOSTS=str(state / "known_hosts"),
                FC_SFTP_INBOX_DIR="inbox",
                FC_LAKE_URI=f"file://{tmp}/lake",
            )
            get_settings.cache_clear()
            from fc_assets.definitions import lake_resource

            sftp = SFTPResource(  # from_settings() passes the password as an EnvVar, resolved only in a run
                host="127.0.0.1",
                port=port,
                username="fc",
                password="fc-sftp",
                known_hosts=str(state / "known_hosts"),
            )
            t0 = time.perf_counter()
            with sftp.session() as session:
                listed = len(session.list_dir("inbox/inventory"))
            list_s = time.perf_counter() - t0
            print(f"  bare listing (connect + readdir): {listed} files in {list_s:.2f} s", flush=True)
            result = tick_times("sftp_inventory_sensor", ticks, {"sftp": sftp, "lake": lake_resource()})
            return {"files": files, "bare_list_s": round(list_s, 2), "ticks": result}


def verdict(name: str, value: float, target: float) -> str:
    return f"{name:<44} {value:>10.2f} {target:>10.2f}  {'met' if value < target else 'NOT MET'}"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-s3":
        serve_s3(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--s3-objects", type=int, default=100_000, help="our side of the tick at this size")
    ap.add_argument(
        "--moto-objects", type=int, default=10_000, help="the whole tick through moto at this size"
    )
    ap.add_argument("--sftp-files", type=int, default=10_000)
    ap.add_argument("--ticks", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write the measurements here")
    table_rows.add_argument(ap)
    args = ap.parse_args()
    out: list[dict] = []
    os.environ.setdefault("FC_SENSOR_FULL_SCAN_MINUTES", "30")
    results = {
        "s3_our_side": bench_s3_our_side(args.s3_objects, args.ticks),
        "s3_end_to_end": bench_s3_end_to_end(args.moto_objects, args.ticks),
        "sftp": bench_sftp(args.sftp_files, args.ticks),
    }
    print(f"\n{'what':<44} {'measured':>10} {'target':>10}")
    for label, key, target in (
        (f"S3 {args.s3_objects} objects, our side", "s3_our_side", TARGETS["s3_tick_s"]),
        (f"S3 {args.moto_objects} objects via moto", "s3_end_to_end", TARGETS["s3_tick_s"]),
        (f"SFTP {args.sftp_files} files", "sftp", TARGETS["sftp_tick_s"]),
    ):
        ticks = results[key]["ticks"]
        print(verdict(f"{label}: first tick (full scan) s", ticks[0]["seconds"], target))
        first, worst = ticks[0]["seconds"], max(t["seconds"] for t in ticks)
        cursor = max(t["cursor_bytes"] for t in ticks)
        out.append(
            table_rows.row(
                f"sensor tick, {label}",
                worst,
                None,
                f"< {target:g} s",
                worst < target,
                note=f"first {first:.2f} s",
            )
        )
        out.append(
            table_rows.row(
                f"sensor cursor, {label}",
                cursor,
                None,
                f"< {TARGETS['cursor_bytes']} B",
                cursor < TARGETS["cursor_bytes"],
                unit="B",
            )
        )
        if ticks[1:]:
            print(verdict(f"{label}: later ticks s (max)", max(t["seconds"] for t in ticks[1:]), target))
        print(
            verdict(
                f"{label}: cursor bytes (max)", max(t["cursor_bytes"] for t in ticks), TARGETS["cursor_bytes"]
            )
        )
    pages = results["s3_end_to_end"]["list_pages_s"]
    print(
        f"moto LIST pages at {args.moto_objects} objects: first {pages[0]:.2f} s, median "
        f"{sorted(pages)[len(pages) // 2]:.2f} s (moto scans the whole bucket for each page)"
    )
    if args.json:
        args.json.write_text(json.dumps({**results, "targets": TARGETS}, indent=1))
    table_rows.emit(args.rows_json, out)


if __name__ == "__main__":
    main()
