"""Recognisable secret values for the security tests: unique per call, with the characters that break naive
quoting (single and double quotes, backslashes)."""

from __future__ import annotations

import uuid


def nasty_secret(label: str) -> str:
    return f"s3cr'et\\\"{label}-{uuid.uuid4().hex}"
