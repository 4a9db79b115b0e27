""".env.example lists every setting the processes read, so the documented configuration never drifts."""

from __future__ import annotations

from pathlib import Path

from console.settings import ConsoleSettings
from consumers.classifier.settings import ClassifierSettings
from consumers.journal.settings import JournalWriterSettings
from consumers.mover.settings import MoverSettings
from consumers.notifier.settings import NotifierSettings
from consumers.reconciler.settings import ReconcilerSettings
from ingress.settings import IngressSettings

ROOT = Path(__file__).resolve().parents[2]


def _documented() -> set[str]:
    names = set()
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#") and "=" in line:
            names.add(line.split("=", 1)[0].strip())
    return names


def test_every_setting_is_in_env_example() -> None:
    settings = set()
    processes = (
        IngressSettings,
        ClassifierSettings,
        MoverSettings,
        NotifierSettings,
        ReconcilerSettings,
        JournalWriterSettings,
    )
    for cls in (*processes, ConsoleSettings):
        settings |= {name.upper() for name in cls.model_fields}
    missing = settings - _documented()
    assert not missing, f".env.example lacks {sorted(missing)}"


def test_every_setting_in_env_example_is_in_the_docs() -> None:
    # The processes' settings are in the generated reference; docker-compose.yml's own (RABBITMQ_USER, *_BIND) in
    # the pages about Docker and scaling out.
    docs = "".join(page.read_text(encoding="utf-8") for page in sorted((ROOT / "docs").glob("*.md")))
    missing = {name for name in _documented() if f"`{name}`" not in docs}
    assert not missing, f"docs/ does not describe {sorted(missing)}"
