"""A classifier ``StageConsumer`` on the real broker around a test's handler: started, fed, stopped, observed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, ParamSpec, TypeVar

import pika

from shared.broker.connection import connection_parameters
from shared.broker.consumer import Patience, Reporting, StageConsumer
from shared.broker.publisher import Publisher
from shared.broker.topology import CLASSIFIER
from shared.core.handling import Handled, InboundMessage
from shared.journal.port import Journal
from tests.support.journal_fakes import RecordingJournal
from tests.support.real_broker import BrokerKit

P = ParamSpec("P")
S = TypeVar("S", bound="StageOnBroker")


class StageOnBroker:
    """The consumer, its publisher and its thread, recording every (outcome, reason) the consumer reports."""

    def __init__(
        self,
        broker: BrokerKit,
        handler: Callable[[InboundMessage], Handled | None],
        *,
        name: str,
        publisher: type[Publisher] = Publisher,
        patience: Patience | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.broker = broker
        self.journal = journal if journal is not None else RecordingJournal()
        self.outcomes: list[tuple[str, str | None]] = []
        params = connection_parameters(broker.url, name=name, heartbeat=5)
        self.publisher = publisher(params, topology=broker.topology).start()
        self.consumer = StageConsumer(
            params,
            topology=broker.topology,
            stage=CLASSIFIER,
            handler=handler,
            publisher=self.publisher,
            concurrency=2,
            reporting=Reporting(lambda _s, outcome, reason, _d: self.outcomes.append((outcome, reason)), self.journal),
            patience=patience,
        )
        self.thread = threading.Thread(target=self.consumer.run, daemon=True)

    def start(self) -> None:
        assert self.publisher.wait_connected(10)
        self.thread.start()

    def stop(self) -> None:
        self.consumer.stop()
        self.thread.join(10)
        self.publisher.stop()

    def publish(self, body: bytes, *, message_id: str, routing_key: str = "file.uploaded", **headers: Any) -> None:
        """Put one persistent message on the events exchange, as a producer would."""
        connection = self.broker.connect()
        connection.channel().basic_publish(
            self.broker.topology.events_exchange,
            routing_key,
            body,
            pika.BasicProperties(message_id=message_id, delivery_mode=2, headers=headers or None),
        )
        connection.close()


def started_stages(make: Callable[P, S]) -> Iterator[Callable[P, S]]:
    """For a fixture: a factory of started stages (``make`` builds one); every one is stopped after the test."""
    started: list[S] = []

    def start(*args: P.args, **kwargs: P.kwargs) -> S:
        stage = make(*args, **kwargs)
        stage.start()
        started.append(stage)
        return stage

    yield start
    for stage in started:
        stage.stop()
