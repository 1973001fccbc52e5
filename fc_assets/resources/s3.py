"""The inbox S3 client as a Dagster resource, with the settings of `dagster_aws.s3.S3Resource` (same field
names, so run config written for it still applies) but not its import: importing `dagster_aws` loads all of
its components, `dagster._core.test_utils`, SQLAlchemy and alembic (~1.7 s on every code-location load, run
worker and step). boto3 is imported when a client is made.

One client per distinct configuration (every field, credentials included: rotated credentials get a new
client) is shared across ticks and runs (boto_clients.py); nobody closes it (a `get_object` body is closed,
not the client).
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from pydantic import Field

from fc_assets.resources.boto_clients import shared_client
from fc_assets.resources.secret_masking import masked_repr_args


class S3Resource(dg.ConfigurableResource):
    """Settings of one S3 (or S3-compatible) endpoint; `get_client()` returns a boto3 S3 client."""

    use_unsigned_session: bool = Field(default=False, description="Send requests unsigned (public buckets).")
    region_name: str | None = Field(default=None, description="Region of the session.")
    endpoint_url: str | None = Field(default=None, description="A custom endpoint (e.g. moto, MinIO).")
    max_attempts: int = Field(default=5, description="botocore's `max_attempts`: retries of a failed call.")
    profile_name: str | None = Field(default=None, description="A profile of the AWS config files.")
    use_ssl: bool = Field(default=True, description="Use SSL.")
    verify: bool | None = Field(default=None, description="Verify SSL certificates (default: yes).")
    aws_access_key_id: str | None = Field(default=None, description="Access key ID.")
    aws_secret_access_key: str | None = Field(default=None, description="Secret access key.")
    aws_session_token: str | None = Field(default=None, description="Session token.")

    def __repr_args__(self):
        return masked_repr_args(
            super().__repr_args__(), frozenset({"aws_secret_access_key", "aws_session_token"})
        )

    def get_client(self) -> Any:
        """The boto3 S3 client of this configuration, as dagster_aws builds it (standard retry mode,
        `max_attempts`); made once per configuration and shared (see the module doc)."""
        key = (
            type(self).__name__,
            *((name, getattr(self, name)) for name in sorted(type(self).model_fields)),
        )
        return shared_client(key, self._make_client)

    def _make_client(self) -> Any:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config

        config = Config(retries={"max_attempts": self.max_attempts, "mode": "standard"})
        if self.use_unsigned_session:
            config = config.merge(Config(signature_version=UNSIGNED))
        return boto3.session.Session(profile_name=self.profile_name).client(
            "s3",
            region_name=self.region_name,
            use_ssl=self.use_ssl,
            verify=self.verify,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
            config=config,
        )
