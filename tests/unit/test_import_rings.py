"""The rings hold: stage logic loads no broker client, HTTP library, database driver, mail or web framework.

Each module of stage logic (every module under ``consumers/`` and ``ingress/`` but the named entry points and
adapters) is imported in a fresh interpreter, so an indirect import (a package ``__init__`` re-exporting an
adapter, a shared type living beside pika) fails here rather than being noticed by someone reading imports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The adapters' libraries: only entry points (``__main__.py``, ``shared/wiring.py``) and adapters may load them.
FORBIDDEN = ("pika", "requests", "redis", "smtplib", "falcon", "waitress", "sqlite3", "psycopg")
# Every module under consumers/ and ingress/ is stage logic unless named here, so a new one is checked by default.
# Packages' ``__init__`` modules are checked through the modules inside them.
ENTRY_POINTS_AND_ADAPTERS = {
    "consumers.classifier.__main__": "entrypoint",
    "consumers.mover.__main__": "entrypoint",
    "consumers.notifier.__main__": "entrypoint",
    "consumers.reconciler.__main__": "entrypoint",
    "consumers.journal.__main__": "entrypoint",
    "ingress.__main__": "entrypoint",
    "ingress.app": "falcon",
    "consumers.notifier.mailer": "smtplib",
    "consumers.notifier.pipeline": "requests",
    "consumers.reconciler.announce": "pika",
}
STAGE_LOGIC = sorted(
    module
    for path in [*ROOT.glob("consumers/**/*.py"), *ROOT.glob("ingress/**/*.py")]
    if path.name != "__init__.py"
    and (module := ".".join(path.relative_to(ROOT).with_suffix("").parts)) not in ENTRY_POINTS_AND_ADAPTERS
)
_PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(name for name in json.loads(sys.argv[2]) if name in sys.modules)))
"""


def test_every_stage_is_checked_and_every_exclusion_exists() -> None:
    assert {"consumers.classifier.handler", "consumers.mover.handler", "consumers.notifier.handler"} <= set(STAGE_LOGIC)
    assert {"ingress.intake", "ingress.spool_drainer", "consumers.reconciler.scan"} <= set(STAGE_LOGIC)
    missing = [m for m in ENTRY_POINTS_AND_ADAPTERS if not (ROOT / (m.replace(".", "/") + ".py")).is_file()]
    assert missing == [], f"excluded modules that no longer exist: {missing}"


@pytest.mark.parametrize("module", STAGE_LOGIC)
def test_stage_logic_loads_no_adapter_library(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, module, json.dumps(FORBIDDEN)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded == [], f"importing {module} loads {', '.join(loaded)}: move what it needs into a module without them"
