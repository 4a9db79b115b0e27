"""What waits in the broker, per stage: ready work, retrying (delay queues), parked, dead letters, and consumers."""

from __future__ import annotations

from dataclasses import dataclass

import pika
import pika.exceptions

from shared.broker.connection import BrokerNodes
from shared.broker.topology import STAGES, Topology


@dataclass(frozen=True)
class StageQueue:
    """One stage's messages by where they wait, and how many consumers take its work (None: queue missing)."""

    stage: str
    ready: int | None
    consumers: int | None
    retrying: int | None
    parked: int | None
    dead_letters: int | None


def stage_queues(params: pika.ConnectionParameters | BrokerNodes, topology: Topology) -> list[StageQueue]:
    """Passive declares only (nothing is created or changed); a missing queue reads as None."""
    connection = pika.BlockingConnection(params)
    try:
        rows = []
        for stage in STAGES:
            queues = topology.stage(stage)
            work = _declare(connection, queues.work)
            delays = [_declare(connection, name) for name in queues.retries]
            parked = _declare(connection, queues.parked)
            dead = _declare(connection, queues.dead_letters)
            rows.append(
                StageQueue(
                    stage,
                    ready=work[0] if work else None,
                    consumers=work[1] if work else None,
                    retrying=sum(d[0] for d in delays if d) if any(delays) else None,
                    parked=parked[0] if parked else None,
                    dead_letters=dead[0] if dead else None,
                )
            )
        return rows
    finally:
        if connection.is_open:
            connection.close()


def _declare(connection: pika.BlockingConnection, name: str) -> tuple[int, int] | None:
    channel = connection.channel()
    try:
        frame = channel.queue_declare(name, passive=True)
        return int(frame.method.message_count), int(frame.method.consumer_count)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return None
        raise
    finally:
        if channel.is_open:
            channel.close()
