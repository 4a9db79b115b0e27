"""How an operator's tool (the CLI, the console) reaches the broker: the connection parameters and the topology."""

from __future__ import annotations

import pika

from shared.broker.connection import connection_parameters
from shared.broker.topology import Topology
from shared.config.settings import CommonSettings


def broker_parameters(settings: CommonSettings, *, name: str = "invoice-pipeline-cli") -> list[pika.URLParameters]:
    return connection_parameters(
        settings.amqp_url.get_secret_value(),
        name=name,
        heartbeat=settings.heartbeat,
        blocked_connection_timeout=settings.blocked_connection_timeout,
    )


def topology(settings: CommonSettings) -> Topology:
    return Topology.from_settings(settings)
