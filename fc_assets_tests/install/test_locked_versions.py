"""`make install` installs the versions constraints.txt pins: a release made since the suite last passed
cannot change what the next fresh clone runs (lxml 6.2.0 turned CI red that way)."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from fc_assets_tests.install.locked import installed_versions, locked_versions, normalise

ROOT = Path(__file__).resolve().parents[2]


def test_the_project_venv_holds_the_locked_versions():
    pins = locked_versions(ROOT / "constraints.txt")
    installed = installed_versions(Path(sys.executable))
    assert {n: (v, pins[n]) for n, v in installed.items() if n in pins and pins[n] != v} == {}
    assert sorted(n for n in installed if n not in pins and n != "fc-assets") == []


def test_make_install_uses_the_constraints_and_reinstalls_when_they_change():
    makefile = (ROOT / "Makefile").read_text()
    rule = re.search(r"^\$\(STAMP\): (.*)$", makefile, re.M)
    assert rule and "constraints.txt" in rule.group(1).split()
    assert "-c constraints.txt -e '.[local,dev,deploy]'" in makefile


def test_every_pin_satisfies_pyproject():
    """A hand edit of constraints.txt (or a stale one after a bound moved) would make `make install` fail to
    resolve on a fresh clone: every requirement of the project and its extras must be pinned, inside its bounds."""
    pins = locked_versions(ROOT / "constraints.txt")  # raises on a line without ==
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    requirements += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
    outside = {
        r.name: pins.get(normalise(r.name))
        for r in requirements
        if pins.get(normalise(r.name)) not in r.specifier  # None (not pinned) is never in a specifier
    }
    assert outside == {}
