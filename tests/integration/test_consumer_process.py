"""A consumer process as an operator meets it: SIGTERM finishes the message in hand; a topology clash exits 3."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ops.test_event import sample_delivery
from tests.support.mail_fixtures import wait_until
from tests.support.real_broker import BrokerKit


def _classifier(broker: BrokerKit, sim, tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "consumers.classifier"],
        env={
            **os.environ,
            **broker.env(),
            "DOCSPACE_API_HOST": sim.base_url,
            "DOCSPACE_API_KEY": sim.api_key,
            "CLIENT_ROOM_ID": env.pop("CLIENT_ROOM_ID", "1"),
            "MANAGER_EMAIL": "anna@acme.example",
            "IDEMPOTENCY_URL": f"sqlite:///{tmp_path / 'idempotency.sqlite3'}",
            "LOG_FORMAT": "json",
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _delivery(file_id: str, folder_id: str) -> bytes:
    return sample_delivery(file_id=int(file_id), folder_id=int(folder_id), title="Invoice-7.pdf", event_id=77)


def test_sigterm_finishes_the_message_in_hand_then_exits_0(broker: BrokerKit, docspace_sim, tmp_path: Path) -> None:
    sim = docspace_sim
    room = sim.create_room("Acme Ltd")
    file_id = sim.upload_file(room, "Invoice-7.pdf")
    # The classifier's one DocSpace call for a new folder: its room's path (it decides from the signed delivery).
    sim.faults.add(method="GET", path="/api/2.0/files/folder/*", latency=2.0)
    detected = broker.bind_probe(broker.topology.detected_exchange)
    process = _classifier(broker, sim, tmp_path, CLIENT_ROOM_ID=str(room))
    try:
        connection = broker.connect()
        connection.channel().basic_publish(broker.topology.events_exchange, "file.uploaded", _delivery(file_id, room))
        connection.close()
        assert wait_until(lambda: sim.call_count("GET") >= 1, timeout=20)
        process.send_signal(signal.SIGTERM)  # mid-message: the slow DocSpace call is in flight
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    output = process.stdout.read() if process.stdout else ""
    assert '"consumer_stopped"' in output, output
    _, body = broker.get(detected)
    assert f'"file_id":"{file_id}"'.encode() in body
    time.sleep(0.2)
    assert broker.depth(broker.topology.stage("classifier").work) == 0  # acked, not left for redelivery


def test_a_topology_mismatch_exits_3_with_a_clear_message(broker: BrokerKit, docspace_sim, tmp_path: Path) -> None:
    connection = broker.connect()
    channel = connection.channel()
    clash = broker.topology.prefix + "classifier"
    channel.queue_delete(clash)
    channel.queue_declare(clash, durable=True)  # a classic queue where a quorum queue belongs
    connection.close()
    process = _classifier(broker, docspace_sim, tmp_path)
    try:
        assert process.wait(30) == 3
    finally:
        if process.poll() is None:
            process.kill()
    output = process.stdout.read() if process.stdout else ""
    assert "topology" in output.lower() and "new name" in output, output
