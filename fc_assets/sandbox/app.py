"""The sandbox's HTTP surface: a Starlette app over `SandboxState`.

Paths: `GET /health` (200 once the store is generated), `POST /oauth/token`, `POST /graphql`, the Job and
Event APIs under `/api/v4.1/` (jobs.py, events.py), and the admin API under `/_sandbox/` (admin.py; no
bearer token, but the `X-Sandbox-Admin: 1` header and a JSON POST, against cross-site requests). Every other path needs `Authorization: Bearer <live token>` (401 `{"error":
"invalid_token", ...}` otherwise). A middleware counts requests and applies the faults (faults.py) before
anything else: latency, dropped connections, 429 with `Retry-After`, 5xx.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from fc_assets.sandbox.admin import admin_refusal, admin_routes
from fc_assets.sandbox.config import SandboxConfig
from fc_assets.sandbox.events import EventError
from fc_assets.sandbox.jobs import JobError
from fc_assets.sandbox.query_workers import MUTATION, QueryWorkers
from fc_assets.sandbox.resolvers import RequestContext
from fc_assets.sandbox.state import SandboxState

UNAUTHENTICATED = ("/health", "/oauth/token", "/_sandbox")


def json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


class FaultsAndAuth:
    """ASGI middleware: request counting, injected faults, then the bearer-token check."""

    def __init__(self, app: ASGIApp, state: SandboxState, workers: QueryWorkers | None = None) -> None:
        self.app = app
        self.state = state
        self.workers = workers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path: str = scope["path"]
        if self.workers is not None:
            self.workers.seen(scope["method"], path)
        if path == "/health":
            return await self.app(scope, receive, send)
        if path.startswith("/_sandbox"):
            refusal = admin_refusal(scope)
            try:
                return await (refusal or self.app)(scope, receive, send)
            finally:
                if self.workers is not None:  # the write is done now: no worker forked meanwhile keeps it out
                    self.workers.seen(scope["method"], path)
        state = self.state
        state.received.requests[f"{scope['method']} {path}"] += 1
        if state.faults.latency_s:
            await asyncio.sleep(state.faults.latency_s)
        fault = state.faults.take(path)
        if fault is not None:
            kind, value = fault
            if kind == "drop":
                return await drop_connection(send)
            if kind == "lose":  # processed, but the answer never reaches the client

                async def swallow(_message: Any) -> None:
                    return None

                await self._authorized(scope, receive, swallow)
                return await drop_connection(send)
            if kind == "429":
                response = json(
                    {"message": "Too many requests (sandbox rate_limit fault)"},
                    429,
                    {"Retry-After": str(value)} if value is not None else None,
                )
            else:
                status, message = value
                response = json({"message": message or f"Sandbox server_errors fault ({status})"}, status)
            return await response(scope, receive, send)
        if state.faults.tokens_due(path):
            state.tokens.expire_all()
        await self._authorized(scope, receive, send)

    async def _authorized(self, scope: Scope, receive: Receive, send: Send) -> None:
        state, path = self.state, scope["path"]
        if not path.startswith(UNAUTHENTICATED):
            headers = dict(scope["headers"])
            auth = headers.get(b"authorization")
            token = state.tokens.check(auth.decode("latin-1") if auth else None)
            if token is None:
                response = json(
                    {"error": "invalid_token", "error_description": "Missing, unknown or expired token"},
                    401,
                    {"WWW-Authenticate": 'Bearer error="invalid_token"'},
                )
                return await response(scope, receive, send)
            scope.setdefault("state", {})["user"] = token.user
        await self.app(scope, receive, send)


async def drop_connection(send: Send) -> None:
    """Close the connection without an answer. uvicorn's `send` is a method of its request cycle, which
    holds the transport; closing it is what a client sees as "server disconnected"."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise ConnectionAbortedError("sandbox drop_connections fault")
    transport.close()
    await asyncio.sleep(0)


async def read_json(request: Request, limit: int | None = None) -> tuple[Any, Response | None]:
    body = await request.body()
    if limit is not None and len(body) > limit:
        return None, json(
            {"errors": [{"message": f"Request body of {len(body)} bytes exceeds {limit} bytes"}]}, 413
        )
    try:
        return orjson.loads(body), None
    except orjson.JSONDecodeError:
        return None, json(
            {"message": "Malformed JSON body", "errors": [{"message": "Malformed JSON body"}]}, 400
        )


def build_app(config: SandboxConfig, state: SandboxState | None = None) -> FaultsAndAuth:
    """The ASGI app. The faults middleware wraps Starlette from outside, so it gets uvicorn's own `send`
    (needed to drop a connection); `.state` is the `SandboxState`."""
    state = state or SandboxState(config)
    workers = QueryWorkers(state, config.graphql_workers)

    async def health(_: Request) -> Response:
        return json({"status": "ok"})

    async def token(request: Request) -> Response:
        params = dict(request.query_params)
        if request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            params.update({k: str(v) for k, v in (await request.form()).items()})
        status, body = state.tokens.grant(params)
        return json(body, status, {"Cache-Control": "no-store"})

    async def graphql(request: Request) -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > config.max_request_bytes:
            return json(
                {"errors": [{"message": f"Request body exceeds {config.max_request_bytes} bytes"}]}, 413
            )
        body, error = await read_json(request, config.max_request_bytes)
        if error is not None:
            return error
        injected = state.faults.graphql_error(await request.body())
        if injected is not None:
            return json({"data": None, "errors": [injected]})
        user = {**request.scope["state"]["user"], "primaryRetailer": state.store.retailer}
        if workers.enabled:
            answer = await workers.run(await request.body(), state.faults.flag("stuck_cursor"), user)
            if answer is not MUTATION:
                status, payload = answer
                return Response(payload, status_code=status, media_type="application/json")
            workers.invalidate()  # the mutation below changes what the next query must see
        ctx = RequestContext(
            store=state.store,
            config=config,
            stuck_cursor=state.faults.flag("stuck_cursor"),
            user=user,
            record_mutation=state.received.mutation,
            mutation_error=state.faults.mutation_error,
        )
        status, out = state.graphql.run(body, ctx)
        return json(out, status)

    async def create_job(request: Request) -> Response:
        body, error = await read_json(request)
        return error or job_call(lambda: state.jobs.create(body))

    async def add_batch(request: Request) -> Response:
        body, error = await read_json(request)
        return error or job_call(lambda: state.jobs.add_batch(request.path_params["job_id"], body))

    async def get_job(request: Request) -> Response:
        return job_call(lambda: state.jobs.job(request.path_params["job_id"]))

    async def get_batch(request: Request) -> Response:
        return job_call(
            lambda: state.jobs.batch(request.path_params["job_id"], request.path_params["batch_id"])
        )

    async def post_event(request: Request) -> Response:
        if request.path_params["mode"] not in ("async", "sync"):
            return json({"message": "Not found"}, 404)
        body, error = await read_json(request)
        return error or event_call(lambda: state.events.post(body, request.path_params["mode"]))

    async def search_events(request: Request) -> Response:
        return event_call(lambda: state.events.search(dict(request.query_params)))

    async def get_event(request: Request) -> Response:
        return event_call(lambda: state.events.get(request.path_params["event_id"]))

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/oauth/token", token, methods=["POST"]),
        Route("/graphql", graphql, methods=["POST"]),
        Route("/api/v4.1/job", create_job, methods=["POST"]),
        Route("/api/v4.1/job/{job_id}", get_job, methods=["GET"]),
        Route("/api/v4.1/job/{job_id}/batch", add_batch, methods=["POST"]),
        Route("/api/v4.1/job/{job_id}/batch/{batch_id}", get_batch, methods=["GET"]),
        Route("/api/v4.1/event/{mode:str}", post_event, methods=["POST"]),
        Route("/api/v4.1/event", search_events, methods=["GET"]),
        Route("/api/v4.1/event/{event_id}", get_event, methods=["GET"]),
        *admin_routes(state),
    ]
    return FaultsAndAuth(Starlette(routes=routes), state, workers)


def job_call(fn: Any) -> Response:
    try:
        return json(fn())
    except JobError as exc:
        return json({"message": str(exc)}, exc.status)


def event_call(fn: Any) -> Response:
    try:
        return json(fn())
    except EventError as exc:
        return json({"message": str(exc)}, exc.status)
