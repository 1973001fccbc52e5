"""A small in-memory Batch API (httpx.MockTransport) for pipeline unit tests that need no HTTP server.

The end-to-end tests use the real sandbox; this fake only lets the resume logic be exercised quickly and
deterministically: jobs (OPEN/CLOSED), batches (PENDING → RUNNING → COMPLETE after N polls, or stuck),
per-entity rejections by skuRef, and a log of every entity received.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx

from fc_assets.resources.fluent import FluentClient


class FakeBatchApi:
    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.received: list[dict[str, Any]] = []  # every entity of every batch, in arrival order
        self.reject_skus: set[str] = set()
        self.stuck = False
        self.polls_to_complete = 1
        self.drop_after_post = 0  # drop the connection after taking this many batch POSTs (answer lost)
        self.close_jobs_at_post = 0  # close every job just before the n-th batch POST (midnight passes)
        self.posts = 0
        self._ids = itertools.count(100)

    def client(self) -> FluentClient:
        return FluentClient(
            "http://fake",
            "id",
            "secret",
            transport=httpx.MockTransport(self),
            max_retries=0,
            backoff_base=0.01,
        )

    def close_all_jobs(self) -> None:
        for j in self.jobs.values():
            j["status"] = "CLOSED"

    def qty(self) -> dict[tuple[str, str], int]:
        out = {}
        for e in self.received:
            if e["skuRef"] not in self.reject_skus:
                out[(e["skuRef"], e["locationRef"])] = int(e["qty"])
        return out

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/oauth/token":
            return httpx.Response(200, json={"access_token": "t", "token_type": "bearer", "expires_in": 3600})
        body = json.loads(request.content) if request.content else {}
        parts = path.strip("/").split("/")  # api v4.1 job {id} batch {bid}
        if request.method == "POST" and parts[-1] == "job":
            jid = str(next(self._ids))
            self.jobs[jid] = {"jobId": jid, "status": "OPEN", "name": body.get("name"), "batch": []}
            return httpx.Response(200, json={"id": jid})
        if parts[2] == "job" and len(parts) == 4 and request.method == "GET":
            return httpx.Response(200, json=self.jobs[parts[3]])
        if parts[2] == "job" and parts[4] == "batch" and request.method == "POST":
            self.posts += 1
            if self.posts == self.close_jobs_at_post:
                self.close_all_jobs()
            job = self.jobs[parts[3]]
            if job["status"] != "OPEN":
                return httpx.Response(400, json={"message": f"job {parts[3]} is closed"})
            bid = str(next(self._ids))
            self.batches[bid] = {
                "batchId": bid,
                "status": "PENDING",
                "entities": body["entities"],
                "polls": 0,
            }
            job["batch"].append({"batchId": bid, "status": "PENDING"})
            self.received.extend(body["entities"])
            if self.drop_after_post:
                self.drop_after_post -= 1
                raise httpx.ReadError("connection dropped after the server took the batch")
            return httpx.Response(200, json={"id": bid})
        if parts[2] == "job" and parts[4] == "batch" and request.method == "GET":
            b = self.batches[parts[5]]
            b["polls"] += 1
            if self.stuck:
                b["status"] = "RUNNING"
            elif b["polls"] >= self.polls_to_complete:
                b["status"] = "COMPLETE"
            results = [
                {"entityIndex": i, "status": "ERROR", "message": f"unknown product {e['skuRef']}"}
                for i, e in enumerate(b["entities"])
                if e["skuRef"] in self.reject_skus
            ]
            return httpx.Response(
                200,
                json={
                    "batchId": b["batchId"],
                    "status": b["status"],
                    "results": results if b["status"] == "COMPLETE" else [],
                },
            )
        return httpx.Response(404, json={"message": f"no route {request.method} {path}"})
