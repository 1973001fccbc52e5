"""`LakeResource`: the lake (storage.py) as a Dagster resource.

Its own module so that code using `Lake` directly (a script, the direct extraction) does not import dagster;
`from fc_assets.resources.storage import LakeResource` still works (a module `__getattr__` there).
"""

from __future__ import annotations

import dagster as dg

from fc_assets.resources.secret_masking import masked_repr_args
from fc_assets.resources.storage import Lake


class LakeResource(dg.ConfigurableResource):
    """The lake as a Dagster resource; secrets come from `EnvVar`s (see definitions.py)."""

    uri: str
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    region: str = "us-east-1"

    def __repr_args__(self):
        return masked_repr_args(super().__repr_args__(), frozenset({"secret_access_key"}))

    def get_lake(self) -> Lake:
        return Lake(
            uri=self.uri,
            endpoint_url=self.endpoint_url or None,
            access_key_id=self.access_key_id or None,
            secret_access_key=self.secret_access_key or None,
            region=self.region,
        )
