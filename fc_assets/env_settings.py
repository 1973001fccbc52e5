"""The few settings that reading a file needs, without pydantic: `fc_assets.settings` imports pydantic and
builds a model (near a second on a loaded machine), most of what is left of `fc-assets check-file` on a small
file. A setting whose variable is not in the environment is its default
here; one that is set is read by `get_settings()` (same parsing, same validation errors).
A test holds these names and defaults to `Settings`'."""

from __future__ import annotations

import os
from typing import Any

DEFAULTS: dict[str, tuple[str, Any]] = {  # field of Settings: (variable, default)
    "reject_threshold": ("FC_REJECT_THRESHOLD", 0.05),
    "max_value_bytes": ("FC_MAX_VALUE_BYTES", 8 * 1024**2),
    "max_decompressed_bytes": ("FC_MAX_DECOMPRESSED_BYTES", 4 * 1024**3),
}


def env_setting(name: str) -> Any:
    """`get_settings().<name>`, without building the settings when the variable is not set."""
    variable, default = DEFAULTS[name]
    # `Settings.from_environment` ignores the case and also reads the field's own name
    if any(key.upper() in (variable, name.upper()) for key in os.environ):
        from fc_assets.settings import get_settings

        return getattr(get_settings(), name)
    return default
