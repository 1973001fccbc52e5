"""The Fluent Commerce client (OAuth, retries, GraphQL paging, Batch/Job API, Event API) and its Dagster resource.

Wire contract: `/work/shared/reference/fluent-api.md`. Written to avoid the TypeScript SDK's failures
(`connector-pitfalls.md` §2): every request has a timeout; 429 is retried after `Retry-After`; paging never
stops quietly; page counts equal HTTP calls; secrets and tokens never reach logs, errors or `repr`.

Retry policy (one small loop in `FluentClient._request`, not tenacity: the decision depends on the status,
on whether the call is safe to repeat, on `Retry-After`, and a 401 re-auth must not use up a retry — as
tenacity callbacks that would be harder to read than the loop):

| outcome                                   | safe to repeat (queries, GETs, tokens) | not safe (mutations, job/batch/event POSTs) |
|-------------------------------------------|----------------------------------------|---------------------------------------------|
| connect error / connect or pool timeout   | retry with backoff                     | retry with backoff (nothing was sent)       |
| 429                                       | wait `Retry-After` (capped), retry     | same: the server refused without acting     |
| 401                                       | one fresh token, one re-send           | same: the server refused without acting     |
| 5xx, read timeout, dropped connection     | retry with backoff                     | raise at once, flagged "may have been processed" |
| retryable GraphQL error (C0011E, S…, T…)  | retry with backoff                     | raise / return partial (aliases may have run) |
| other 4xx, non-retryable GraphQL error    | raise                                  | raise                                       |
| GraphQL validation error (query typo)     | raise: never retryable                 | raise                                       |

Backoff is exponential with "equal jitter": `min(backoff_max, backoff_base * 2**(n-1))` scaled by a random
factor in [0.5, 1), so a burst of clients spreads out but every retry still waits at least half the step.
At most `max_retries` retries per call; the final error carries status, body excerpt and attempt count.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlparse

import orjson

from fc_assets.resources.fluent_errors import (
    FluentAuthError,
    FluentBatchTimeout,
    FluentCancelled,
    FluentError,
    FluentGraphQLError,
    FluentHTTPError,
    FluentJobClosedError,
    FluentPagingError,
    FluentRateLimited,
    FluentTimeoutError,
    FluentTransportError,
    FluentValidationError,
)

if TYPE_CHECKING:  # httpx (~0.3 s) and graphql-core are imported when a client is made, not at load
    import httpx

    from fc_assets.resources.fluent_resource import FluentResource

__all__ = [
    "ClientStats",
    "DecodedPage",
    "FluentAuthError",
    "FluentBatchTimeout",
    "FluentCancelled",
    "FluentClient",
    "FluentError",
    "FluentGraphQLError",
    "FluentHTTPError",
    "FluentJobClosedError",
    "FluentPagingError",
    "FluentRateLimited",
    "FluentResource",
    "FluentTimeoutError",
    "FluentTransportError",
    "FluentValidationError",
    "GraphQLResult",
    "Page",
]

logger = logging.getLogger("fc_assets.fluent")

API = "/api/v4.1"
TOKEN_PATH = "/oauth/token"
MAX_BATCH_ENTITIES = 5000
BATCH_ACTIONS = ("UPSERT",)
BATCH_ENTITY_TYPES = ("INVENTORY",)
BATCH_STATUSES = ("PENDING", "RUNNING", "COMPLETE")
TOKEN_REFRESH_BUFFER_S = 60.0
BODY_EXCERPT_CHARS = 500

T = TypeVar("T")


@dataclass(frozen=True)
class SerializedEntities:
    """A batch's entities already serialised as a JSON array (e.g. built by Arrow, see
    ingestion/deliver/inventory_json.py), with their count: `send_batch` posts the bytes as they are instead
    of checking and serialising thousands of dicts on the thread that waits on the requests."""

    json: bytes
    count: int

    def __len__(self) -> int:
        return self.count


@dataclass
class ClientStats:
    """Counters for run metadata. `pages` counts logical page requests, `retries` the extra attempts."""

    requests: int = 0  # HTTP requests sent, every attempt, token requests included
    retries: int = 0  # re-sends after 429 / 5xx / transport errors / retryable GraphQL errors
    reauths: int = 0  # 401s answered by a fresh token and one re-send
    token_requests: int = 0
    pages: int = 0  # pages fetched by paginate/search_events: one per page, retries excluded
    wait_seconds: float = 0.0  # time slept before retries (backoff and Retry-After)

    def as_metadata(self) -> dict[str, int | float]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}

    def minus(self, before: ClientStats) -> ClientStats:
        """The counts accumulated since the `before` snapshot (see `FluentClient.stats_snapshot`)."""
        return ClientStats(**{k: getattr(self, k) - v for k, v in asdict(before).items()})


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a connection: its 1-based number, nodes, raw edges and paging state."""

    number: int
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    has_next_page: bool
    end_cursor: str | None


@dataclass(frozen=True, slots=True)
class DecodedPage:
    """A page read by the caller's `decode` (see `paginate`) instead of into dicts: `nodes` is the caller's
    object (its `len` is the number of edges); the paging state is what `_page_of` would have read."""

    number: int
    nodes: Any
    has_next_page: bool
    end_cursor: str | None


@dataclass(frozen=True)
class GraphQLResult:
    """The answer in partial mode: data (possibly partial or None) and the errors that came with it."""

    data: dict[str, Any] | None
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def error(self) -> FluentGraphQLError | None:
        """The errors as a classified `FluentGraphQLError` (codes, retryable), or None when there are none."""
        return FluentGraphQLError(self.errors, data=self.data) if self.errors else None


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    refresh_at: float  # time.monotonic() after which the token is renewed before use
    refresh_token: str | None


class _RetryableAnswer(Exception):  # noqa: N818 - internal control flow, never escapes the client
    """Raised by a response handler when the answer says "try again" (e.g. GraphQL C0011E)."""

    def __init__(self, error: FluentError, delay: float | None = None) -> None:
        self.error = error
        self.delay = delay


class FluentClient:
    """Synchronous Fluent API client over one `httpx.Client` (connection pool, keep-alive).

    Safe to share across threads (e.g. one thread per `updatedOn` sub-window): httpx's pool is thread-safe,
    the token is renewed by one thread at a time (single-flight under a lock), stats updates are locked.

    Auth: `password` grant when `username` is set, else `client_credentials`. The token is renewed shortly
    before `expires_in` runs out (60 s, or a tenth of the lifetime for short-lived tokens); when the last
    token response carried a `refresh_token` that grant is tried first (it is single-use and rotated), and
    on any failure the configured grant is used. A 401 from the API triggers one re-auth and one re-send.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        username: str | None = None,
        password: str | None = None,
        retailer_id: str = "1",
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 120.0,
        page_size: int = 100,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise FluentValidationError(f"base_url must be http(s)://host[:port][/path], got {base_url!r}")
        if not client_id or not client_secret:
            raise FluentValidationError("client_id and client_secret are required")
        if username and not password:
            raise FluentValidationError("password is required when username is set")
        if page_size < 1:
            raise FluentValidationError("page_size must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.client_id = client_id
        self.retailer_id = str(retailer_id)
        self.username = username or None
        self.max_retries = max(0, int(max_retries))
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.page_size = page_size
        self.grant_type = "password" if self.username else "client_credentials"
        self.stats = ClientStats()
        self._client_secret = client_secret
        self._password = password or None
        self._secrets = frozenset(s for s in (client_secret, password) if s)  # replaced whole, never mutated
        self._token: _Token | None = None
        self._token_lock = threading.Lock()
        self._early_auth: threading.Thread | None = None  # see `authenticate_early`
        self._early_auth_error: Exception | None = None
        self._closing = threading.Event()  # ends an early token request's wait before a retry
        self._stats_lock = threading.Lock()
        import httpx

        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            headers={"User-Agent": "fc-assets", "Accept": "application/json"},
            transport=transport,
        )

    # ----------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> FluentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()
        self._http.close()

    def __repr__(self) -> str:
        return (
            f"FluentClient(base_url={self.base_url!r}, client_id={self.client_id!r}, "
            f"grant={self.grant_type!r}, retailer_id={self.retailer_id!r})"
        )

    def stats_snapshot(self) -> ClientStats:
        with self._stats_lock:
            return replace(self.stats)

    # ------------------------------------------------------------------------------------------- GraphQL

    def graphql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        partial: bool = False,
        cancel: threading.Event | None = None,
    ) -> dict[str, Any] | GraphQLResult:
        """Run one GraphQL operation.

        Throw mode (default): returns `data`; any `errors` raise `FluentGraphQLError` (codes, classification,
        partial data attached). `partial=True`: returns `GraphQLResult(data, errors)` instead of raising for
        GraphQL errors (HTTP and auth failures still raise), e.g. for alias-batched mutations.
        Queries are retried on retryable GraphQL errors (rate limit `C0011E`, `S…`/`T…` codes) like on 5xx;
        mutations are not, since some aliases of the request may already have been applied.
        `cancel` (set by the caller, e.g. when another stream of an extraction failed) ends a wait before a
        retry at once with `FluentCancelled`.
        """
        try:
            answer = self._send_graphql(query, variables, self._graphql_answer, cancel)
        except FluentGraphQLError as exc:
            if partial:
                return GraphQLResult(exc.data, exc.errors)
            raise
        data = answer.get("data") or {}
        return GraphQLResult(data, []) if partial else data

    def _send_graphql(
        self,
        query: str,
        variables: dict[str, Any] | None,
        handle: Callable[[httpx.Response], T],
        cancel: threading.Event | None,
    ) -> T:
        from fc_assets.resources.fluent_query import parse_operation

        op = parse_operation(query)
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return self._request(
            "POST", "/graphql", json=body, idempotent=not op.is_mutation, handle=handle, cancel=cancel
        )

    def _decoded_answer(
        self, resp: httpx.Response, decode: Callable[[bytes], DecodedPage | None]
    ) -> DecodedPage | dict[str, Any]:
        """The page as `decode` reads the body, or (when it does not, or the status is an error) the body
        as `graphql` reads it, raising the same errors."""
        if resp.status_code < 400:
            page = decode(resp.content)
            if page is not None:
                return page
        return self._graphql_answer(resp)

    def _graphql_answer(self, resp: httpx.Response) -> dict[str, Any]:
        body = self._parse_json(resp, require=False)
        errors = body.get("errors") if isinstance(body, dict) else None
        if errors:
            errors = errors if isinstance(errors, list) else [errors]
            errors = [e if isinstance(e, dict) else {"message": str(e)} for e in errors]
            first = self._redact(str(errors[0].get("message")))
            err = FluentGraphQLError(
                errors, data=body.get("data"), status=resp.status_code, message_text=first
            )
            if err.retryable and resp.status_code < 400:
                raise _RetryableAnswer(err, _retry_hint(errors))
            raise err
        if resp.status_code >= 400 or not isinstance(body, dict):
            raise self._http_error(resp)
        return body

    def paginate(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        connection_path: str | None = None,
        page_size: int | None = None,
        cancel: threading.Event | None = None,
        decode: Callable[[bytes], DecodedPage | None] | None = None,
    ) -> Iterator[Page | DecodedPage]:
        """Yield every page of one Relay connection of `query`, following edge cursors until the end.

        The connection is the one at `connection_path` (dot path of response keys under `data`, e.g.
        `orders` or `virtualCatalogue.virtualPositions`), else the first one in the query. Its `after:` and
        `first:` variables are read from the query itself, whatever their names; `first` is set to
        `page_size` (default: the client's) unless the caller set it. Other connections in the query are
        never paged. There is no record or page cap: the iterator ends only when `hasNextPage` is false,
        and raises `FluentPagingError` when it cannot continue safely (no cursor, a cursor already used,
        `hasNextPage` true on an empty page, a malformed or null connection). Pages are not de-duplicated.
        `cancel`: see `graphql`. `decode`: reads a successful body into a `DecodedPage` without dicts (e.g.
        `json_pages.PageDecoder`), or returns None to have it read as usual; the checks here are the same.
        """
        from fc_assets.resources.fluent_query import connection_plan

        plan = connection_plan(query, connection_path)
        vars_ = dict(variables or {})
        if plan.first_var is None:
            if page_size is not None and page_size != plan.first_literal:
                raise FluentValidationError(
                    f"query fixes first: {plan.first_literal}; page_size={page_size} cannot apply"
                )
        elif vars_.get(plan.first_var) is None:
            vars_[plan.first_var] = page_size or self.page_size
        cursor: str | None = vars_.get(plan.after_var)
        used = {cursor} if cursor else set()
        number = 0
        while True:
            number += 1
            vars_[plan.after_var] = cursor
            if decode is None:
                answer: DecodedPage | dict[str, Any] = self.graphql(query, vars_, cancel=cancel)
            else:
                answer = self._send_graphql(
                    query, vars_, lambda resp: self._decoded_answer(resp, decode), cancel
                )
                if not isinstance(answer, DecodedPage):
                    answer = answer.get("data") or {}
            self._count(pages=1)
            page = (
                replace(answer, number=number)
                if isinstance(answer, DecodedPage)
                else _page_of(answer, plan.path, number)
            )
            if page.has_next_page:
                if not page.nodes:  # _page_of: one node per edge
                    raise FluentPagingError(
                        "hasNextPage is true but the page has no edges", page=number, path=plan.dotted
                    )
                if not page.end_cursor:
                    raise FluentPagingError(
                        "hasNextPage is true but the last edge has no cursor", page=number, path=plan.dotted
                    )
                if page.end_cursor in used:
                    raise FluentPagingError(
                        "cursor did not advance (the server returned a cursor already used)",
                        page=number,
                        path=plan.dotted,
                    )
            yield page
            if not page.has_next_page:
                return
            cursor = page.end_cursor
            used.add(cursor)

    def iter_nodes(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        connection_path: str | None = None,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The nodes of every page of `paginate` (same arguments, same guarantees)."""
        for page in self.paginate(query, variables, connection_path=connection_path, page_size=page_size):
            yield from page.nodes

    # ------------------------------------------------------------------------------------ Job / Batch API

    def create_job(
        self, name: str, *, meta: dict[str, Any] | None = None, retailer_id: str | None = None
    ) -> str:
        """Create a batch job and return its id. Not retried after it may have reached the server (a
        repeat would create a second job); on `FluentTimeoutError`/`FluentHTTPError` with
        `request_may_have_been_processed`, the orphan job is harmless: create another one."""
        body: dict[str, Any] = {"name": name, "retailerId": str(retailer_id or self.retailer_id)}
        if meta is not None:
            body["meta"] = meta
        answer = self._request("POST", f"{API}/job", json=body, idempotent=False, handle=self._json_answer)
        return _id_of(answer, "id", "job creation")

    def get_job(self, job_id: str) -> dict[str, Any]:
        """The job body (`status` OPEN/CLOSED, its batches)."""
        return self._request("GET", f"{API}/job/{job_id}", idempotent=True, handle=self._json_answer)

    def send_batch(
        self,
        job_id: str,
        entities: list[dict[str, Any]] | SerializedEntities,
        *,
        action: str = "UPSERT",
        entity_type: str = "INVENTORY",
        **batch_fields: Any,
    ) -> str:
        """Send one batch (1..5000 entities) to an open job; return the batch id.

        `entities` are dicts, or `SerializedEntities` posted as they are (the caller vouches for their JSON;
        only their count and outer shape are checked). Validated client-side first (`FluentValidationError`). `batch_fields` are Fluent's optional batch
        fields (`source`, `event`, `catalogueRef`, `conditions`). A 4xx answer to a job whose `status` is
        then CLOSED raises `FluentJobClosedError` (create a new job and resend), any other 4xx a plain
        `FluentHTTPError`. Not retried once it may have been sent — Fluent has no idempotency key, so a
        repeat could apply the batch twice; on an error with `request_may_have_been_processed` (5xx, read
        timeout, dropped connection) reconcile through `get_job(job_id)` (its batch list) before resending.
        """
        if action not in BATCH_ACTIONS:
            raise FluentValidationError(f"batch action must be one of {BATCH_ACTIONS}, got {action!r}")
        if entity_type not in BATCH_ENTITY_TYPES:
            raise FluentValidationError(
                f"batch entityType must be one of {BATCH_ENTITY_TYPES}, got {entity_type!r}"
            )
        if not 1 <= len(entities) <= MAX_BATCH_ENTITIES:
            raise FluentValidationError(
                f"a batch holds 1..{MAX_BATCH_ENTITIES} entities, got {len(entities)}"
            )
        head = {"action": action, "entityType": entity_type, **batch_fields}
        if isinstance(entities, SerializedEntities):
            if not (entities.json.startswith(b"[{") and entities.json.endswith(b"}]")):
                raise FluentValidationError("serialised batch entities must be a JSON array of objects")
            # the body orjson.dumps({**head, "entities": [...]}) writes, with the array spliced in as is
            content = orjson.dumps(head)[:-1] + b',"entities":' + entities.json + b"}"
        else:
            if not all(isinstance(e, dict) for e in entities):
                raise FluentValidationError("batch entities must be JSON objects")
            content = orjson.dumps({**head, "entities": entities})
        try:
            answer = self._request(
                "POST",
                f"{API}/job/{job_id}/batch",
                content=content,
                idempotent=False,
                handle=self._json_answer,
            )
        except FluentHTTPError as exc:
            if 400 <= exc.status < 500 and exc.status not in (401, 429) and self._job_closed(job_id):
                raise FluentJobClosedError(job_id, exc) from None
            raise
        return _id_of(answer, "id", "batch creation")

    def _job_closed(self, job_id: str) -> bool:
        """Whether a refused batch was refused because its job is CLOSED, by the job's own `status` (Fluent
        documents no error code or message for it; a message merely containing "closed" proves nothing)."""
        try:
            return self.get_job(job_id).get("status") == "CLOSED"
        except FluentError as exc:
            logger.warning("could not read job %s to tell whether it is closed: %s", job_id, exc)
            return False

    def get_batch(self, job_id: str, batch_id: str) -> dict[str, Any]:
        """The batch body (`status` PENDING/RUNNING/COMPLETE, per-entity `results`)."""
        return self._request(
            "GET", f"{API}/job/{job_id}/batch/{batch_id}", idempotent=True, handle=self._json_answer
        )

    def wait_for_batch(
        self,
        job_id: str,
        batch_id: str,
        *,
        timeout: float = 300,
        poll_initial: float = 0.2,
        poll_max: float = 5,
    ) -> dict[str, Any]:
        """Poll the batch (not the job: jobs never become COMPLETE) until COMPLETE; return that body.

        COMPLETE means processed, with or without per-entity errors — read them from the returned body.
        Polls back off from `poll_initial` doubling to `poll_max`; raises `FluentBatchTimeout` after `timeout`.
        """
        started = time.monotonic()
        interval = poll_initial
        while True:
            batch = self.get_batch(job_id, batch_id)
            status = batch.get("status")
            if status == "COMPLETE":
                return batch
            if status not in BATCH_STATUSES:
                raise FluentError(f"batch {batch_id} of job {job_id} has unexpected status {status!r}")
            waited = time.monotonic() - started
            if waited >= timeout:
                raise FluentBatchTimeout(job_id, batch_id, status, waited)
            time.sleep(min(interval, timeout - waited))
            interval = min(interval * 2, poll_max)

    # ------------------------------------------------------------------------------------------ Event API

    def post_event(
        self, event: dict[str, Any], *, mode: Literal["async", "sync"] = "async"
    ) -> dict[str, Any]:
        """Post one event (`retailerId` filled from the client when absent); return the answer body.

        Not retried once it may have been sent (a repeat would run the workflow twice); on
        `request_may_have_been_processed` errors look the event up with `search_events` before resending.
        """
        if mode not in ("async", "sync"):
            raise FluentValidationError(f"event mode must be 'async' or 'sync', got {mode!r}")
        if not event.get("name"):
            raise FluentValidationError("an event needs a name")
        body = {**event, "retailerId": str(event.get("retailerId") or self.retailer_id)}
        return self._request(
            "POST", f"{API}/event/{mode}", json=body, idempotent=False, handle=self._json_answer
        )

    def search_events(self, **params: Any) -> Iterator[dict[str, Any]]:
        """Yield every event matching the filters of `GET /api/v4.1/event`, paging `start`/`count`/`hasMore`.

        Filters are Fluent's query parameters (`name`, `from_` for `from`, `to`, `eventStatus`, ...); dotted
        ones as `context={"entityRef": "X"}` or `**{"context.entityRef": "X"}`. None values are dropped.
        `count` defaults to the client's page size. Fluent searches only the last 30 days unless `from` is set.
        """
        context = params.pop("context", None) or {}
        if "from_" in params:
            params["from"] = params.pop("from_")
        query = {k: v for k, v in params.items() if v is not None and v != ""}
        query.update({f"context.{k}": v for k, v in context.items() if v is not None})
        start = int(query.pop("start", 0))
        count = int(query.pop("count", self.page_size))
        number = 0
        while True:
            number += 1
            body = self._request(
                "GET",
                f"{API}/event",
                params={**query, "start": start, "count": count},
                idempotent=True,
                handle=self._json_answer,
            )
            self._count(pages=1)
            results = body.get("results") or []
            yield from results
            if not body.get("hasMore"):
                return
            if not results:
                raise FluentPagingError(
                    "hasMore is true but the page has no results", page=number, path="event"
                )
            start += len(results)

    # -------------------------------------------------------------------------------------------- auth

    def authenticate_early(self) -> None:
        """Start obtaining the access token now, in a background thread, unless one is held.

        A fresh client cannot send its first request before a token round trip; started when the client is
        opened, that round trip overlaps what the caller does before its first request (imports, lake
        housekeeping, planning a run) instead of delaying it. The first call that needs the token waits for
        this attempt (single flight under the token lock: nothing is requested twice) and uses its token, or
        raises its error (once; a later call tries again). Renewal before expiry and after a 401 are unchanged.
        """
        if not self._token_lock.acquire(blocking=False):
            return  # a token is being obtained right now
        try:
            token = self._token
            if token is not None and time.monotonic() < token.refresh_at:
                return
            if self._early_auth is not None and self._early_auth.is_alive():
                return
            self._early_auth = threading.Thread(target=self._authenticate, name="fluent-token", daemon=True)
            self._early_auth.start()  # it takes the lock once this method has let it go
        finally:
            self._token_lock.release()

    def _authenticate(self) -> None:
        with self._token_lock:
            token = self._token
            if token is not None and time.monotonic() < token.refresh_at:
                return  # a caller got one first
            try:
                self._token = self._obtain_token(token.refresh_token if token else None, self._closing)
            except Exception as exc:  # for the first caller that needs the token (`_access_token`)
                self._early_auth_error = exc

    def _access_token(self) -> str:
        token = self._token
        if token is not None and time.monotonic() < token.refresh_at:
            return token.value
        with self._token_lock:  # single flight: threads waiting here reuse the token the first one got
            token = self._token
            if token is not None and time.monotonic() < token.refresh_at:
                return token.value
            if self._early_auth_error is not None:  # `authenticate_early` failed: its error, once
                error, self._early_auth_error = self._early_auth_error, None
                raise error
            self._token = self._obtain_token(token.refresh_token if token else None)
            return self._token.value

    def _invalidate(self, rejected: str) -> None:
        """Forget a token the API rejected (unless another thread already replaced it); keep the refresh token."""
        with self._token_lock:
            if self._token is not None and self._token.value == rejected:
                self._token = replace(self._token, refresh_at=0.0)

    def _obtain_token(self, refresh_token: str | None, cancel: threading.Event | None = None) -> _Token:
        if refresh_token:
            try:
                return self._token_request(
                    {"grant_type": "refresh_token", "refresh_token": refresh_token}, cancel
                )
            except FluentError as exc:
                logger.warning(
                    "refresh_token grant failed (%s); falling back to the %s grant",
                    type(exc).__name__,
                    self.grant_type,
                )
        form = {"grant_type": self.grant_type, "scope": "api"}
        if self.username:
            form |= {"username": self.username, "password": self._password or ""}
        return self._token_request(form, cancel)

    def _token_request(self, form: dict[str, str], cancel: threading.Event | None = None) -> _Token:
        form = {**form, "client_id": self.client_id, "client_secret": self._client_secret}
        self._count(token_requests=1)
        body = self._request(
            "POST",
            TOKEN_PATH,
            data=form,
            auth=False,
            idempotent=True,
            handle=lambda r: self._token_answer(r, form["grant_type"]),
            cancel=cancel,
        )
        value = body.get("access_token")
        if not isinstance(value, str) or not value:
            raise FluentAuthError(f"token response ({form['grant_type']} grant) has no access_token")
        lifetime = float(body.get("expires_in") or 3600)
        refresh = body.get("refresh_token") or None
        self._secrets = self._secrets | {s for s in (value, refresh) if s}
        buffer = min(TOKEN_REFRESH_BUFFER_S, lifetime / 10)
        logger.debug(
            "token obtained with the %s grant; expires in %.0f s%s",
            form["grant_type"],
            lifetime,
            ", refresh token held" if refresh else "",
        )
        return _Token(value, time.monotonic() + lifetime - buffer, refresh)

    def _token_answer(self, resp: httpx.Response, grant: str) -> dict[str, Any]:
        if resp.is_success:
            return self._parse_json(resp)
        try:
            body = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            body = {}
        error = body.get("error") if isinstance(body, dict) else None
        desc = body.get("error_description") if isinstance(body, dict) else None
        detail = self._redact(f"{error or ''} {desc or ''}".strip() or self._excerpt(resp))
        raise FluentAuthError(
            f"token request ({grant} grant) refused: HTTP {resp.status_code} {detail}",
            status=resp.status_code,
            error=error,
        )

    # ------------------------------------------------------------------------------------ HTTP and retries

    def _request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        handle: Callable[[httpx.Response], T],
        json: Any = None,
        content: bytes | None = None,
        data: dict[str, str] | None = None,
        params: dict[str, Any] | None = None,
        auth: bool = True,
        cancel: threading.Event | None = None,
    ) -> T:
        """Send one logical request with the retry policy of the module docstring; `handle` reads the answer."""
        import httpx

        if json is not None:
            content = orjson.dumps(json)
        headers = {"Content-Type": "application/json"} if content is not None else {}
        retries = 0
        reauthed = False
        while True:
            token = None
            if auth:
                token = self._access_token()
                headers["Authorization"] = f"Bearer {token}"
            attempt = retries + 1
            started = time.perf_counter()
            try:
                resp = self._http.request(
                    method, path, content=content, data=data, params=params, headers=headers
                )
            except httpx.TransportError as exc:
                self._count(requests=1)
                sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
                reason = f"{type(exc).__name__}: {self._redact(str(exc)) or 'no detail'}"
                logger.debug(
                    "%s %s -> %s in %.1f ms",
                    method,
                    path,
                    type(exc).__name__,
                    (time.perf_counter() - started) * 1000,
                )
                if (idempotent or not sent) and retries < self.max_retries:
                    retries += 1
                    self._wait(self._backoff(retries), method, path, reason, retries, cancel)
                    continue
                err_cls = (
                    FluentTimeoutError if isinstance(exc, httpx.TimeoutException) else FluentTransportError
                )
                raise err_cls(method, path, reason, request_sent=sent, attempts=attempt) from exc
            self._count(requests=1)
            status = resp.status_code
            logger.debug(
                "%s %s -> %d in %.1f ms", method, path, status, (time.perf_counter() - started) * 1000
            )

            if status == 401 and auth:
                if not reauthed and token is not None:
                    reauthed = True
                    self._count(reauths=1)
                    logger.warning("%s %s -> 401; renewing the token and re-sending once", method, path)
                    self._invalidate(token)
                    continue
                raise FluentAuthError(
                    f"{method} {path} -> HTTP 401 after re-authenticating: {self._excerpt(resp)}", status=401
                )
            if status == 429:
                hint = _retry_after(resp)
                if retries < self.max_retries:
                    retries += 1
                    delay = min(hint, self.max_retry_after) if hint is not None else self._backoff(retries)
                    self._wait(delay, method, path, "HTTP 429", retries, cancel)
                    continue
                raise FluentRateLimited(method, path, self._excerpt(resp), retry_after=hint, attempts=attempt)
            if status >= 500:
                if idempotent and retries < self.max_retries:
                    retries += 1
                    self._wait(self._backoff(retries), method, path, f"HTTP {status}", retries, cancel)
                    continue
                raise self._http_error(resp, may_have_been_processed=not idempotent, attempts=attempt)
            try:
                return handle(resp)
            except _RetryableAnswer as answer:
                if idempotent and retries < self.max_retries:
                    retries += 1
                    delay = (
                        min(answer.delay, self.max_retry_after)
                        if answer.delay is not None
                        else self._backoff(retries)
                    )
                    self._wait(delay, method, path, str(answer.error), retries, cancel)
                    continue
                raise answer.error from None

    def _backoff(self, retry: int) -> float:
        return min(self.backoff_max, self.backoff_base * 2 ** (retry - 1)) * (0.5 + random.random() / 2)

    def _wait(
        self,
        seconds: float,
        method: str,
        path: str,
        reason: str,
        retry: int,
        cancel: threading.Event | None = None,
    ) -> None:
        logger.warning(
            "%s %s: %s; retry %d/%d in %.2f s", method, path, reason, retry, self.max_retries, seconds
        )
        self._count(retries=1, wait_seconds=seconds)
        if cancel is None:
            time.sleep(seconds)
        elif cancel.wait(seconds):
            raise FluentCancelled(f"{method} {path}: cancelled while waiting to retry ({reason})")

    def _count(self, **deltas: float) -> None:
        with self._stats_lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def _json_answer(self, resp: httpx.Response) -> dict[str, Any]:
        if not resp.is_success:
            raise self._http_error(resp)
        return self._parse_json(resp)

    def _parse_json(self, resp: httpx.Response, *, require: bool = True) -> Any:
        if not resp.content:
            return {}
        try:
            return orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            if not require and not resp.is_success:
                return None
            raise FluentHTTPError(
                resp.request.method,
                resp.request.url.path,
                resp.status_code,
                "response is not JSON: " + self._excerpt(resp),
            ) from None

    def _http_error(
        self, resp: httpx.Response, *, may_have_been_processed: bool = False, attempts: int = 1
    ) -> FluentHTTPError:
        return FluentHTTPError(
            resp.request.method,
            resp.request.url.path,
            resp.status_code,
            self._excerpt(resp),
            request_may_have_been_processed=may_have_been_processed,
            attempts=attempts,
        )

    def _excerpt(self, resp: httpx.Response) -> str:
        return self._redact(resp.content[:BODY_EXCERPT_CHARS].decode("utf-8", "replace"))

    def _redact(self, text: str) -> str:
        """Replace every credential and token this client knows with `***` (defence in depth)."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


def _retry_after(resp: httpx.Response) -> float | None:
    """`Retry-After` in seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _retry_hint(errors: list[Any]) -> float | None:
    """A retry delay the server put in a GraphQL error's extensions (`retryAfter`), if any."""
    for error in errors:
        ext = error.get("extensions") if isinstance(error, dict) else None
        if isinstance(ext, dict):
            for key in ("retryAfter", "retry_after", "retryAfterSeconds"):
                if isinstance(ext.get(key), int | float):
                    return float(ext[key])
    return None


def _id_of(body: Any, key: str, what: str) -> str:
    value = body.get(key) if isinstance(body, dict) else None
    if value in (None, ""):
        raise FluentError(f"{what} answered without {key!r}")
    return str(value)


def _page_of(data: dict[str, Any], path: tuple[str, ...], number: int) -> Page:
    """Read the connection at `path` of `data` into a Page; malformed connections raise, never end paging."""
    dotted = ".".join(path)
    conn: Any = data
    for i, key in enumerate(path):
        if not isinstance(conn, dict) or conn.get(key) is None:
            raise FluentPagingError(
                f"no connection in the answer: {'.'.join(path[: i + 1])!r} is null or missing",
                page=number,
                path=dotted,
            )
        conn = conn[key]
    if not isinstance(conn, dict):
        raise FluentPagingError("the connection is not an object", page=number, path=dotted)
    has_next = (conn.get("pageInfo") or {}).get("hasNextPage")
    if not isinstance(has_next, bool):
        raise FluentPagingError(
            f"pageInfo.hasNextPage is {has_next!r}, not a boolean", page=number, path=dotted
        )
    edges = conn.get("edges")
    if not isinstance(edges, list):
        raise FluentPagingError("edges is not a list", page=number, path=dotted)
    nodes = []
    for edge in edges:
        if not isinstance(edge, dict) or edge.get("node") is None:
            raise FluentPagingError("an edge has no node", page=number, path=dotted)
        nodes.append(edge["node"])
    end_cursor = edges[-1].get("cursor") if edges else None
    return Page(number, nodes, edges, has_next, end_cursor)


def __getattr__(name: str) -> type[FluentResource]:
    """`FluentResource` lives in fluent_resource.py so that using the client does not import dagster."""
    if name == "FluentResource":
        from fc_assets.resources.fluent_resource import FluentResource

        return FluentResource
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
