"""`POST /oauth/token` and bearer-token checks, as Fluent's token endpoint behaves (fluent-api.md §1).

- Parameters from the query string and a form body are merged, the form wins.
- Grants: `client_credentials`, `password` (user `sandbox`/`sandbox` by default) and `refresh_token`
  (single use: a used or expired refresh token gives 400 `invalid_grant` "Invalid refresh token"; a
  successful refresh hands back a new one).
- Answer: `access_token` (opaque UUID), `token_type: "bearer"`, `expires_in`, `scope: "api"`,
  `Retailer_id` (number), `refresh_token`, and for the password grant `FirstName`/`LastName`.
- Errors `{error, error_description}`: bad client id/secret → 401 `invalid_client`; bad user/password →
  400 `invalid_grant` "Bad credentials"; missing/unknown grant → 400 `invalid_request`/`unsupported_grant_type`.
- Expiry uses wall-clock time (not the sandbox clock, which tests move across midnights); the
  `expire_tokens` fault expires every access and refresh token issued so far.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from fc_assets.sandbox.config import SandboxConfig


@dataclass
class Token:
    value: str
    user: dict[str, Any]
    expires_at: float  # wall-clock seconds


class TokenIssuer:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.access: dict[str, Token] = {}
        self.refresh: dict[str, Token] = {}

    def user(self, username: str | None) -> dict[str, Any]:
        """The `User` node `me` answers for the caller."""
        rid = str(self.config.retailer_id)
        name = username or self.config.client_id
        return {
            "id": "1" if username else "2",
            "ref": name,
            "username": name,
            "title": None,
            "firstName": "Sandbox",
            "lastName": "User" if username else "Integration",
            "primaryEmail": f"{name}@example.com",
            "primaryPhone": None,
            "type": "ADMIN" if username else "API",
            "status": "ACTIVE",
            "attributes": [],
            "department": None,
            "country": "AU",
            "timezone": "Australia/Sydney",
            "promotionOptIn": False,
            "primaryRetailer": None,
            "primaryLocation": None,
            "createdOn": None,
            "updatedOn": None,
            "_retailer_id": rid,
        }

    def grant(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) for the merged token request parameters."""
        c = self.config
        grant_type = params.get("grant_type")
        if not grant_type:
            return 400, error("invalid_request", "Missing grant type")
        if grant_type not in ("client_credentials", "password", "refresh_token"):
            return 400, error("unsupported_grant_type", f"Unsupported grant type: {grant_type}")
        if params.get("client_id") != c.client_id or params.get("client_secret") != c.client_secret:
            return 401, error("invalid_client", "Bad client credentials")
        username: str | None = None
        if grant_type == "password":
            if params.get("username") != c.username or params.get("password") != c.password:
                return 400, error("invalid_grant", "Bad credentials")
            username = c.username
        elif grant_type == "refresh_token":
            old = self.refresh.pop(params.get("refresh_token") or "", None)
            if old is None or old.expires_at <= time.time():
                return 400, error("invalid_grant", "Invalid refresh token")
            username = old.user["username"] if old.user["type"] == "ADMIN" else None
        user = self.user(username)
        now = time.time()
        access = Token(str(uuid.uuid4()), user, now + c.token_ttl_s)
        refresh = Token(str(uuid.uuid4()), user, now + max(c.token_ttl_s * 30, 86_400))
        self.access[access.value] = access
        self.refresh[refresh.value] = refresh
        body: dict[str, Any] = {
            "access_token": access.value,
            "token_type": "bearer",
            "expires_in": c.token_ttl_s,
            "scope": "api",
            "Retailer_id": c.retailer_id,
            "refresh_token": refresh.value,
        }
        if username:
            body |= {"FirstName": user["firstName"], "LastName": user["lastName"], "Roles": ["ADMIN"]}
        return 200, body

    def check(self, authorization: str | None) -> Token | None:
        """The live token of an `Authorization: Bearer <token>` header (any case of "bearer"), else None."""
        if not authorization:
            return None
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        token = self.access.get(value.strip())
        if token is None or token.expires_at <= time.time():
            return None
        return token

    def expire_all(self) -> None:
        now = time.time()
        for token in [*self.access.values(), *self.refresh.values()]:
            token.expires_at = min(token.expires_at, now)


def error(code: str, description: str) -> dict[str, str]:
    return {"error": code, "error_description": description}
