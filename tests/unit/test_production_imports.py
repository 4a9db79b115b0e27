"""The production code stands without the demo: no module of it needs the simulator, the stand-ins or a test tool."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What the production image holds (Dockerfile, target runtime), and what it must do without.
PRODUCTION = ("ingress", "consumers", "shared", "ops")
ABSENT = ("simulator", "standins", "tests", "bench", "tools", "aiosmtpd", "pytest", "hypothesis", "mkdocs")

PROBE = f"""
import importlib, importlib.abc, pkgutil, sys

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {ABSENT!r}:
            raise ImportError(f"{{name}} is not in the production image")
        return None

sys.meta_path.insert(0, Absent())
failed = []
for package in {PRODUCTION!r}:
    root = importlib.import_module(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        try:
            importlib.import_module(info.name)
        except ImportError as exc:
            failed.append(f"{{info.name}}: {{exc}}")
print("\\n".join(failed))
"""


def test_every_production_module_imports_without_the_demo_and_test_tools() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", done.stdout


def test_the_production_image_leaves_the_demo_out() -> None:
    runtime = (ROOT / "Dockerfile").read_text(encoding="utf-8").split(" AS demo")[0]  # the stages before the demo's
    copied = {line.split()[1] for line in runtime.splitlines() if line.startswith("COPY ") and "--from" not in line}
    assert {"ingress", "consumers", "shared", "ops"} <= copied
    assert not copied & {"simulator", "standins", "tests", "bench", "tools", "docs"}
