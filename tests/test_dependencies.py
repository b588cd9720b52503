"""The pins: pyproject.toml and constraints.txt agree, the venv holds what they pin, and no pin is below the
first release without a published advisory we know of (make audit asks the advisory service itself; the tests
cannot reach it)."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Package: the first version without the advisories that made us pin it (pyproject's comment says which).
AT_LEAST = {"pillow": (12, 2), "setuptools": (78, 1, 1)}


def _name(requirement: str) -> str:
    return re.split(r"[\[=<>~! ;]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-").replace(".", "-")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text.split("+")[0])[:4])


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt pins everything exactly: {line!r}"
            pins[_name(name)] = version.strip()
    return pins


def _pyproject() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requirements = [*project["project"]["dependencies"], *project["project"]["optional-dependencies"]["dev"]]
    return {_name(r): r.split("==", 1)[1].split(";")[0].strip() for r in requirements}


def test_pyproject_and_constraints_pin_the_same_versions():
    constraints = _constraints()
    disagree = {name: (version, constraints.get(name)) for name, version in _pyproject().items()
                if constraints.get(name) != version}
    assert disagree == {}, "pyproject.toml vs constraints.txt"


def test_the_virtual_environment_holds_what_constraints_pin():
    installed = {_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    differ = {name: (version, installed.get(name)) for name, version in _constraints().items()
              if installed.get(name) != version}
    assert differ == {}, "pinned vs installed (None: missing): run make venv"


def test_no_pin_is_below_a_release_with_a_published_advisory():
    constraints = _constraints()
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    pins = {**constraints, **{_name(r): r.split(">=", 1)[1] for r in build if ">=" in r}}
    too_old = {name: pins[name] for name, floor in AT_LEAST.items() if _version(pins[name]) < floor}
    assert too_old == {}
    assert _version(metadata.version("pillow")) >= AT_LEAST["pillow"]
