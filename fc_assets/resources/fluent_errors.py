"""Errors raised by the Fluent client, and the classification of Fluent's GraphQL error codes.

Every error subclasses `FluentError`. Messages are built by the client from method, path, status and a
redacted excerpt of the response body; they never carry request bodies, credentials or tokens.

GraphQL codes follow Fluent's `<C|S|T><4 digits><E|W>` format. Fluent's docs do not say where the code
lives, so it is read from `extensions.code` first and from the message text second (as the TypeScript SDK
does). The classification table is the SDK's (`fluent-api.md` §2.3); unlike the SDK, the client acts on it:
queries whose errors are all retryable are retried (see `FluentClient.graphql`). Unlike the SDK, a GraphQL
validation error (graphql-java's `extensions.classification`, or a standard validation message) is never
retryable, and message keywords only count as whole phrases ("connection reset", not "OrderConnection").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

CODE_PATTERN = re.compile(r"\b([CST]\d{4}[EW])\b")
VALIDATION_CLASSIFICATIONS = frozenset({"ValidationError", "InvalidSyntax", "OperationNotSupported"})
"""graphql-java's `extensions.classification` values for a request that is wrong as sent."""
VALIDATION_MESSAGE = re.compile(
    r"Cannot query field|Unknown (argument|type|fragment|directive|operation)|Syntax Error|Invalid syntax|"
    r"Validation error|Variable ['\"]?\$\w+|Field ['\"]?\w+['\"]? (argument|of type)|must have a selection|"
    r"Expected (type|value)|is not defined by type",
    re.IGNORECASE,
)
"""graphql-js / graphql-java validation messages, for errors that carry no classification."""
TRANSIENT_MESSAGE = re.compile(
    r"\b(timeout|timed out|connection (reset|refused|closed|aborted|error|lost)|network error|"
    r"server error|internal error|temporarily unavailable|service unavailable)\b"
)
"""Message words that suggest a passing failure, for errors with neither code nor validation class. Whole
phrases only: a bare "connection" also matches `Cannot query field 'x' on type 'OrderConnection'`."""


class FluentError(Exception):
    """Base of every error the Fluent client raises."""


class FluentValidationError(FluentError, ValueError):
    """A request was refused client-side before anything was sent (bad batch, unparseable query...)."""


class FluentAuthError(FluentError):
    """The token endpoint refused the credentials, or the API still answered 401 after one re-auth."""

    def __init__(self, message: str, *, status: int | None = None, error: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class FluentHTTPError(FluentError):
    """A non-success HTTP answer that was not (or no longer) retried.

    `request_may_have_been_processed` is True for answers to calls that are not safe to repeat (5xx to a
    batch POST, say): the server may have acted on them, so the caller reconciles before sending again.
    """

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        body_excerpt: str,
        *,
        request_may_have_been_processed: bool = False,
        attempts: int = 1,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.body_excerpt = body_excerpt
        self.request_may_have_been_processed = request_may_have_been_processed
        self.attempts = attempts
        note = (
            " (not retried: the server may have processed it; reconcile before resending)"
            if request_may_have_been_processed
            else ""
        )
        super().__init__(
            f"{method} {path} -> HTTP {status} after {attempts} attempt(s){note}: {body_excerpt}"
        )


class FluentRateLimited(FluentHTTPError):
    """HTTP 429 answered more often than `max_retries` allows; `retry_after` is the server's last hint."""

    def __init__(
        self, method: str, path: str, body_excerpt: str, *, retry_after: float | None, attempts: int
    ) -> None:
        super().__init__(method, path, 429, body_excerpt, attempts=attempts)
        self.retry_after = retry_after


class FluentJobClosedError(FluentHTTPError):
    """A batch was sent to a job Fluent has closed (jobs close at midnight UTC): create a new job."""

    def __init__(self, job_id: str, error: FluentHTTPError) -> None:
        super().__init__(error.method, error.path, error.status, error.body_excerpt, attempts=error.attempts)
        self.job_id = job_id


class FluentTransportError(FluentError):
    """No HTTP answer: the connection failed or dropped.

    `request_sent` says whether the request may have reached the server: False for connect errors (safe to
    resend), True when the connection dropped after sending (a non-idempotent call may have taken effect).
    """

    def __init__(self, method: str, path: str, reason: str, *, request_sent: bool, attempts: int) -> None:
        self.method = method
        self.path = path
        self.reason = reason
        self.request_sent = request_sent
        self.attempts = attempts
        where = (
            "after the request was sent; the server may have processed it"
            if request_sent
            else "before the request was sent"
        )
        super().__init__(f"{method} {path}: {reason} ({where}) after {attempts} attempt(s)")


class FluentTimeoutError(FluentTransportError):
    """A request hit its connect/read/write timeout (every request has one) on its last allowed attempt."""


@dataclass(frozen=True)
class GraphQLErrorClass:
    """How one GraphQL error should be handled (Fluent SDK classification, `fluent-api.md` §2.3)."""

    code: str | None
    retryable: bool
    category: str
    action: str
    retry_delay: float | None = None


def error_code(error: dict[str, Any]) -> str | None:
    """Fluent's code of one GraphQL error: `extensions.code`, else a `C0011E`-like token in the message."""
    ext = error.get("extensions") or {}
    code = ext.get("code") if isinstance(ext, dict) else None
    if isinstance(code, str) and CODE_PATTERN.fullmatch(code):
        return code
    match = CODE_PATTERN.search(str(error.get("message") or ""))
    if match:
        return match.group(1)
    return code if isinstance(code, str) and code else None


def classify_graphql_error(error: dict[str, Any]) -> GraphQLErrorClass:
    """Classify one GraphQL error: a validation error (graphql-java's `extensions.classification`) is never
    retryable; then Fluent's code decides (the SDK's table); then a validation message; message keywords
    come last and never make a validation error retryable."""
    code = error_code(error)
    if classification_of(error) in VALIDATION_CLASSIFICATIONS:
        return GraphQLErrorClass(code, False, "VALIDATION_ERROR", "FIX_AND_RETRY")
    if code and CODE_PATTERN.fullmatch(code):
        kind, num = code[0], int(code[1:5])
        if kind == "C":
            if num in (3, 11):
                return GraphQLErrorClass(code, True, "CLIENT_ERROR", "RETRY_LATER", 60.0)
            if num == 20:
                return GraphQLErrorClass(code, False, "CLIENT_ERROR", "CONTACT_SUPPORT")
            if num in (122, 128) or num == 1 or 100 <= num <= 119 or 140 <= num <= 179:
                return GraphQLErrorClass(code, False, "CLIENT_ERROR", "FIX_AND_RETRY")
            return GraphQLErrorClass(code, False, "CLIENT_ERROR", "VERIFY_PAYLOAD")
        if kind == "S":
            if num in (2, 20):
                return GraphQLErrorClass(code, True, "SERVER_ERROR", "RETRY_LATER", 30.0)
            if 1 <= num <= 19 or num == 30:
                return GraphQLErrorClass(code, False, "SERVER_ERROR", "CONTACT_SUPPORT")
            if num == 40:
                return GraphQLErrorClass(code, True, "SERVER_ERROR", "RETRY_LATER", 10.0)
            return GraphQLErrorClass(code, True, "SERVER_ERROR", "RETRY_LATER", 30.0)
        return GraphQLErrorClass(code, True, "THIRD_PARTY_ERROR", "RETRY_LATER", 30.0)
    if VALIDATION_MESSAGE.search(str(error.get("message") or "")):
        return GraphQLErrorClass(code, False, "VALIDATION_ERROR", "FIX_AND_RETRY")
    msg = str(error.get("message") or "").lower()
    if any(w in msg for w in ("already exists", "duplicate")):
        return GraphQLErrorClass(code, False, "CLIENT_ERROR", "VERIFY_PAYLOAD")
    if any(w in msg for w in ("not found", "does not exist")):
        return GraphQLErrorClass(code, False, "CLIENT_ERROR", "VERIFY_PAYLOAD")
    if any(w in msg for w in ("required", "missing", "null value")):
        return GraphQLErrorClass(code, False, "CLIENT_ERROR", "FIX_AND_RETRY")
    if TRANSIENT_MESSAGE.search(msg):
        return GraphQLErrorClass(code, True, "SERVER_ERROR", "RETRY_LATER", 30.0)
    return GraphQLErrorClass(code, False, "UNKNOWN", "VERIFY_PAYLOAD")


def classification_of(error: dict[str, Any]) -> str | None:
    """graphql-java's `extensions.classification` (`ValidationError`, `InvalidSyntax`, `DataFetchingException`...)."""
    ext = error.get("extensions")
    value = ext.get("classification") if isinstance(ext, dict) else None
    return value if isinstance(value, str) else None


class FluentGraphQLError(FluentError):
    """GraphQL answered with `errors`. Carries them all, their codes, and the combined classification.

    `retryable` is True only when every error is retryable (the SDK's `classifyErrors` rule: the first
    non-retryable error decides). `data` is whatever partial data came with the errors.
    """

    def __init__(
        self,
        errors: list[dict[str, Any]],
        *,
        data: dict[str, Any] | None = None,
        status: int = 200,
        message_text: str | None = None,
    ) -> None:
        self.errors = errors
        self.data = data
        self.status = status
        self.classes = [classify_graphql_error(e) for e in errors]
        self.codes = [c.code for c in self.classes if c.code]
        blocking = next((c for c in self.classes if not c.retryable), None)
        self.classification = blocking or (
            self.classes[0] if self.classes else GraphQLErrorClass(None, False, "UNKNOWN", "VERIFY_PAYLOAD")
        )
        self.retryable = bool(self.classes) and blocking is None
        first = message_text if message_text is not None else str(errors[0].get("message")) if errors else ""
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        codes = f" [{', '.join(self.codes)}]" if self.codes else ""
        super().__init__(f"GraphQL error{codes}: {first}{more}")

    @property
    def code(self) -> str | None:
        return self.classification.code


class FluentPagingError(FluentError):
    """Paging cannot go on without losing records (no cursor, cursor not advancing, malformed page...).

    Raised instead of stopping quietly, so an extraction either covers its whole window or fails.
    """

    def __init__(self, message: str, *, page: int | None = None, path: str | None = None) -> None:
        self.page = page
        self.path = path
        where = f" (connection {path!r}" + (f", page {page})" if page else ")") if path else ""
        super().__init__(message + where)


class FluentCancelled(FluentError):
    """The caller cancelled a call while it waited to retry (another stream of the same run failed)."""


class FluentDataError(FluentError):
    """Fluent answered with data that cannot be stored (a timestamp Arrow cannot parse, a value of another
    type than its column's). Permanent: the same answer comes back on every attempt, so it is not retried."""


class FluentBatchTimeout(FluentError):
    """A batch did not reach COMPLETE within the wait; it may still complete later (poll `get_batch`)."""

    def __init__(self, job_id: str, batch_id: str, last_status: str | None, waited: float) -> None:
        self.job_id = job_id
        self.batch_id = batch_id
        self.last_status = last_status
        self.waited = waited
        super().__init__(f"batch {batch_id} of job {job_id} still {last_status} after {waited:.1f} s")
