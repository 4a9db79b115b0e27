"""Nothing lost, nothing twice: the whole pipeline under broker cuts, killed consumers, a flaky DocSpace,
a mail server outage, a failing pipeline receiver, and a broker gone for longer than DocSpace retries.

The pipeline reaches the broker through a TCP proxy: cutting or downing the proxy is the outage, so the machine's
shared RabbitMQ (which other processes use too) is never stopped or disturbed."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import BrokerFactory
from tests.e2e.pipeline import OutsideWorld, RunningPipeline, running_pipeline
from tests.support.mail_fixtures import wait_until
from tests.support.real_broker import BrokerKit
from tests.support.rules_file import write_rules
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

SECRET = "chaos-Webhook-Secret!1"
# Long enough, in total, to outlast the 20 s mail and pipeline outages and an expired claim lease.
LADDER = (0.5, 1, 2, 4, 8, 8, 8, 8)


def _env(world: OutsideWorld, rules: Path) -> dict[str, str]:
    return {
        **world.env(secret=SECRET, rules=rules),
        "DOCSPACE_TIMEOUT": "5",
        "SMTP_TIMEOUT": "5",
        "PIPELINE_TIMEOUT": "5",
        "CONCURRENCY": "8",
        # A killed worker's claim must expire well inside the retry ladder.
        "CLAIM_LEASE_SECONDS": "6",
    }


def _two_clients(sim, tmp_path: Path) -> tuple[list[str], Path]:
    acme = sim.create_room("Acme Ltd")
    globex = sim.create_room("Globex")
    folders = [
        sim.create_folder(sim.create_folder(sim.create_folder(acme, "Uploads"), "2026"), "November"),
        sim.create_folder(globex, "Scans"),
    ]
    rules = write_rules(tmp_path, {"acme": (acme, "anna@acme.example"), "globex": (globex, "bob@globex.example")})
    return folders, rules


@contextmanager
def _pipeline_for_two_clients(
    broker_factory: BrokerFactory, world: OutsideWorld, tmp_path: Path
) -> Iterator[tuple[BrokerKit, list[str], RunningPipeline, TcpProxy]]:
    """The four processes on a long retry ladder, two client rooms, and DocSpace's webhook pointing at them.

    The processes reach the broker through the returned proxy, the test's handle on broker outages.
    """
    sim = world.sim
    broker = broker_factory(retry_delays=LADDER, delivery_limit=20)
    folders, rules = _two_clients(sim, tmp_path)
    proxy = TcpProxy.in_front_of(broker.url)
    env = {**_env(world, rules), "AMQP_URL": proxy.proxied(broker.url)}
    try:
        with running_pipeline(broker, env, tmp_path) as pipeline:
            sim.register_webhook(pipeline.url + "/docspace/webhook", SECRET, triggers=["file.created", "file.uploaded"])
            yield broker, folders, pipeline, proxy
    finally:
        proxy.close()


def test_two_hundred_invoices_arrive_exactly_once_through_every_fault(
    broker_factory: BrokerFactory, world: OutsideWorld, tmp_path: Path
) -> None:
    sim = world.sim
    files: list[str] = []
    rig = _pipeline_for_two_clients(broker_factory, world, tmp_path)
    with rig as (broker, folders, pipeline, proxy):

        def upload(count: int) -> None:
            for _ in range(count):
                n = len(files)
                files.append(sim.upload_file(folders[n % 2], f"Invoice-{n:04d}.pdf"))

        sim.faults.add(method="*", path="/api/*", error_rate=0.3, error_status=503)
        sim.faults.add(method="*", path="/api/*", burst_429=15, retry_after=1)

        upload(50)
        proxy.cut()
        pipeline.supervisor.kill("classifier", signal.SIGKILL)
        upload(50)

        world.smtp.stop()
        threading.Timer(20, world.smtp.start).start()
        world.receiver.respond_with(500, for_seconds=20)
        pipeline.supervisor.kill("mover", signal.SIGKILL)
        upload(50)

        proxy.cut()
        pipeline.supervisor.kill("notifier", signal.SIGKILL)
        sim.faults.add(method="*", path="/api/*", burst_429=15, retry_after=2)
        upload(50)

        assert wait_until(lambda: len(world.smtp.mails) >= 200, timeout=240), pipeline.logs.dump(80)
        assert wait_until(lambda: sum(world.receiver.per_invoice().values()) >= 200, timeout=120), pipeline.logs.dump(
            80
        )
        assert sim.wait_idle(30)
        pipeline.wait_until_quiet(broker)  # any late duplicate has been handled by now

        assert all(pipeline.supervisor.restarts(name) >= 1 for name in ("classifier", "mover", "notifier"))
        world.assert_exactly_once(files, pipeline, broker)


def test_a_broker_stopped_for_a_minute_loses_no_delivery_docspace_was_told_was_accepted(
    broker_factory: BrokerFactory, world: OutsideWorld, tmp_path: Path
) -> None:
    sim = world.sim
    # DocSpace's own schedule: 1, 2, 4, 8, 16 s, then it gives up.
    sim.webhooks.retry_delays = (1, 2, 4, 8, 16)
    files: list[str] = []
    rig = _pipeline_for_two_clients(broker_factory, world, tmp_path)
    with rig as (broker, folders, pipeline, proxy):
        files += [sim.upload_file(folders[n % 2], f"Invoice-before-{n}.pdf") for n in range(5)]
        assert wait_until(lambda: len(world.smtp.mails) >= 5, timeout=60), pipeline.logs.dump(50)

        proxy.down()  # the broker is gone for the pipeline: connections drop, new ones are refused
        try:
            stopped_at = time.monotonic()
            while time.monotonic() - stopped_at < 60:
                files.append(sim.upload_file(folders[len(files) % 2], f"Invoice-during-{len(files)}.pdf"))
                time.sleep(3)
        finally:
            proxy.up()

        accepted = {
            json.loads(a.body)["event"]["id"]
            for a in sim.deliveries()
            if a.status is not None and 200 <= a.status < 300
        }
        assert wait_until(lambda: len(world.smtp.mails) >= len(files), timeout=180), pipeline.logs.dump(80)
        assert wait_until(lambda: sum(world.receiver.per_invoice().values()) >= len(files), timeout=60)
        pipeline.wait_until_quiet(broker)  # any late duplicate has been handled by now
        # Every delivery the ingress answered 2xx was processed: each upload's invoice arrived, once.
        assert len(accepted) >= 2 * len(files)
        assert pipeline.logs.events("ingress", "delivery_spooled"), "the outage should have been spooled"
        world.assert_exactly_once(files, pipeline, broker)
