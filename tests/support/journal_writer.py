"""The journal writer as a real process (``python -m consumers.journal``) and where a test's journal lives."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import requests

from shared.journal.store import JournalStore
from shared.journal.wiring import open_journal_store
from tests.support.mail_fixtures import wait_until
from tests.support.processes import stop_gently
from tests.support.real_broker import BrokerKit


@dataclass
class JournalDb:
    """Where one test's journal lives, as the writer and the CLI are told (JOURNAL_URL, JOURNAL_SCHEMA)."""

    url: str
    schema: str

    def open(self) -> JournalStore:
        return open_journal_store(self.url, schema=self.schema)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Writer:
    """``python -m consumers.journal`` as a real process, its log in a file."""

    def __init__(self, broker: BrokerKit, db: JournalDb, tmp_path: Path, **env: str) -> None:
        self.port = _free_port()
        self.log = tmp_path / f"journal-{self.port}.log"
        self._env = {
            **os.environ,
            "AMQP_URL": broker.url,
            "TOPOLOGY_PREFIX": broker.topology.prefix,
            "RETRY_DELAYS": ",".join(str(d) for d in broker.topology.retry_delays),
            "DELIVERY_LIMIT": str(broker.topology.delivery_limit),
            "JOURNAL_URL": db.url,
            "JOURNAL_SCHEMA": db.schema,
            "METRICS_PORT": str(self.port),
            "LOG_FORMAT": "json",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Writer:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "consumers.journal"], env=self._env, stdout=out, stderr=subprocess.STDOUT
            )
        assert wait_until(self.ready, timeout=30), self.log.read_text()
        return self

    def ready(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/readyz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def metric(self, name: str) -> float:
        text = requests.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
        assert values, f"{name} not in /metrics"
        return values[0]

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            return stop_gently(self.process, 20, kill_wait=5)
        return int(self.process.returncode)
