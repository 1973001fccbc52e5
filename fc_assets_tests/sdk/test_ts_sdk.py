"""Fluent's own TypeScript SDK (`@fluentcommerce/fc-connect-sdk` 0.1.56, pinned by ts/package.json and
ts/package-lock.json) run against the sandbox: the acceptance check that the sandbox speaks Fluent's
contract as the vendor's client expects it, not only as our Python client does.

`ts/check_sandbox.mjs` uses only the SDK's public client (`createClient`, `graphql`/`query` with the
SDK's auto-pagination, `createJob`, `sendBatch`, `getBatchStatus`, `getJobStatus`, `sendEvent`,
`getEvents`, `getEventById`) and prints a JSON summary. This test installs it with `npm ci` (cache in
`.local/npm-cache`, reinstalled only when package-lock.json changes), runs it against the session sandbox,
and checks the summary against the sandbox's own records (`/_sandbox/counts`, `/_sandbox/received`) and
its public event log (`GET /api/v4.1/event`). It is skipped only when `node` or `npm` is not on PATH; an
install failure fails it.

The sandbox needed no change for the SDK: both grants, paging, the batch lifecycle and the event calls
worked as the contract (shared reference fluent-api.md) describes. What the SDK does on its own, which
the script works around rather than bending the sandbox:

- Auto-pagination stops quietly at 10,000 records / 100 pages / 5 min (a warning log, and on
  "hasNextPage but no cursor" not even `truncated`). The script lifts the limits, collects `onWarning`
  and fails on any warning or truncation.
- No batch poller ships, and its docs wait for COMPLETED/FAILED, which Fluent never reports (batch:
  PENDING → RUNNING → COMPLETE; job: OPEN/CLOSED). The script polls the batch until COMPLETE.
- The `FluentBatchStatus` typing (`processedEntities`, `totalEntities`, `errors`) is not Fluent's shape
  (`count`, `total` = failed entities, `results`); the script reads the wire fields.
- `getEvents` has no retailerId fallback (unlike `sendEvent`); the script passes it.
- The SDK's `VERSION` constant is the placeholder "see-package.json"; the script reads the package.
- Its transitive ssh2/cpu-features install scripts would build native add-ons with node-gyp; none is
  needed here, so ts/.npmrc sets ignore-scripts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from fc_assets.sandbox.runner import SandboxServer

TS_DIR = Path(__file__).parent / "ts"
REPO = Path(__file__).resolve().parents[2]
NPM_CACHE = REPO / ".local" / "npm-cache"
STAMP = TS_DIR / "node_modules" / ".fc-assets-lock.sha256"
SDK_PACKAGE = TS_DIR / "node_modules" / "@fluentcommerce" / "fc-connect-sdk" / "package.json"
SDK_VERSION = "0.1.56"
INSTALL_TIMEOUT_S = 240
SCRIPT_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def node_sdk() -> str:
    """Path of `node`, with the SDK installed in ts/node_modules exactly as package-lock.json says."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip(f"node and npm are needed to run Fluent's TypeScript SDK (node={node}, npm={npm})")
    lock_hash = hashlib.sha256((TS_DIR / "package-lock.json").read_bytes()).hexdigest()
    installed = STAMP.is_file() and STAMP.read_text().strip() == lock_hash and SDK_PACKAGE.is_file()
    if not installed:
        NPM_CACHE.mkdir(parents=True, exist_ok=True)
        cmd = [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--cache", str(NPM_CACHE)]
        try:
            done = subprocess.run(
                cmd,
                cwd=TS_DIR,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT_S,
                env={**os.environ, "npm_config_update_notifier": "false"},
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"`npm ci` did not finish in {INSTALL_TIMEOUT_S}s:\n{exc.stdout}\n{exc.stderr}")
        if done.returncode != 0:
            pytest.fail(f"`{' '.join(cmd)}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        STAMP.write_text(lock_hash + "\n")
    assert json.loads(SDK_PACKAGE.read_text())["version"] == SDK_VERSION
    return node


def run_check(node: str, base_url: str, run_id: str) -> tuple[dict, str]:
    env = {
        **os.environ,
        "FC_CHECK_RUN_ID": run_id,
        "FC_SDK_LOG": "warn",
        "FC_CHECK_TIMEOUT_MS": str((SCRIPT_TIMEOUT_S - 5) * 1000),
    }
    try:
        done = subprocess.run(
            [node, str(TS_DIR / "check_sandbox.mjs"), base_url],
            cwd=TS_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"check_sandbox.mjs did not finish in {SCRIPT_TIMEOUT_S}s:\n{exc.stdout}\n{exc.stderr}")
    assert done.returncode == 0, f"check_sandbox.mjs exited {done.returncode}:\n{done.stderr}\n{done.stdout}"
    lines = done.stdout.strip().splitlines()
    assert lines, f"check_sandbox.mjs printed nothing on stdout:\n{done.stderr}"
    return json.loads(lines[-1]), done.stderr


def token(base_url: str) -> str:
    response = httpx.post(
        f"{base_url}/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "fc-sandbox",
            "client_secret": "fc-sandbox-secret",
            "scope": "api",
        },
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["access_token"]


def test_fluent_typescript_sdk_against_sandbox(node_sdk: str, sandbox_clean: SandboxServer) -> None:
    sandbox = sandbox_clean
    admin = sandbox.admin
    before = admin.received()
    run_id = uuid.uuid4().hex[:8]

    started = time.monotonic()
    summary, stderr = run_check(node_sdk, sandbox.base_url, run_id)
    elapsed = time.monotonic() - started

    assert summary["ok"] is True and summary["sdk_version"] == SDK_VERSION and summary["run_id"] == run_id
    # The SDK logged no warning or error of its own (retries, re-auth, paging stops) during the run.
    assert "[sdk warn]" not in stderr and "[sdk error]" not in stderr, stderr

    # Auth: both grants gave a token that `me` accepts, each as its own identity.
    assert summary["auth"] == {"client_credentials": {"me": "fc-sandbox"}, "password": {"me": "sandbox"}}

    # Paging: the SDK read every order the sandbox holds, in the sandbox's connection order, over >1 page.
    orders = admin.counts("orders")
    paging = summary["paging"]
    assert paging["node_count"] == orders["count"] == 1500
    assert paging["ids"] == orders["ids"]
    assert paging["pages"] == -(-orders["count"] // paging["page_size"]) > 1
    assert paging["truncated"] is False and paging["warnings"] == []

    # Batch: COMPLETE without failures, and the sandbox received exactly that one batch with those entities.
    after = admin.received()
    batch = summary["batch"]
    assert batch["status"] == "COMPLETE" and batch["failed"] == 0 and batch["count"] == 3
    assert batch["job_status"] == "OPEN"
    assert batch["job_batches"] == [{"batchId": batch["batch_id"], "status": "COMPLETE"}]
    new_batches = after["batches"][len(before["batches"]) :]
    assert [(b["id"], b["jobId"], b["status"]) for b in new_batches] == [
        (batch["batch_id"], batch["job_id"], "COMPLETE")
    ]
    assert new_batches[0]["entities"] == batch["entities"]
    assert after["entity_count"] - before["entity_count"] == len(batch["entities"]) == 3
    assert {e["skuRef"] for e in batch["entities"]} == {f"SDK-CHECK-{run_id}-{n}" for n in (1, 2, 3)}
    new_jobs = after["jobs"][len(before["jobs"]) :]
    assert [(j["id"], j["retailerId"], j["meta"]) for j in new_jobs] == [
        (batch["job_id"], "1", {"source": "fc-connect-sdk"})
    ]
    # ...and a GraphQL read (through the SDK) showed every entity's quantity as the position's onHand.
    assert sorted(p["onHand"] for p in batch["positions"]) == [10, 20, 30]

    # Event: received once, and found through Fluent's public event log by name + entity and by id.
    event = summary["event"]
    new_events = [e for e in after["events"][len(before["events"]) :] if e.get("name") == event["name"]]
    assert [e["id"] for e in new_events] == [event["id"]]
    assert new_events[0]["attributes"]["runId"] == run_id
    headers = {"Authorization": f"Bearer {token(sandbox.base_url)}"}
    log = httpx.get(
        f"{sandbox.base_url}/api/v4.1/event",
        headers=headers,
        timeout=10,
        params={"name": event["name"], "context.entityRef": event["entity_ref"], "retailerId": "1"},
    )
    log.raise_for_status()
    found = [e for e in log.json()["results"] if e["id"] == event["id"]]
    assert len(found) == 1
    assert (
        found[0]["context"]["entityType"] == "ORDER"
        and found[0]["context"]["entityRef"] == event["entity_ref"]
    )
    one = httpx.get(f"{sandbox.base_url}/api/v4.1/event/{event['id']}", headers=headers, timeout=10)
    assert one.status_code == 200 and one.json()["name"] == event["name"]

    assert elapsed < SCRIPT_TIMEOUT_S
