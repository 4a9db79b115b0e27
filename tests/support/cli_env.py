"""Points the ``invoice-pipeline`` command at a test's broker topology through the environment, as in production."""

from __future__ import annotations

import pytest

from tests.support.real_broker import BrokerKit


def use_broker(monkeypatch: pytest.MonkeyPatch, broker: BrokerKit) -> None:
    for name, value in broker.env().items():
        monkeypatch.setenv(name, value)
