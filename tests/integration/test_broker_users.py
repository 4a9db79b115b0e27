"""Least-privilege broker users (deploy/rabbitmq/users.sh) on a private vhost: what each may and may not do."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pika
import pika.exceptions
import pytest

from console.__main__ import journal_publisher
from ops.dead_letters import DeadLetterQueues, LetterFilter, list_letters, plain_sweep, purge_letters, replay_letters
from ops.queues import stage_queues
from shared.broker.connection import TopologyRefused, connection_parameters
from shared.broker.consumer import StageConsumer
from shared.broker.publisher import Publisher
from shared.broker.topology import CLASSIFIER, NOTIFIER_EMAIL, NOTIFIER_PIPELINE, Topology
from shared.core.errors import Deferred, PermanentError, TransientError
from shared.core.handling import Handled, InboundMessage
from shared.core.outgoing import OutgoingMessage
from shared.journal.record import Decision
from tests.support.broker_users import BrokerUsers, broker_users
from tests.support.mail_fixtures import wait_until

ACCESS_REFUSED = 403


@pytest.fixture(scope="module")
def users(amqp_url: str) -> Iterator[BrokerUsers]:
    # Module scope: making a vhost and seven users with rabbitmqctl takes half a minute.
    with broker_users(amqp_url, Topology("", retry_delays=(0.2, 0.4))) as made:
        yield made


def _attempt(url: str, action: object) -> int | None:
    """The reply code the broker closes the channel with (None when it allowed ``action``)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        try:
            action(channel)  # type: ignore[operator]
        except pika.exceptions.ChannelClosedByBroker as exc:
            return int(exc.reply_code)
        return None
    finally:
        if connection.is_open:
            connection.close()


def _publish(exchange: str, routing_key: str = "file.created") -> object:
    props = pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent)
    return lambda channel: channel.basic_publish(exchange, routing_key, b"{}", props, mandatory=True)


def test_the_ingress_user_publishes_to_docspace_events_and_is_refused_everything_else(users: BrokerUsers) -> None:
    topology = users.admin.topology
    ingress = users.urls["ingress"]
    # Passive checks need no permission: the ingress starts with TOPOLOGY_DECLARE=passive.
    assert _attempt(ingress, topology.check) is None
    # Confirmed, mandatory (routed: the classifier's queue takes every trigger).
    assert _attempt(ingress, _publish(topology.events_exchange)) is None
    work = topology.stage(CLASSIFIER).work
    assert users.admin.depth(work) == 1
    # Its decisions for the journal: a refusal here would close the channel its deliveries share.
    assert _attempt(ingress, _publish(topology.journal_exchange)) is None
    assert _attempt(users.urls["reconciler"], _publish(topology.journal_exchange)) is None

    refused = {
        "publish to invoice.detected": _publish(topology.detected_exchange),
        "publish to dead-letters": _publish(topology.dead_letter_exchange, work),
        "publish to the default exchange": _publish("", work),
        "read a queue": lambda channel: channel.basic_get(work),
        "consume a queue": lambda channel: channel.basic_consume(work, lambda *_: None),
        "purge a queue": lambda channel: channel.queue_purge(work),
        "declare the topology": topology.declare,
        "declare an exchange of its own": lambda channel: channel.exchange_declare("mine", "fanout"),
    }
    for what, action in refused.items():
        assert _attempt(ingress, action) == ACCESS_REFUSED, what
    assert users.admin.depth(work) == 1  # nothing read, nothing added


def test_a_stage_user_reads_only_its_own_queues(users: BrokerUsers) -> None:
    topology = users.admin.topology
    mover = users.urls["mover"]
    assert _attempt(mover, lambda channel: channel.basic_get(topology.stage("mover").work)) is None
    for other in ("classifier", "notifier.email", "notifier.pipeline"):
        assert _attempt(mover, lambda channel, q=other: channel.basic_get(topology.stage(q).work)) == ACCESS_REFUSED
    assert _attempt(mover, lambda channel: channel.basic_get(topology.journal_queue)) == ACCESS_REFUSED
    assert _attempt(mover, _publish(topology.detected_exchange)) == ACCESS_REFUSED
    # The journal queue has a single active consumer, which basic.get cannot be.
    journal = users.urls["journal"]
    assert _attempt(journal, lambda channel: channel.basic_consume(topology.journal_queue, lambda *_: None)) is None
    assert _attempt(journal, _publish(topology.journal_exchange)) == ACCESS_REFUSED


# Each stage user runs its stage: retried and parked through the default exchange, a follow-up event on its own
# exchange, a dead letter, all with TOPOLOGY_DECLARE=passive.
STAGE_USERS: list[tuple[str, str, str | None]] = [
    (CLASSIFIER, "classifier", "detected_exchange"),
    ("mover", "mover", "received_exchange"),
]
STAGE_USERS += [(NOTIFIER_EMAIL, "notifier", None), (NOTIFIER_PIPELINE, "notifier", None)]


@pytest.mark.parametrize(("stage", "kind", "follow_up"), STAGE_USERS)
def test_each_stage_user_runs_its_stage_with_passive_topology(
    users: BrokerUsers, stage: str, kind: str, follow_up: str | None
) -> None:
    topology = Topology("", retry_delays=(0.2, 0.4), passive=True)
    queues = topology.stage(stage)
    probe = users.admin.bind_probe(getattr(topology, follow_up)) if follow_up else None
    params = connection_parameters(users.urls[kind], name=f"test-{kind}")
    publisher = Publisher(params, topology=topology).start()
    calls: list[int] = []

    def handle(message: InboundMessage) -> Handled:
        calls.append(message.attempt)
        if len(calls) == 1:
            raise TransientError("once more", retry_after=0.1)  # through a delay queue
        if len(calls) == 2:
            raise Deferred("later", delay=0.1)  # through the parking queue
        if follow_up:
            follow = OutgoingMessage(getattr(topology, follow_up), "acme", b"{}", message_id="follow-up")
            publisher.publish_and_wait(follow)
        raise PermanentError("and then a dead letter")

    consumer = StageConsumer(params, topology=topology, stage=stage, handler=handle, publisher=publisher)
    runner = threading.Thread(target=consumer.run, daemon=True)
    runner.start()
    try:
        assert publisher.wait_connected(10) and wait_until(lambda: consumer.is_connected, 10)
        assert _attempt(users.admin.url, _publish("", queues.work)) is None
        assert wait_until(lambda: users.admin.depth(queues.dead_letters) == 1, 20), calls
        assert len(calls) == 3
        if probe is not None:
            assert users.admin.depth(probe) == 1
    finally:
        consumer.stop()
        runner.join(10)
        publisher.stop()
        # The follow-up reached the next stage's work queue: leave every queue empty for the next stage's test.
        for name in topology.all_queue_names():
            _attempt(users.admin.url, lambda channel, queue=name: channel.queue_purge(queue))


def test_a_consumer_that_may_not_declare_exits_with_what_to_do_instead_of_retrying(users: BrokerUsers) -> None:
    # TOPOLOGY_DECLARE=full (the default) with a least-privilege user: a deployment mistake, never an outage.
    topology = Topology("", retry_delays=(0.2, 0.4))
    params = connection_parameters(users.urls["classifier"], name="test")
    publisher = Publisher(params).start()
    consumer = StageConsumer(
        params, topology=topology, stage=CLASSIFIER, handler=lambda _message: Handled(), publisher=publisher
    )
    try:
        with pytest.raises(TopologyRefused, match="TOPOLOGY_DECLARE=passive"):
            consumer.run()
    finally:
        publisher.stop()


def test_the_console_user_reads_depths_replays_and_purges_dead_letters_and_journals_its_actions(
    users: BrokerUsers,
) -> None:
    topology = Topology("", retry_delays=(0.2, 0.4), passive=True)
    console = connection_parameters(users.urls["console"], name="test-console")
    queues = topology.stage("mover")
    dead = pika.BasicProperties(
        delivery_mode=pika.DeliveryMode.Persistent, message_id="m-1", headers={"x-death-reason": "bug"}
    )
    publish_dead = lambda channel: channel.basic_publish("", queues.dead_letters, b"{}", dead, mandatory=True)  # noqa: E731
    for _ in range(3):
        assert _attempt(users.admin.url, publish_dead) is None
    try:
        # The Health page's queues: passive declares only.
        depths = {row.stage: row for row in stage_queues(console, topology)}
        assert depths["mover"].dead_letters == 3 and depths["mover"].ready == 0
        # The Dead letters page: read (every letter put back), replay one to the work queue, purge one.
        letters = DeadLetterQueues(console, topology)
        assert len(list_letters(plain_sweep(letters), ["mover"], LetterFilter())) == 3
        replayed = replay_letters(plain_sweep(letters), ["mover"], LetterFilter(), limit=1)
        assert len(replayed) == 1
        assert purge_letters(letters, {"mover": 1}) == {"mover": 1}
        assert users.admin.depths([queues.work, queues.dead_letters]) == {queues.work: 1, queues.dead_letters: 1}
        # Its audit record, confirmed by the broker, lands in the journal's queue.
        publisher = Publisher(console, topology=topology).start()
        try:
            assert publisher.wait_connected(10)
            journal_publisher(publisher, topology)(Decision.make("mover", "replayed", actor="anna", process="console"))
        finally:
            publisher.stop()
        assert users.admin.depth(topology.journal_queue) == 1

        mover_work = queues.work
        refused = {
            "read a work queue": lambda channel: channel.basic_get(mover_work),
            "consume the journal's queue": lambda channel: channel.basic_consume(
                topology.journal_queue, lambda *_: None
            ),
            "publish a delivery": _publish(topology.events_exchange),
            "publish to a stage's exchange": _publish(topology.detected_exchange),
            "publish to dead-letters": _publish(topology.dead_letter_exchange, mover_work),
            "declare the topology": Topology("", retry_delays=(0.2, 0.4)).declare,
            "declare a queue of its own": lambda channel: channel.queue_declare("console-own"),
        }
        for what, action in refused.items():
            assert _attempt(users.urls["console"], action) == ACCESS_REFUSED, what
        assert users.admin.depth(mover_work) == 1
    finally:
        for name in topology.all_queue_names():
            _attempt(users.admin.url, lambda channel, queue=name: channel.queue_purge(queue))
