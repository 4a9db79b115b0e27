"""The least-privilege permissions: what each regex lets through, and deploy/rabbitmq/users.sh kept generated."""

from __future__ import annotations

import re
from pathlib import Path

from ops.broker_users import users_script
from shared.broker.permissions import DEFAULT_EXCHANGE, permissions
from shared.broker.topology import Topology

ROOT = Path(__file__).resolve().parents[2]


def _allows(regex: str, name: str) -> bool:
    return re.search(regex, name) is not None  # RabbitMQ searches (unanchored): the regexes anchor themselves


def test_the_ingress_and_reconciler_write_only_deliveries_and_journal_records_and_configure_and_read_nothing() -> None:
    # A journal record refused for want of a permission would close the publisher's channel under the invoices.
    topology = Topology("staging.")
    names = [*(e.name for e in topology.exchanges()), *topology.all_queue_names(), DEFAULT_EXCHANGE, "docspace.events"]
    for kind in ("ingress", "reconciler"):
        grant = permissions(topology)[kind]
        assert [n for n in names if _allows(grant.write, n)] == ["staging.docspace.events", "staging.invoice.journal"]
        assert not any(_allows(grant.configure, n) or _allows(grant.read, n) for n in names)


def test_each_stage_reads_only_its_own_work_queues_and_configures_nothing() -> None:
    topology = Topology()
    grants = permissions(topology)
    queues = topology.all_queue_names()
    assert [q for q in queues if _allows(grants["classifier"].read, q)] == ["classifier"]
    assert [q for q in queues if _allows(grants["mover"].read, q)] == ["mover"]
    assert [q for q in queues if _allows(grants["notifier"].read, q)] == ["notifier.email", "notifier.pipeline"]
    assert [q for q in queues if _allows(grants["journal"].read, q)] == ["journal"]
    assert all(grant.configure == "^$" for grant in grants.values())
    # Retries and parked messages go through the default exchange: RabbitMQ cannot narrow that (docs/security.md).
    assert _allows(grants["mover"].write, DEFAULT_EXCHANGE) and not _allows(grants["mover"].write, "invoice.detected")


def test_the_console_reads_only_dead_letters_and_writes_only_the_journal_and_the_default_exchange() -> None:
    topology = Topology("staging.")
    grant = permissions(topology)["console"]
    names = [*(e.name for e in topology.exchanges()), *topology.all_queue_names(), DEFAULT_EXCHANGE]
    assert [n for n in names if _allows(grant.read, n)] == [
        f"staging.{stage}.dlq" for stage in ("classifier", "mover", "notifier.email", "notifier.pipeline")
    ]
    assert sorted(n for n in names if _allows(grant.write, n)) == [DEFAULT_EXCHANGE, "staging.invoice.journal"]
    assert not any(_allows(grant.configure, n) for n in names)


def test_the_users_script_in_deploy_is_the_generated_one() -> None:
    expected = users_script(Topology())
    assert (ROOT / "deploy/rabbitmq/users.sh").read_text("utf-8") == expected, (
        "regenerate: invoice-pipeline topology --print-users > deploy/rabbitmq/users.sh"
    )
