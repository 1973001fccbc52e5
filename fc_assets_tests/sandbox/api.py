"""A thin HTTP client for the sandbox tests: what any Fluent client does, nothing more."""

from __future__ import annotations

from typing import Any

import httpx

CLIENT = {"client_id": "fc-sandbox", "client_secret": "fc-sandbox-secret"}


def get_token(base_url: str, **params: str) -> httpx.Response:
    return httpx.post(
        f"{base_url}/oauth/token", data={"grant_type": "client_credentials", **CLIENT, **params}
    )


class Api:
    """An httpx client with a bearer token (client_credentials) for one sandbox."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = httpx.Client(base_url=base_url, timeout=30)
        self.token = get_token(base_url).json()["access_token"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.post(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def gql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The response body of POST /graphql (asserts HTTP 200)."""
        r = self.post("/graphql", json={"query": query, **({"variables": variables} if variables else {})})
        assert r.status_code == 200, r.text
        return r.json()

    def data(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = self.gql(query, variables)
        assert "errors" not in body, body["errors"]
        return body["data"]

    def crawl(
        self,
        field: str,
        selection: str,
        args: str = "",
        variables: dict[str, Any] | None = None,
        first: int = 100,
        decl: str = "",
    ) -> list[dict[str, Any]]:
        """Every node of a connection, paged with first/after like a client would."""
        nodes: list[dict[str, Any]] = []
        after = None
        query = (
            f"query($first: Int, $after: String{decl}) {{ {field}(first: $first, after: $after{args}) "
            f"{{ edges {{ cursor node {{ {selection} }} }} pageInfo {{ hasNextPage hasPreviousPage }} }} }}"
        )
        for _ in range(10_000):
            conn = self.data(query, {"first": first, "after": after, **(variables or {})})[field]
            nodes.extend(e["node"] for e in conn["edges"])
            if not conn["pageInfo"]["hasNextPage"]:
                return nodes
            assert conn["edges"][-1]["cursor"] != after, "cursor did not advance"
            after = conn["edges"][-1]["cursor"]
        raise AssertionError("too many pages")

    def close(self) -> None:
        self.http.close()
