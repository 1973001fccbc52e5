"""An in-memory Fluent for unit tests of the client, served through `httpx.MockTransport`.

It issues and checks bearer tokens, serves a GraphQL connection of N nodes with keyset cursors, and lets a
test script the next answers of any path (a status, a body, headers, or an httpx exception to raise).
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx

from fc_assets.resources.fluent import FluentClient

SECRET = "s3cr3t-client-secret"
PASSWORD = "pa55word-xyz"


class MockFluent:
    def __init__(self, *, expires_in: float = 3600, refresh_tokens: bool = False) -> None:
        self.expires_in = expires_in
        self.refresh_tokens = refresh_tokens
        self.requests: list[httpx.Request] = []
        self.token_forms: list[dict[str, str]] = []
        self.valid_tokens: set[str] = set()
        self.valid_refresh: set[str] = set()
        self.script: dict[str, deque[Any]] = defaultdict(deque)
        self.graphql: Callable[[dict[str, Any]], dict[str, Any]] = lambda body: {"data": {"me": {"ref": "u"}}}
        self.rest: Callable[[httpx.Request], httpx.Response] = lambda req: httpx.Response(200, json={})
        self._n = itertools.count(1)

    def then(self, path: str, *answers: Any) -> MockFluent:
        """Queue answers for `path`: an int status, (status, body[, headers]), or an exception instance."""
        self.script[path].extend(answers)
        return self

    def calls(self, path: str) -> int:
        return sum(1 for r in self.requests if r.url.path == path)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        queued = self.script.get(request.url.path)
        if queued:
            answer = queued.popleft()
            if isinstance(answer, Exception):
                raise answer
            if isinstance(answer, int):
                return httpx.Response(answer, json={"message": f"scripted {answer}"})
            status, body, *headers = answer
            return httpx.Response(status, json=body, headers=headers[0] if headers else None)
        if request.url.path == "/oauth/token":
            return self._token(request)
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.valid_tokens:
            return httpx.Response(401, json={"error": "invalid_token"})
        if request.url.path == "/graphql":
            return httpx.Response(200, json=self.graphql(json.loads(request.content)))
        return self.rest(request)

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = dict(parse_qsl(request.content.decode()))
        self.token_forms.append(form)
        if form.get("client_secret") != SECRET:
            return httpx.Response(
                401, json={"error": "invalid_client", "error_description": "Bad client credentials"}
            )
        if form["grant_type"] == "refresh_token":
            if form.get("refresh_token") not in self.valid_refresh:
                return httpx.Response(
                    400, json={"error": "invalid_grant", "error_description": "Invalid refresh token"}
                )
            self.valid_refresh.discard(form["refresh_token"])
        elif form["grant_type"] == "password" and form.get("password") != PASSWORD:
            return httpx.Response(
                400, json={"error": "invalid_grant", "error_description": "Bad credentials"}
            )
        n = next(self._n)
        token = f"access-token-{n:04d}-abcdef"
        self.valid_tokens.add(token)
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
            "scope": "api",
            "Retailer_id": 1,
        }
        if self.refresh_tokens:
            body["refresh_token"] = f"refresh-token-{n:04d}-xyz"
            self.valid_refresh.add(body["refresh_token"])
        return httpx.Response(200, json=body)

    def client(self, **kw: Any) -> FluentClient:
        opts: dict[str, Any] = {
            "backoff_base": 0.001,
            "backoff_max": 0.005,
            "max_retries": 3,
            "transport": httpx.MockTransport(self),
        }
        opts.update(kw)
        return FluentClient("http://fluent.test", "fc-test", SECRET, **opts)


def connection(nodes: list[dict[str, Any]], first: int, after: str | None) -> dict[str, Any]:
    """A Relay connection page over `nodes` with keyset cursors `c<index>`."""
    start = int(after[1:]) + 1 if after else 0
    chunk = nodes[start : start + first]
    return {
        "edges": [{"cursor": f"c{start + i}", "node": n} for i, n in enumerate(chunk)],
        "pageInfo": {"hasNextPage": start + first < len(nodes)},
    }
