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
    declare = _Declarer(connection)
    try:
        rows = []
        for stage in STAGES:
            queues = topology.stage(stage)
            work = declare(queues.work)
            delays = [declare(name) for name in queues.retries]
            parked = declare(queues.parked)
            dead = declare(queues.dead_letters)
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


class _Declarer:
    """Passive declares on one channel; a missing queue closes it (404), and the next declare opens another."""

    def __init__(self, connection: pika.BlockingConnection) -> None:
        self._connection = connection
        self._channel = connection.channel()

    def __call__(self, name: str) -> tuple[int, int] | None:
        if not self._channel.is_open:
            self._channel = self._connection.channel()
        try:
            frame = self._channel.queue_declare(name, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code == 404:
                return None
            raise
        return int(frame.method.message_count), int(frame.method.consumer_count)
