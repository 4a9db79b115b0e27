"""The rings hold, as a contract over every production module's imports and what each really loads.

The contract, in the words of shared/'s layout:
  * stage logic (every module under ``consumers/`` and ``ingress/`` but the named entry points, adapters and
    settings) imports, of our own code, only ``shared.core``, the store ports and the pure DocSpace modules (and
    stage logic of its own process);
  * ``shared.core``, the ports and the pure DocSpace modules import nothing of ours outside that inner ring;
  * nothing but an entry point (a ``__main__``, the ``ops`` CLI) imports an entry point or the composition root
    (``shared.runtime``), so adapters never reach back out.
The imports are read statically (every ``import``, also inside functions), and each inner module is also imported
in a fresh interpreter, so an indirect load (a package ``__init__`` re-exporting an adapter, a shared type living
beside pika) fails here rather than being noticed by someone reading imports.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("shared", "consumers", "ingress", "ops")
# The adapters' libraries: only entry points and adapters may load them.
FORBIDDEN = ("pika", "requests", "redis", "smtplib", "falcon", "waitress", "sqlite3", "psycopg")

# The inner ring: what stage logic may import of ours.
CORE = "shared.core"
# The stores' ports, and the journal's: its record is vocabulary, its store a port, its counters plain metrics.
PORTS = {
    "shared.store.idempotency",
    "shared.store.checkpoints",
    "shared.journal.record",
    "shared.journal.store",
    "shared.journal.port",
    "shared.journal.metrics",
}
PURE_DOCSPACE = {
    "shared.docspace.values",
    "shared.docspace.errors",
    "shared.docspace.webhooks",
    "shared.docspace.delivery",
    "shared.docspace.delivery_encoder",
}
COMPOSITION_ROOT = "shared.runtime"
# Under consumers/ and ingress/, every module is stage logic unless named here, so a new one is checked by default.
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


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(path): path for top in PRODUCTION for path in sorted((ROOT / top).rglob("*.py"))}


def _is_settings(module: str) -> bool:
    return module.endswith(".settings")


def _is_entry_point(module: str) -> bool:
    return module.endswith(".__main__") or module == "ops" or module.startswith("ops.")


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _is_inner(module: str) -> bool:
    return _in(module, CORE) or module in PORTS or module in PURE_DOCSPACE


STAGE_LOGIC = sorted(
    module
    for module, path in MODULES.items()
    if module.split(".")[0] in ("consumers", "ingress")
    and path.name != "__init__.py"
    and module not in ENTRY_POINTS_AND_ADAPTERS
    and not _is_settings(module)
)
INNER = sorted(module for module in MODULES if _is_inner(module))


def _imports(module: str) -> set[str]:
    """Every module of ours that ``module`` names in an import, wherever the import statement stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from a import b`` names module a.b when b is a module, else a.
            found |= {
                f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module for a in node.names
            }
    return {name for name in found if name.split(".")[0] in PRODUCTION}


def _process(module: str) -> str:
    """The process a stage-logic module belongs to: ``consumers.mover``, ``ingress``."""
    return ".".join(module.split(".")[:2]) if module.startswith("consumers.") else "ingress"


def test_every_ring_is_populated_and_every_exclusion_exists() -> None:
    assert {"consumers.classifier.handler", "consumers.mover.handler", "consumers.notifier.handler"} <= set(STAGE_LOGIC)
    assert {"ingress.intake", "ingress.spool_drainer", "consumers.reconciler.scan"} <= set(STAGE_LOGIC)
    assert {"shared.core.errors", "shared.core.handling", "shared.core.events", *PORTS, *PURE_DOCSPACE} <= set(INNER)
    missing = [m for m in ENTRY_POINTS_AND_ADAPTERS if m not in MODULES]
    assert missing == [], f"excluded modules that no longer exist: {missing}"


@pytest.mark.parametrize("module", STAGE_LOGIC)
def test_stage_logic_imports_only_the_inner_ring_and_its_own_stage(module: str) -> None:
    outside = sorted(
        name
        for name in _imports(module)
        if not _is_inner(name) and not (name in STAGE_LOGIC and _process(name) == _process(module))
    )
    assert outside == [], f"{module} (stage logic) imports {outside}: give it a port in shared.core instead"


@pytest.mark.parametrize("module", INNER)
def test_the_inner_ring_imports_nothing_outside_it(module: str) -> None:
    outside = sorted(name for name in _imports(module) if not _is_inner(name))
    assert outside == [], f"{module} is in the inner ring but imports {outside}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if not _is_entry_point(m)))
def test_only_entry_points_import_entry_points_or_the_composition_root(module: str) -> None:
    reaching_out = sorted(
        name
        for name in _imports(module)
        if _is_entry_point(name) or (_in(name, COMPOSITION_ROOT) and not _in(module, COMPOSITION_ROOT))
    )
    assert reaching_out == [], f"{module} imports {reaching_out}: only a __main__ or ops may"


_PROBE = """
import importlib, json, sys
for module in json.loads(sys.argv[1]):
    importlib.import_module(module)
print(json.dumps(sorted(name for name in json.loads(sys.argv[2]) if name in sys.modules)))
"""


def _loaded_by(modules: list[str]) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(modules), json.dumps(FORBIDDEN)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded


@pytest.mark.parametrize("module", STAGE_LOGIC)
def test_stage_logic_loads_no_adapter_library(module: str) -> None:
    loaded = _loaded_by([module])
    assert loaded == [], f"importing {module} loads {', '.join(loaded)}: move what it needs into a module without them"


def test_the_inner_ring_loads_no_adapter_library() -> None:
    loaded = _loaded_by(INNER)
    assert loaded == [], f"importing the inner ring loads {', '.join(loaded)}"
