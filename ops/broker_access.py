"""How an operator's tool (the CLI, the console) reaches the broker: the connection parameters and the topology."""

from __future__ import annotations

import pika

from shared.broker.connection import broker_nodes
from shared.broker.topology import Topology
from shared.config.settings import CommonSettings


def broker_parameters(settings: CommonSettings, *, name: str = "invoice-pipeline-cli") -> list[pika.URLParameters]:
    return broker_nodes(settings, name=name)


def topology(settings: CommonSettings) -> Topology:
    return Topology.from_settings(settings)
