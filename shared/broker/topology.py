"""The broker topology as data: every exchange, queue and binding, declared idempotently (or only checked).

Changing an existing queue's arguments makes RabbitMQ refuse the declaration (PRECONDITION_FAILED): a changed
queue needs a new name. That refusal is a deployment bug, so processes exit on it instead of retrying.

Every queue is a quorum queue, so a cluster replicates all of them and any node can declare them while another
is down (a classic queue lives on one node: while that node is away its messages are out of reach and declaring
it elsewhere fails). The replica count is the broker's ``quorum_cluster_size`` (3 by default): one replica on
each node of a three-node cluster, so any one node may fail.

Declaring needs the configure permission on every name; a passive declaration (a check that the name exists)
needs no permission at all. With ``passive`` the processes only check, so their broker users can go without
configure (``invoice-pipeline topology`` declares as the administrator; docs/security.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pika.adapters.blocking_connection import BlockingChannel

# Exchange and queue names before the prefix. Downstream systems rely on these; renaming one is a breaking change.
EVENTS_EXCHANGE = "docspace.events"
DETECTED_EXCHANGE = "invoice.detected"
RECEIVED_EXCHANGE = "invoice.received"
DEAD_LETTER_EXCHANGE = "dead-letters"
JOURNAL_EXCHANGE = "invoice.journal"
JOURNAL_QUEUE = "journal"
# The journal queue's bound: a writer away for days must not fill the broker's disk and block the invoices' own
# publishers with a resource alarm. Past it the broker refuses journal records (counted as dropped by their
# publisher), never invoices. About 500 bytes a record: half a gigabyte at the bound.
JOURNAL_MAX_LENGTH = 1_000_000

CLASSIFIER = "classifier"
MOVER = "mover"
NOTIFIER_EMAIL = "notifier.email"
NOTIFIER_PIPELINE = "notifier.pipeline"
STAGES = (CLASSIFIER, MOVER, NOTIFIER_EMAIL, NOTIFIER_PIPELINE)
DEAD_LETTER_DELIVERY_LIMIT = 1_000_000


@dataclass(frozen=True)
class Exchange:
    """An exchange the topology declares."""

    name: str
    type: str


@dataclass(frozen=True)
class Binding:
    """A queue's binding to an exchange by routing key."""

    exchange: str
    routing_key: str


@dataclass(frozen=True)
class Queue:
    """A queue the topology declares, with its arguments and bindings."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    bindings: tuple[Binding, ...] = ()


@dataclass(frozen=True)
class StageQueues:
    """The queues one stage owns: its work queue, one delay queue per retry step, and its dead-letter queue."""

    stage: str
    work: str
    retries: tuple[str, ...]
    dead_letters: str
    delays: tuple[float, ...]
    parked: str  # messages that must wait (a claim held elsewhere, a spent daily quota), each for its own time

    def retry_queue_for(self, attempt: int, retry_after: float | None = None) -> tuple[str, float] | None:
        """The delay queue for the given 1-based attempt, or None when the ladder is spent.

        ``retry_after`` (from a 429 or 503) moves the message up to the first step that waits at least that long,
        so the broker never redelivers before the remote side asked us to come back.
        """
        step = attempt - 1
        if step >= len(self.delays):
            return None
        if retry_after is not None:
            while step < len(self.delays) - 1 and self.delays[step] < retry_after:
                step += 1
        return self.retries[step], self.delays[step]


class Topology:
    """All names carry ``prefix``, so parallel tests (or staging beside production) never share a queue."""

    def __init__(
        self,
        prefix: str = "",
        *,
        retry_delays: Iterable[float] = (1, 5, 30, 120, 600),
        delivery_limit: int = 10,
        passive: bool = False,
    ) -> None:
        self.prefix = prefix
        self.passive = passive
        self.retry_delays = tuple(float(d) for d in retry_delays)
        self.delivery_limit = delivery_limit
        self.events_exchange = prefix + EVENTS_EXCHANGE
        self.detected_exchange = prefix + DETECTED_EXCHANGE
        self.received_exchange = prefix + RECEIVED_EXCHANGE
        self.dead_letter_exchange = prefix + DEAD_LETTER_EXCHANGE
        self.journal_exchange = prefix + JOURNAL_EXCHANGE
        self.journal_queue = prefix + JOURNAL_QUEUE

    @classmethod
    def from_settings(cls, settings: Any) -> Topology:
        return cls(
            settings.topology_prefix,
            retry_delays=settings.retry_delays,
            delivery_limit=settings.delivery_limit,
            passive=getattr(settings, "topology_declare", "full") == "passive",
        )

    def stage(self, stage: str) -> StageQueues:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
        work = self.prefix + stage
        # The delay is part of the name: a changed RETRY_DELAYS declares new queues instead of clashing
        # with the TTL of the old ones. (Before they were quorum queues they were called <queue>.retry.N.<ms>ms.)
        retries = tuple(f"{work}.delay.{i + 1}.{_millis(d)}ms" for i, d in enumerate(self.retry_delays))
        return StageQueues(stage, work, retries, f"{work}.dlq", self.retry_delays, f"{work}.parked")

    def exchanges(self) -> list[Exchange]:
        return [
            Exchange(self.events_exchange, "topic"),
            Exchange(self.detected_exchange, "topic"),
            Exchange(self.received_exchange, "topic"),
            Exchange(self.dead_letter_exchange, "direct"),
            Exchange(self.journal_exchange, "topic"),
        ]

    def queues(self) -> list[Queue]:
        sources = {
            # The classifier takes every trigger (and "unknown"): it decides, counts and logs what to ignore.
            # A narrower binding would make other triggers unroutable, and the ingress would refuse them.
            CLASSIFIER: Binding(self.events_exchange, "#"),
            MOVER: Binding(self.detected_exchange, "#"),
            NOTIFIER_EMAIL: Binding(self.received_exchange, "#"),
            NOTIFIER_PIPELINE: Binding(self.received_exchange, "#"),
        }
        queues: list[Queue] = []
        for stage, source in sources.items():
            names = self.stage(stage)
            queues.append(
                Queue(
                    names.work,
                    {
                        "x-queue-type": "quorum",
                        # Set explicitly: RabbitMQ 3.10 has no default, 4.x defaults to 20.
                        "x-delivery-limit": self.delivery_limit,
                        "x-dead-letter-exchange": self.dead_letter_exchange,
                        "x-dead-letter-routing-key": names.work,
                        "x-dead-letter-strategy": "at-least-once",
                        "x-overflow": "reject-publish",
                    },
                    (source,),
                )
            )
            for retry_queue, delay in zip(names.retries, names.delays, strict=True):
                queues.append(Queue(retry_queue, {**_returns_to(names.work), "x-message-ttl": _millis(delay)}))
            # No queue-wide TTL: each parked message carries its own expiration (a lease's rest, a quota's reset).
            queues.append(Queue(names.parked, _returns_to(names.work)))
            queues.append(
                Queue(
                    names.dead_letters,
                    # Only an operator takes from a dead-letter queue. RabbitMQ 4.x would give it a delivery limit
                    # of 20 (and it has nowhere to dead-letter to): set one no inspection will ever reach.
                    {"x-queue-type": "quorum", "x-delivery-limit": DEAD_LETTER_DELIVERY_LIMIT},
                    (Binding(self.dead_letter_exchange, names.work),),
                )
            )
        queues.append(self.journal())
        return queues

    def journal(self) -> Queue:
        """The decision journal's queue: every stage's records (routed by stage), one writer active at a time."""
        return Queue(
            self.journal_queue,
            {
                "x-queue-type": "quorum",
                # One writer inserts at a time, in the order the records came: a second replica stands by.
                "x-single-active-consumer": True,
                "x-max-length": JOURNAL_MAX_LENGTH,
                "x-overflow": "reject-publish",
                # Set explicitly (4.x defaults to 20): a record is redelivered after every writer crash or database
                # outage that held it, and it is never worth dead-lettering, only inserting once.
                "x-delivery-limit": DEAD_LETTER_DELIVERY_LIMIT,
            },
            (Binding(self.journal_exchange, "#"),),
        )

    def all_queue_names(self) -> list[str]:
        return [queue.name for queue in self.queues()]

    def declare(self, channel: BlockingChannel) -> None:
        """Declare everything; safe to repeat. Raises ChannelClosedByBroker(406) on an argument mismatch."""
        for exchange in self.exchanges():
            channel.exchange_declare(exchange.name, exchange.type, durable=True)
        for queue in self.queues():
            channel.queue_declare(queue.name, durable=True, arguments=queue.arguments)
            for binding in queue.bindings:
                channel.queue_bind(queue.name, binding.exchange, binding.routing_key)

    def check(self, channel: BlockingChannel) -> None:
        """Check that every exchange and queue exists, declaring nothing. Raises ChannelClosedByBroker(404) if not.

        Passive declarations need no permission, and they compare no arguments: only ``declare`` finds a mismatch.
        """
        for exchange in self.exchanges():
            channel.exchange_declare(exchange.name, passive=True)
        for queue in self.queues():
            channel.queue_declare(queue.name, passive=True)

    def ensure(self, channel: BlockingChannel) -> None:
        """What a process does on connect: ``check`` when ``passive`` (TOPOLOGY_DECLARE=passive), else ``declare``."""
        if self.passive:
            self.check(channel)
        else:
            self.declare(channel)

    def delete(self, channel: BlockingChannel) -> None:
        """Remove everything this topology declared (tests clean up their prefix with this)."""
        for queue in self.queues():
            channel.queue_delete(queue.name)
        for exchange in self.exchanges():
            channel.exchange_delete(exchange.name)


def _returns_to(work_queue: str) -> dict[str, Any]:
    """A waiting room: expired messages go back to ``work_queue`` through the default exchange.

    At-least-once dead-lettering (which needs ``reject-publish``) keeps a message in the waiting room until the
    work queue has confirmed it, so a node failure in between cannot lose it.
    """
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": work_queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }


def _millis(seconds: float) -> int:
    return round(seconds * 1000)
