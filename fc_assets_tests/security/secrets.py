"""Recognisable secret values for the security tests: unique per call, with the characters that break naive
quoting (single and double quotes, backslashes)."""

from __future__ import annotations

import json
import uuid


def nasty_secret(label: str) -> str:
    """`s3cr'et\\"<label>-<uuid hex>`: the uuid part is what a test looks for in any escaping."""
    return f"s3cr'et\\\"{label}-{uuid.uuid4().hex}"


def leak_forms(secret: str) -> set[str]:
    """The whole value in any escaping (Python repr, JSON as in Dagster's event log, SQL) and its unique part
    alone (12 hex digits: also catches a truncated or otherwise escaped copy)."""
    return {
        secret,
        repr(secret)[1:-1],
        json.dumps(secret)[1:-1],
        secret.replace("'", "''"),
        secret.rsplit("-", 1)[1][:12],
    }
