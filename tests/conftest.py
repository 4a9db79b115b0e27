"""Fixtures shared by every test: the real broker, isolated per test by a topology prefix."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence

import pika
import pytest
from hypothesis import settings

from shared.broker.topology import Topology
from tests.support.real_broker import BrokerKit, find_broker, new_prefix
from tests.support.tcp_proxy import TcpProxy

pytest_plugins = ["tests.support.simulator_fixtures", "tests.support.mail_fixtures"]

# The property tests run in every `make test`: a bounded budget keeps the whole set to seconds. The deadline
# catches a pathological input (quadratic parsing of a 4,300-digit number) without failing on a busy machine.
# HYPOTHESIS_PROFILE=fuzz searches fifty times longer, for a deliberate session (with -o timeout=0: it outlasts
# pytest-timeout's 300 s). No example database: CI is stateless, and a failure prints a blob to reproduce it
# with @reproduce_failure.
settings.register_profile("suite", max_examples=200, deadline=2000, database=None, print_blob=True)
settings.register_profile("fuzz", max_examples=10_000, deadline=None, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))

BrokerFactory = Callable[..., BrokerKit]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Two lanes for `make test` (pytest-xdist, ``--dist loadgroup``): the long tests, which mostly wait out an
    outage or a stopped writer, in one worker; everything else, in its usual order, in the other.

    The long tests hold a pipeline that sits idle for minutes: beside them, the rest of the suite costs the same
    wall time as alone, and the whole run is as long as its longer lane. Without xdist the markers do nothing.
    """
    for item in items:
        item.add_marker(pytest.mark.xdist_group("long" if item.get_closest_marker("long") else "main"))


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    yield from find_broker()


@pytest.fixture
def broker_factory(amqp_url: str) -> Iterator[BrokerFactory]:
    """Make fresh topologies under unique prefixes (own retry delays if a test needs them); all deleted after."""
    made: list[Topology] = []

    def make(*, retry_delays: Sequence[float] = (0.2, 0.4, 0.8), delivery_limit: int = 5) -> BrokerKit:
        topology = Topology(new_prefix(), retry_delays=retry_delays, delivery_limit=delivery_limit)
        kit = BrokerKit(amqp_url, topology)
        connection = kit.connect()
        topology.declare(connection.channel())
        connection.close()
        made.append(topology)
        return kit

    yield make
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    for topology in made:
        topology.delete(channel)
    connection.close()


@pytest.fixture
def broker(broker_factory: BrokerFactory) -> BrokerKit:
    """A fresh topology under a unique prefix with a short retry ladder (0.2 s, 0.4 s, 0.8 s)."""
    return broker_factory()


@pytest.fixture
def broker_proxy(broker: BrokerKit) -> Iterator[TcpProxy]:
    """A TCP proxy in front of the broker: ``down()`` is a dead broker, ``cut()`` a dropped connection."""
    proxy = TcpProxy.in_front_of(broker.url)
    yield proxy
    proxy.close()
