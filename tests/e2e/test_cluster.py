"""Beyond one machine: the whole pipeline, two replicas of every stage, on a three-node RabbitMQ cluster that loses
the node leading its work queues (``kill -9``, restarted later) and then a second node (stopped gracefully).

The cluster is private to this module (its own node names, ports, files and cookie): the machine's RabbitMQ on
5672 is never touched. The stages share Redis, as replicas on several hosts would.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from shared.broker.topology import MOVER, STAGES, Topology
from simulator import DocSpaceSimulator
from standins.mail.catcher import MailCatcher
from standins.pipeline_receiver import PipelineReceiver
from standins.redis_keys import forget_redis_keys
from tests.e2e.pipeline import assert_exactly_once, outside_world_env, running_pipeline
from tests.support.mail_fixtures import wait_until
from tests.support.rabbit_cluster import RabbitCluster, installed, running_cluster
from tests.support.real_broker import BrokerKit, new_prefix

pytestmark = pytest.mark.e2e

SECRET = "cluster-Webhook-Secret!1"
REDIS_URL = "redis://127.0.0.1:6379/15"
INVOICES = 300
LADDER = (0.5, 1, 2, 4, 8, 8, 8, 8)


@pytest.fixture(scope="module")
def rabbit_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitCluster]:
    """Three clustered nodes from the installed rabbitmq-server (about 30 s to start), torn down after the module."""
    if not installed():
        reason = "rabbitmq-server is not installed: the cluster test starts nodes of its own"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    with running_cluster(tmp_path_factory.mktemp("rabbit-cluster")) as cluster:
        yield cluster


@pytest.fixture
def cluster_topology(rabbit_cluster: RabbitCluster, docspace_sim: DocSpaceSimulator) -> Iterator[Topology]:
    """A topology declared through the first node, so that node leads every work queue (quorum leaders start
    where they are declared); the Redis keys of its prefix are deleted afterwards."""
    topology = Topology(new_prefix(), retry_delays=LADDER, delivery_limit=20)
    connection = pika.BlockingConnection(pika.URLParameters(rabbit_cluster.nodes[0].url))
    topology.declare(connection.channel())
    connection.close()
    yield topology
    forget_redis_keys(REDIS_URL, topology.prefix, docspace_sim)


# Its waits add up to more than the suite's 300 s per test, though it takes about 2 minutes on a quiet machine.
@pytest.mark.timeout(900)
def test_three_hundred_invoices_arrive_exactly_once_while_the_cluster_loses_a_node_twice(
    rabbit_cluster: RabbitCluster,
    cluster_topology: Topology,
    docspace_sim: DocSpaceSimulator,
    smtp_server: MailCatcher,
    pipeline_receiver: PipelineReceiver,
    tmp_path: Path,
) -> None:
    cluster, topology, sim = rabbit_cluster, cluster_topology, docspace_sim
    work_queues = {topology.stage(stage).work for stage in STAGES}
    leaders = cluster.leaders(cluster.nodes[0], work_queues)
    assert set(leaders) == work_queues and len(set(leaders.values())) == 1, leaders
    leader = cluster.node_named(leaders[topology.stage(MOVER).work])
    # Every work queue has a replica on each node (the broker's default group size, 3).
    for queue in work_queues:
        assert len(cluster.members(leader, queue)) == 3, cluster.members(leader, queue)
    graceful, survivor = (node for node in cluster.nodes if node is not leader)

    room = sim.create_room("Acme Ltd")
    uploads = sim.create_folder(room, "Uploads")
    rules = tmp_path / "rules.toml"
    rules.write_text(
        f'[[clients]]\nname = "acme"\nroom_id = "{room}"\nmanager_email = "anna@acme.example"\n', encoding="utf-8"
    )
    sim.faults.add(path="/api/*", latency=0.02)  # long enough for the faults to meet messages in flight
    env = {
        "AMQP_URL": ",".join(cluster.urls),  # every process knows every node; each starts at a random one
        **outside_world_env(sim, secret=SECRET, rules=rules, smtp=smtp_server, receiver=pipeline_receiver),
        "IDEMPOTENCY_URL": REDIS_URL,
        "DOCSPACE_TIMEOUT": "5",
        "CONCURRENCY": "4",
        "HEARTBEAT": "5",
    }
    files: list[str] = []

    def upload(count: int) -> None:
        for _ in range(count):
            files.append(sim.upload_file(uploads, f"Invoice-{len(files):04d}.pdf"))

    def mailed() -> int:
        return len(smtp_server.mails)

    broker = BrokerKit(survivor.url, topology)  # the test's own view, through the node that never goes away
    started = time.monotonic()
    with running_pipeline(broker, env, tmp_path, replicas=2) as pipeline:
        sim.register_webhook(pipeline.url + "/docspace/webhook", SECRET, triggers=["file.created", "file.uploaded"])
        upload(INVOICES // 4)
        assert wait_until(lambda: mailed() >= 20, timeout=120), pipeline.logs.dump(80)

        cluster.kill(leader)  # kill -9 of the Erlang VM leading every work queue, with invoices in flight
        killed_at = mailed()
        upload(INVOICES // 4)
        assert wait_until(lambda: mailed() >= killed_at + 50, timeout=180), pipeline.logs.dump(80)

        cluster.restart(leader)  # it rejoins as a follower
        upload(INVOICES // 4)
        assert wait_until(lambda: mailed() >= INVOICES // 2 + 20, timeout=180), pipeline.logs.dump(80)

        cluster.stop_node(graceful)  # a second node leaves, politely
        upload(INVOICES - len(files))

        assert wait_until(lambda: mailed() >= INVOICES, timeout=300), pipeline.logs.dump(120)
        assert wait_until(lambda: sum(pipeline_receiver.per_invoice().values()) >= INVOICES, timeout=120), (
            pipeline.logs.dump(80)
        )
        assert sim.wait_idle(30)
        pipeline.wait_until_quiet(broker)  # any late duplicate has been handled by now
        elapsed = time.monotonic() - started

        names = pipeline.supervisor.names
        for name in names:
            assert pipeline.supervisor.process(name).poll() is None, f"{name} died"
            assert pipeline.supervisor.restarts(name) == 0, f"{name} was restarted"
        assert_exactly_once(sim, files, smtp_server, pipeline_receiver, pipeline, broker)
        # The processes failed over by themselves: more connections were opened than there are processes.
        assert len(pipeline.logs.events(None, "publisher_connected")) > len(names)
    print(f"cluster test: {INVOICES} invoices in {elapsed:.0f} s through a kill -9, a restart and a graceful stop")
