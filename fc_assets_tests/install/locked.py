"""Read constraints.txt and what a virtualenv holds, by normalised distribution name."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not pinned with =="
            pins[normalise(name.split("[")[0])] = version.strip()
    return pins


PROBE = "import importlib.metadata as m\nfor d in m.distributions(): print(d.metadata['Name'], d.version)"


def installed_versions(python: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """Distributions installed for `python` (pip, setuptools and uv are the virtualenv's own tools)."""
    out = subprocess.run(
        [str(python), "-c", PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout
    found = dict(line.rsplit(" ", 1) for line in out.splitlines())
    return {normalise(n): v for n, v in found.items() if normalise(n) not in ("pip", "setuptools", "uv")}
