"""`FluentResource`: Fluent connection settings as a Dagster resource, handing out `FluentClient`s (fluent.py).

Its own module so that a script or the direct extraction using `FluentClient` does not import dagster (~0.8 s);
`from fc_assets.resources.fluent import FluentResource` still works (a module `__getattr__` there).
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from pydantic import Field

from fc_assets.resources.fluent import FluentClient
from fc_assets.resources.secret_masking import masked_repr_args
from fc_assets.settings import get_settings


def _resolved(value: str | None) -> str | None:
    """The value of an `EnvVar` field when the resource is used outside a Dagster run (scripts, CLI):
    Dagster resolves EnvVars only when it initialises the resource, and the bare object holds the name."""
    return value.get_value() if isinstance(value, dg.EnvVar) else (value or None)


class FluentResource(dg.ConfigurableResource):
    """Fluent connection settings as a Dagster resource; `get_client()` opens a `FluentClient`.

    Pass secrets as `dg.EnvVar` (see `from_env`) so they resolve at launch and show in the UI by name only.
    Use the client as a context manager: `with fluent.get_client() as client: ...`.
    """

    base_url: str = Field(description="Fluent API root, e.g. https://ACCOUNT.sandbox.api.fluentretail.com")
    client_id: str
    client_secret: str = Field(description="OAuth client secret; pass as EnvVar")
    username: str | None = Field(
        None, description="set to use the password grant instead of client_credentials"
    )
    password: str | None = Field(None, description="password for the password grant; pass as EnvVar")
    retailer_id: str = "1"
    timeout: float = Field(30.0, description="read/write timeout per request, seconds")
    max_retries: int = Field(5, description="retries per call for safe-to-repeat failures")
    backoff_s: float = Field(0.5, description="first retry's backoff, doubling per retry (capped at 30 s)")
    page_size: int = Field(100, description="GraphQL `first` and Event API `count`")
    concurrency: int = Field(4, description="parallel paging streams (sub-windows) callers may run")

    def __repr_args__(self):
        return masked_repr_args(super().__repr_args__(), frozenset({"client_secret", "password"}))

    def get_client(self) -> FluentClient:
        """A new client (own token and connection pool); close it, or use it as a context manager."""
        return FluentClient(
            self.base_url,
            self.client_id,
            _resolved(self.client_secret) or "",
            username=self.username or None,
            password=_resolved(self.password),
            retailer_id=self.retailer_id,
            timeout=self.timeout,
            max_retries=self.max_retries,
            backoff_base=self.backoff_s,
            page_size=self.page_size,
        )

    @classmethod
    def from_env(cls) -> FluentResource:
        """From `fc_assets.settings` (FLUENT_*, FC_FLUENT_*); secrets as `EnvVar` when their variable is set."""
        s = get_settings()

        def secret(env_name: str, default: str | None) -> Any:
            return dg.EnvVar(env_name) if os.environ.get(env_name) else default

        return cls(
            base_url=s.fluent_base_url,
            client_id=s.fluent_client_id,
            client_secret=secret("FLUENT_CLIENT_SECRET", s.fluent_client_secret.get_secret_value()),
            username=s.fluent_username,
            password=secret(
                "FLUENT_PASSWORD", s.fluent_password.get_secret_value() if s.fluent_password else None
            ),
            retailer_id=s.fluent_retailer_id,
            timeout=s.fluent_timeout_s,
            max_retries=s.fluent_max_retries,
            backoff_s=s.fluent_backoff_s,
            page_size=s.fluent_page_size,
            concurrency=s.fluent_concurrency,
        )
