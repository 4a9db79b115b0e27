"""Fixtures shared by every test: the real broker, isolated per test by a topology prefix."""

from __future__ import annotations

from collections.abc import Iterator

import pika
import pytest

from shared.topology import Topology
from tests.broker import BrokerKit, find_broker, new_prefix

pytest_plugins = ["tests.simulator_fixtures", "tests.mail_fixtures"]


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    yield from find_broker()


@pytest.fixture
def broker(amqp_url: str) -> Iterator[BrokerKit]:
    """A fresh topology under a unique prefix, declared before the test and deleted after it."""
    topology = Topology(new_prefix(), retry_delays=(0.2, 0.4, 0.8), delivery_limit=5)
    kit = BrokerKit(amqp_url, topology)
    connection = kit.connect()
    topology.declare(connection.channel())
    connection.close()
    yield kit
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    topology.delete(channel)
    connection.close()
