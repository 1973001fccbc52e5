"""Fluent's Job/Batch API for inventory (fluent-api.md §4), with the response shapes the sandbox chose.

- `POST /api/v4.1/job` `{name, retailerId, meta?}` → 200 `{"id": "<jobId>"}` (ids are numeric strings).
  Missing `name` or `retailerId` → 400.
- `POST /api/v4.1/job/{id}/batch` `{action: "UPSERT", entityType: "INVENTORY", entities: [1..5000],
  source?, event?, catalogueRef?, conditions?}` → 200 `{"id": "<batchId>"}`. 400 `{"message": ...}` for a
  malformed body, another action or entity type, 0 or more than 5,000 entities, or a CLOSED job (message
  contains "closed"); 404 for an unknown job. Entities are validated when the batch runs, not here.
- `GET /api/v4.1/job/{id}` → `{jobId, name, status: OPEN|CLOSED, retailerId, meta, createdOn,
  batch: [{batchId, status, createdOn}]}`.
- `GET /api/v4.1/job/{id}/batch/{batchId}` → `{batchId, jobId, entityType, status, start, count, total,
  results, createdOn, lastModifiedOn}`: `status` PENDING → RUNNING → COMPLETE (COMPLETE with or without
  errors), `count` = entities received, `total` = entities that failed, `results` = one item per failed
  entity `{entityIndex, skuRef, locationRef, code, message}` (codes: `INVALID_ENTITY` for validation,
  `REJECTED` for the `reject_entities` fault), `start` = 1.
- A job is OPEN until the first UTC midnight (sandbox clock) after it was created, then CLOSED.
- Processing: after `batch_delay_ms` the batch is RUNNING, after as long again each valid entity is
  upserted (store.py `upsert_inventory`) and the batch is COMPLETE; with the `stuck_batches` fault it
  stays RUNNING. Per-entity validation: `skuRef` and `locationRef` non-empty strings, `qty` an integer
  ≥ 0 (a numeric string such as "10" is accepted, as in Fluent's example), `type`/`status` strings when
  given, `expectedOn` an ISO-8601 date when given.
- With `--bulk-intake` a valid entity is not upserted into the store but kept as numbers (bulk.py), and the
  batch's entities are dropped once it is COMPLETE (its `count` stays).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from fc_assets.sandbox.datetimes import iso_ms, parse_iso_ms

MAX_ENTITIES = 5_000


class JobError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def entity_error(entity: Any) -> str | None:
    """Why a batch inventory entity is invalid (None when it is fine)."""
    if not isinstance(entity, dict):
        return "entity must be a JSON object"
    for key in ("skuRef", "locationRef"):
        if not isinstance(entity.get(key), str) or not entity[key].strip():
            return f"'{key}' is required"
    qty = entity.get("qty")
    if isinstance(qty, str) and qty.strip().isdigit():
        qty = int(qty)
    if isinstance(qty, bool) or not isinstance(qty, int) or qty < 0:
        return f"'qty' must be an integer >= 0, got {entity.get('qty')!r}"
    for key in ("type", "status", "catalogueRef"):
        if entity.get(key) is not None and not isinstance(entity[key], str):
            return f"'{key}' must be a string"
    if entity.get("expectedOn") is not None:
        try:
            parse_iso_ms(entity["expectedOn"])
        except (ValueError, TypeError):
            return f"'expectedOn' is not an ISO-8601 date-time: {entity['expectedOn']!r}"
    if entity.get("attributes") is not None and not isinstance(entity["attributes"], dict):
        return "'attributes' must be an object"
    return None


class Jobs:
    def __init__(self, state: Any) -> None:
        self.state = state  # SandboxState: clock, store, faults, received, config
        self.jobs: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._next_job = 100
        self._next_batch = 1000
        self.tasks: set[asyncio.Task[None]] = set()

    def status_of(self, job: dict[str, Any]) -> str:
        closes = self.state.clock.next_midnight_ms(job["_created_ms"])
        return "CLOSED" if self.state.clock.now_ms() >= closes else "OPEN"

    def create(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise JobError(400, "body must be a JSON object")
        if not isinstance(body.get("name"), str) or not body["name"].strip():
            raise JobError(400, "'name' is required")
        if body.get("retailerId") in (None, ""):
            raise JobError(400, "'retailerId' is required")
        if body.get("meta") is not None and not isinstance(body["meta"], dict):
            raise JobError(400, "'meta' must be an object")
        self._next_job += 1
        now = self.state.clock.now_ms()
        job = {
            "id": str(self._next_job),
            "name": body["name"],
            "retailerId": str(body["retailerId"]),
            "meta": body.get("meta"),
            "_created_ms": now,
            "batches": [],
        }
        self.jobs[job["id"]] = job
        self.state.received.jobs.append(
            {
                "id": job["id"],
                "name": job["name"],
                "retailerId": job["retailerId"],
                "meta": job["meta"],
                "createdOn": iso_ms(now),
            }
        )
        return {"id": job["id"]}

    def job(self, job_id: str) -> dict[str, Any]:
        job = self.jobs.get(job_id)
        if job is None:
            raise JobError(404, f"Job {job_id} not found")
        return {
            "jobId": job["id"],
            "name": job["name"],
            "status": self.status_of(job),
            "retailerId": job["retailerId"],
            "meta": job["meta"],
            "createdOn": iso_ms(job["_created_ms"]),
            "batch": [
                {"batchId": b["id"], "status": b["status"], "createdOn": iso_ms(b["_created_ms"])}
                for b in job["batches"]
            ],
        }

    def add_batch(self, job_id: str, body: Any) -> dict[str, Any]:
        job = self.jobs.get(job_id)
        if job is None:
            raise JobError(404, f"Job {job_id} not found")
        if not isinstance(body, dict):
            raise JobError(400, "body must be a JSON object")
        if body.get("action") != "UPSERT":
            raise JobError(400, f"Unsupported action {body.get('action')!r}: only 'UPSERT' is supported")
        if body.get("entityType") != "INVENTORY":
            raise JobError(
                400, f"Unsupported entityType {body.get('entityType')!r}: only 'INVENTORY' is supported"
            )
        entities = body.get("entities")
        if not isinstance(entities, list) or not entities:
            raise JobError(400, "'entities' must be a non-empty list")
        if len(entities) > MAX_ENTITIES:
            raise JobError(400, f"A batch holds at most {MAX_ENTITIES} entities, got {len(entities)}")
        if self.status_of(job) == "CLOSED":
            raise JobError(400, f"Job {job_id} is closed: create a new job")
        self._next_batch += 1
        now = self.state.clock.now_ms()
        batch = {
            "id": str(self._next_batch),
            "jobId": job_id,
            "entities": entities,
            "count": len(entities),
            "status": "PENDING",
            "entityType": "INVENTORY",
            "catalogueRef": body.get("catalogueRef"),
            "results": [],
            "_created_ms": now,
            "_modified_ms": now,
        }
        job["batches"].append(batch)
        self.batches[batch["id"]] = batch
        self.state.received.batches.append(batch)
        task = asyncio.get_running_loop().create_task(self._process(batch))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return {"id": batch["id"]}

    def batch(self, job_id: str, batch_id: str) -> dict[str, Any]:
        batch = self.batches.get(batch_id)
        if batch is None or batch["jobId"] != job_id:
            raise JobError(404, f"Batch {batch_id} of job {job_id} not found")
        return {
            "batchId": batch["id"],
            "jobId": job_id,
            "entityType": batch["entityType"],
            "status": batch["status"],
            "start": 1,
            "count": batch["count"],
            "total": len(batch["results"]),
            "results": batch["results"],
            "createdOn": iso_ms(batch["_created_ms"]),
            "lastModifiedOn": iso_ms(batch["_modified_ms"]),
        }

    async def _process(self, batch: dict[str, Any]) -> None:
        delay = self.state.config.batch_delay_ms / 1000
        await asyncio.sleep(delay)
        self._set(batch, "RUNNING")
        if self.state.faults.flag("stuck_batches"):
            return
        await asyncio.sleep(delay)
        reject = self.state.faults.state.get("reject_entities") or {}
        reject_refs, rate = set(reject.get("skuRefs") or []), reject.get("rate") or 0.0
        rng = random.Random(f"{self.state.config.seed}:{batch['id']}")
        rid = str(self.state.config.retailer_id)
        bulk = self.state.received.bulk
        valid: list[dict[str, Any]] = []
        for index, entity in enumerate(batch["entities"]):
            problem = entity_error(entity)
            code = "INVALID_ENTITY"
            if problem is None and (entity["skuRef"] in reject_refs or (rate and rng.random() < rate)):
                problem, code = "rejected by the sandbox (reject_entities fault)", "REJECTED"
            if problem is None and bulk is not None:
                qty = int(entity["qty"])
                if -(2**63) <= qty < 2**63:  # bulk.py keeps quantities as int64
                    valid.append({**entity, "qty": qty})
                else:
                    problem = "qty out of range"
            elif problem is None:
                catalogue = (
                    entity.get("catalogueRef")
                    or batch["catalogueRef"]
                    or f"DEFAULT:{entity.get('retailerId') or rid}"
                )
                try:
                    self.state.store.upsert_inventory({**entity, "qty": int(entity["qty"])}, catalogue)
                except Exception as exc:  # e.g. unknown catalogue
                    problem = str(exc)
            if problem is not None:
                item = {"entityIndex": index, "code": code, "message": problem}
                if isinstance(entity, dict):
                    item |= {"skuRef": entity.get("skuRef"), "locationRef": entity.get("locationRef")}
                batch["results"].append(item)
        if bulk is not None:
            bulk.add(valid)
            batch["entities"] = None  # bulk intake keeps the count and bulk.py's numbers, not the dicts
        self._set(batch, "COMPLETE")
        self.state.events.audit_batch(batch["jobId"], batch["id"], rid)

    def _set(self, batch: dict[str, Any], status: str) -> None:
        batch["status"] = status
        batch["_modified_ms"] = self.state.clock.now_ms()
