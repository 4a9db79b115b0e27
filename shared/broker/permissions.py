"""Least-privilege broker users: each process kind's RabbitMQ permissions (configure, write, read) as regexes.

Measured on RabbitMQ 3.10 (docs/security.md, "Broker users"): a passive declaration needs no permission; a
publish (mandatory, confirmed) needs write on its exchange only; a consume needs read on the queue; the default
exchange is the resource ``amq.default``, and write on it reaches every queue of the virtual host by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.broker.topology import CLASSIFIER, MOVER, NOTIFIER_EMAIL, NOTIFIER_PIPELINE, STAGES, Topology

# The default exchange's name in permission checks. RabbitMQ has no way to grant it for some queues only.
DEFAULT_EXCHANGE = "amq.default"
NOTHING = "^$"  # matches no exchange or queue (names are never empty; the default exchange is amq.default)

INGRESS = "ingress"
RECONCILER = "reconciler"
JOURNAL = "journal"
CONSOLE = "console"
# The process kinds that get a user of their own; the notifier process runs both notifier stages.
KINDS = (INGRESS, "classifier", "mover", "notifier", RECONCILER, JOURNAL, CONSOLE)


@dataclass(frozen=True)
class Permission:
    """One user's permissions in one virtual host: ``rabbitmqctl set_permissions USER CONF WRITE READ``."""

    configure: str
    write: str
    read: str


def _only(*names: str) -> str:
    return "^(" + "|".join(re.escape(name) for name in names) + ")$" if names else NOTHING


def permissions(topology: Topology) -> dict[str, Permission]:
    """Each process kind's least privilege, for processes run with TOPOLOGY_DECLARE=passive.

    No kind configures anything. A stage writes its follow-up exchange, the dead-letter exchange (its own dead
    letters), the journal exchange (its decisions) and the default exchange (its retries and parked messages go
    straight to its delay queues), and reads only its own work queues.
    """

    def stage(follow_up: tuple[str, ...], *stages: str) -> Permission:
        writes = (*follow_up, topology.dead_letter_exchange, topology.journal_exchange, DEFAULT_EXCHANGE)
        return Permission(NOTHING, _only(*writes), _only(*(topology.stage(name).work for name in stages)))

    return {
        # Webhook deliveries and its decisions for the journal; publisher confirms and mandatory need no more.
        INGRESS: Permission(NOTHING, _only(topology.events_exchange, topology.journal_exchange), NOTHING),
        "classifier": stage((topology.detected_exchange,), CLASSIFIER),
        "mover": stage((topology.received_exchange,), MOVER),
        "notifier": stage((), NOTIFIER_EMAIL, NOTIFIER_PIPELINE),
        # Recovered uploads are announced like webhook deliveries; what it recovered goes to the journal.
        RECONCILER: Permission(NOTHING, _only(topology.events_exchange, topology.journal_exchange), NOTHING),
        JOURNAL: Permission(NOTHING, NOTHING, _only(topology.journal_queue)),
        # The operator console: queue depths are passive declares (no permission); it reads the dead letters
        # (a replay or purge is basic.get and ack), puts them back on their queue's tail or their stage's work
        # queue through the default exchange, and sends its audit records to the journal.
        CONSOLE: Permission(
            NOTHING,
            _only(topology.journal_exchange, DEFAULT_EXCHANGE),
            _only(*(topology.stage(name).dead_letters for name in STAGES)),
        ),
    }
