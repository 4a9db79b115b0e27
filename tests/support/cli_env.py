"""Points the ``invoice-pipeline`` command at a test's broker topology through the environment, as in production."""

from __future__ import annotations

import pytest

from tests.support.real_broker import BrokerKit


def use_broker(monkeypatch: pytest.MonkeyPatch, broker: BrokerKit) -> None:
    monkeypatch.setenv("AMQP_URL", broker.url)
    monkeypatch.setenv("TOPOLOGY_PREFIX", broker.topology.prefix)
    monkeypatch.setenv("RETRY_DELAYS", ",".join(str(d) for d in broker.topology.retry_delays))
    monkeypatch.setenv("DELIVERY_LIMIT", str(broker.topology.delivery_limit))
