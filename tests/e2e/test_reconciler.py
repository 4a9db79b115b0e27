"""No invoice left behind: the real pipeline processes and the reconciler, the real broker, the simulator speaking
DocSpace's webhook contract, a real SMTP server and pipeline receiver.

The ingress is made unreachable the way production loses it (a deploy, a firewall, DNS): DocSpace's requests
go through a TCP proxy that refuses connections while it is down.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from simulator import DocSpaceSimulator
from standins.mail.catcher import MailCatcher
from standins.pipeline_receiver import PipelineReceiver
from tests.e2e.pipeline import OutsideWorld, RunningPipeline, running_pipeline
from tests.support.mail_fixtures import wait_until
from tests.support.real_broker import BrokerKit
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

SECRET = "reconcile-Webhook-Secret!1"
STAGES = ("classifier", "mover", "notifier.email", "notifier.pipeline")


def _rules(sim: DocSpaceSimulator, tmp_path: Path, rooms: int = 1) -> tuple[list[str], list[str], Path]:
    ids, folders, text = [], [], []
    for i in range(rooms):
        room = sim.create_room(f"Client {i}")
        ids.append(room)
        folders.append(sim.create_folder(room, "Uploads"))
        text.append(f'[[clients]]\nname = "client{i}"\nroom_id = "{room}"\nmanager_email = "m{i}@client.example"\n')
    rules = tmp_path / "rules.toml"
    rules.write_text("\n".join(text), encoding="utf-8")
    return ids, folders, rules


def _env(world: OutsideWorld, rules: Path, **reconcile: str):
    return {
        **world.env(secret=SECRET, rules=rules),
        "CONCURRENCY": "8",
        # Short test intervals leave a cycle a few calls of the default 5%: give it 20% of the key (300/min).
        "RECONCILE_BUDGET_SHARE": "0.2",
        **{key.upper(): value for key, value in reconcile.items()},
    }


@contextmanager
def _pipeline_behind_a_proxy(
    broker: BrokerKit, env: dict[str, str], tmp_path: Path, *, reconcilers: int = 1
) -> Iterator[tuple[RunningPipeline, TcpProxy, str]]:
    """The pipeline with its reconciler(s); DocSpace reaches the ingress only through the returned proxy."""
    with running_pipeline(broker, env, tmp_path, reconcilers=reconcilers) as pipeline:
        port = int(pipeline.url.rsplit(":", 1)[1])
        proxy = TcpProxy("127.0.0.1", port)
        try:
            yield pipeline, proxy, f"http://127.0.0.1:{proxy.port}/docspace/webhook"
        finally:
            proxy.close()


def _wait_first_run(pipeline: RunningPipeline) -> None:
    """The first cycle (by whichever reconciler took it) sets the history floor: uploads come after it."""
    assert wait_until(lambda: bool(pipeline.logs.events(None, "reconcile_done")), 30), pipeline.logs.dump(60)


def _settle(pipeline: RunningPipeline, broker: BrokerKit, cycles: int, timeout: float) -> None:
    """Let ``cycles`` more reconcile cycles run, then wait for what they announced to be handled."""
    done = len(pipeline.logs.events(None, "reconcile_done"))
    assert wait_until(lambda: len(pipeline.logs.events(None, "reconcile_done")) >= done + cycles, timeout), (
        pipeline.logs.dump(40)
    )
    pipeline.wait_until_quiet(broker)


def _assert_exactly_once(world: OutsideWorld, files: list[str], broker: BrokerKit, pipeline: RunningPipeline) -> None:
    """``assert_exactly_once``, and one move per file: the reconciler never makes a stage work twice."""
    world.assert_exactly_once(files, pipeline, broker)
    assert world.sim.call_count("PUT", "/api/2.0/files/fileops/move") == len(files)


def test_an_ingress_down_for_two_minutes_loses_no_invoice(
    broker: BrokerKit,
    smtp_server: MailCatcher,
    pipeline_receiver: PipelineReceiver,
    tmp_path: Path,
) -> None:
    """DocSpace's real schedule (1+2+4+8+16 s, then it gives up), 20 uploads while the ingress is unreachable."""
    interval, settle = 20, 32
    # DocSpace's own sender: its real retry delays and its 10 parallel delivery slots.
    with DocSpaceSimulator(move_delay=0.03, webhook_threads=10, seed=7) as sim:
        world = OutsideWorld(sim, smtp_server, pipeline_receiver)
        _rooms, folders, rules = _rules(sim, tmp_path)
        env = _env(
            world,
            rules,
            reconcile_interval=str(interval),
            reconcile_log_settle=str(settle),
            reconcile_grace="60",
        )
        with _pipeline_behind_a_proxy(broker, env, tmp_path) as (pipeline, proxy, url):
            _wait_first_run(pipeline)
            sim.register_webhook(url, SECRET, triggers=["file.created", "file.uploaded"])
            files = [sim.upload_file(folders[0], "Invoice-before.pdf")]
            assert wait_until(lambda: len(smtp_server.mails) >= 1, 20), pipeline.logs.dump(60)

            proxy.down()
            down_at = time.monotonic()
            for i in range(20):
                files.append(sim.upload_file(folders[0], f"Invoice-{i:02d}.pdf"))
                time.sleep(max(down_at + 5.5 * (i + 1) - time.monotonic(), 0))
            time.sleep(max(down_at + 120 - time.monotonic(), 0))
            proxy.up()
            up_at = time.monotonic()

            assert wait_until(lambda: len(smtp_server.mails) >= 21, interval + 30), pipeline.logs.dump(80)
            assert pipeline_receiver.wait_for(21, timeout=10), pipeline.logs.dump(80)
            all_done_after = time.monotonic() - up_at
            assert sim.wait_idle(60)
            _settle(pipeline, broker, 1, timeout=interval + 30)  # one more cycle: nothing more may happen
            _assert_exactly_once(world, files, broker, pipeline)

            recovered = pipeline.metric("reconciler", "reconciler_recovered_total", source="delivery_log")
            print(
                f"\nall 21 invoices done {all_done_after:.1f}s after the ingress returned; {recovered:.0f} "
                "deliveries recovered from DocSpace's log"
            )
            assert all_done_after <= interval + 5
            assert recovered >= 20  # both triggers of most uploads failed for good; the classifier kept one each
            assert pipeline.metric("reconciler", "reconciler_webhook_enabled") == 1


def test_a_disabled_webhook_is_re_enabled_and_what_was_uploaded_meanwhile_is_found(
    broker: BrokerKit, world: OutsideWorld, tmp_path: Path
) -> None:
    sim = world.sim
    _rooms, folders, rules = _rules(sim, tmp_path)
    env = _env(
        world,
        rules,
        reconcile_interval="2",
        reconcile_grace="3",
        reconcile_log_settle="1",
        reconcile_scan_overlap="5",
    )
    with _pipeline_behind_a_proxy(broker, env, tmp_path) as (pipeline, proxy, url):
        _wait_first_run(pipeline)
        config_id = sim.register_webhook(url, SECRET, triggers=["file.created", "file.uploaded"])
        proxy.down()
        sim.age_webhook(config_id, days=4)  # no success for more than 3 days: the next failure disables it
        files = [sim.upload_file(folders[0], "Invoice-A.pdf")]
        assert wait_until(lambda: not sim.webhooks.get(config_id).enabled, 10)
        files += [sim.upload_file(folders[0], "Invoice-B.pdf"), sim.upload_file(folders[0], "Invoice-C.pdf")]

        # While DocSpace still cannot reach the ingress: A from DocSpace's log, B and C by the room scan.
        assert wait_until(lambda: len(world.smtp.mails) >= 3, 30), pipeline.logs.dump(80)
        assert pipeline.logs.events("reconciler", "webhook_disabled")  # said loudly, every cycle
        assert not sim.webhooks.get(config_id).enabled
        sources = collections.Counter(e["source"] for e in pipeline.logs.events("reconciler", "delivery_recovered"))
        assert sources["room_scan"] == 2 and sources["delivery_log"] >= 1, sources

        proxy.up()
        assert wait_until(lambda: sim.webhooks.get(config_id).enabled, 15), pipeline.logs.dump(40)
        # The line is written after DocSpace's answer, so it can trail the simulator's state by a moment.
        assert wait_until(lambda: bool(pipeline.logs.events("reconciler", "webhook_reenabled")), 5)
        assert [e["level"] for e in pipeline.logs.events("reconciler", "webhook_reenabled")] == ["critical"]
        assert wait_until(lambda: pipeline.metric("reconciler", "reconciler_webhook_enabled") == 1, 10)
        files.append(sim.upload_file(folders[0], "Invoice-D.pdf"))  # the webhook path again
        assert wait_until(lambda: len(world.smtp.mails) >= 4, 20), pipeline.logs.dump(80)
        assert world.receiver.wait_for(4, timeout=10)
        assert sim.wait_idle(10)
        _settle(pipeline, broker, 2, timeout=30)  # two more cycles: nothing more may happen
        _assert_exactly_once(world, files, broker, pipeline)


def test_a_hundred_invoices_then_reconcile_cycles_by_two_reconcilers_do_nothing_twice(
    broker: BrokerKit, world: OutsideWorld, tmp_path: Path
) -> None:
    sim = world.sim
    _rooms, folders, rules = _rules(sim, tmp_path, rooms=4)
    env = _env(
        world,
        rules,
        reconcile_interval="2",
        reconcile_grace="5",
        reconcile_log_settle="2",
        # Every window reaches back past the uploads, so each cycle below looks at all 100 files (4 pages).
        reconcile_scan_overlap="600",
    )
    with _pipeline_behind_a_proxy(broker, env, tmp_path, reconcilers=2) as (pipeline, _proxy, url):
        _wait_first_run(pipeline)
        sim.register_webhook(url, SECRET, triggers=["file.created", "file.uploaded"])
        files = [sim.upload_file(folders[i % 4], f"Invoice-{i:03d}.pdf") for i in range(100)]
        assert wait_until(lambda: len(world.smtp.mails) >= 100, 90), pipeline.logs.dump(60)
        assert world.receiver.wait_for(100, timeout=30)

        def cycles() -> int:
            return len(pipeline.logs.events(None, "reconcile_done"))

        # While the 100 went through, a scan may have announced some not yet done after the (short) grace period:
        # the classifier absorbed each as a duplicate. Two cycles for those to settle, then five that see every one
        # of the 100 files.
        _settle(pipeline, broker, 2, timeout=30)
        start, announced_before = cycles(), len(pipeline.logs.events(None, "delivery_recovered"))
        assert wait_until(lambda: cycles() >= start + 5, 30), pipeline.logs.dump(40)
        assert len(pipeline.logs.events(None, "delivery_recovered")) == announced_before  # nothing more announced
        five = pipeline.logs.events(None, "reconcile_done")[start : start + 5]
        assert [e["files_scanned"] for e in five] == [100] * 5, five  # each of them looked at every file
        assert sim.wait_idle(10)
        pipeline.wait_until_quiet(broker)
        _assert_exactly_once(world, files, broker, pipeline)

        # Two replicas, one cycle at a time: each time, one of them found the cycle done (or running) and stood back.
        not_run = pipeline.logs.events(None, "reconcile_not_run")
        assert not_run
        scanned = sum(
            pipeline.metric(name, "reconciler_files_scanned_total") for name in ("reconciler", "reconciler-2")
        )
        assert scanned >= 100
        announced = len(pipeline.logs.events(None, "delivery_recovered"))
        print(
            f"\n{cycles()} cycles by two reconcilers, {len(not_run)} stood back, {scanned:.0f} files looked at, "
            f"{announced} announced while they were going through (each absorbed by the classifier), none after"
        )
