"""The lock files in requirements/ pin, with hashes, every dependency pyproject.toml declares, at allowed versions."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)")


def _locked(name: str) -> dict[str, str]:
    """name -> version for every pin in requirements/<name>.txt; each pin must carry at least one hash."""
    pins: dict[str, str] = {}
    text = (ROOT / "requirements" / f"{name}.txt").read_text("utf-8")
    for block in re.split(r"\n(?=\S)", text):
        match = PIN.match(block)
        if match is None:
            continue
        assert "--hash=sha256:" in block, f"{name}.txt pins {match.group(1)} without a hash"
        pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def _declared(*extras: str) -> list[Requirement]:
    project = PYPROJECT["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


@pytest.mark.parametrize(("lock", "extras"), [("runtime", ()), ("demo", ("demo",)), ("dev", ("test", "demo"))], ids=str)
def test_every_declared_dependency_is_locked_at_a_version_it_allows(lock: str, extras: tuple[str, ...]) -> None:
    pins = _locked(lock)
    for requirement in _declared(*extras):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in requirements/{lock}.txt: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements/{lock}.txt pins {name}=={pins[name]}, pyproject.toml asks {requirement}: run `make lock`"
        )


def test_the_runtime_lock_keeps_demo_and_test_tools_out() -> None:
    pins = _locked("runtime")
    for name in ("aiosmtpd", "pytest", "ruff", "testcontainers", "docspace-api-sdk", "pyyaml"):
        assert name not in pins, f"{name} would end up in the production image"


def test_shared_packages_have_one_version_in_every_lock() -> None:
    runtime = _locked("runtime")
    for other in ("demo", "dev"):
        for name, version in _locked(other).items():
            if name in runtime:
                assert version == runtime[name], f"{name}: {other}.txt {version}, runtime.txt {runtime[name]}"


def test_the_build_tools_are_locked_too() -> None:
    pins = _locked("build")
    for requirement in (Requirement(r) for r in PYPROJECT["build-system"]["requires"]):
        name = canonicalize_name(requirement.name)
        assert name in pins and requirement.specifier.contains(pins[name])


def test_known_advisories_are_below_the_floors() -> None:
    floors = {canonicalize_name(r.name): r.specifier for r in _declared("demo")}
    assert not floors[canonicalize_name("waitress")].contains("3.0.0")
    assert not floors[canonicalize_name("requests")].contains("2.32.3")
    assert not floors[canonicalize_name("aiosmtpd")].contains("1.4.4")
