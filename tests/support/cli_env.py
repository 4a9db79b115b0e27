"""Points the ``invoice-pipeline`` command at a test's broker (and portal) through the environment, as in production."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator import DocSpaceSimulator
from tests.support.real_broker import BrokerKit


def use_broker(monkeypatch: pytest.MonkeyPatch, broker: BrokerKit) -> None:
    for name, value in broker.env().items():
        monkeypatch.setenv(name, value)


def use_portal(
    monkeypatch: pytest.MonkeyPatch, broker: BrokerKit, sim: DocSpaceSimulator, rules: Path, **more: str
) -> None:
    """The broker, the simulated portal, the ``rules`` file, a store of its own beside them, and ``more`` settings."""
    use_broker(monkeypatch, broker)
    env = {
        "DOCSPACE_API_HOST": sim.base_url,
        "DOCSPACE_API_KEY": sim.api_key,
        "INVOICE_RULES_FILE": str(rules),
        "IDEMPOTENCY_URL": f"sqlite:///{rules.parent / 'idempotency.sqlite3'}",
        **more,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
