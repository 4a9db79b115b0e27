"""docs/contract.md's example subscriber runs as printed: it binds its own queue and prints each invoice published."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pika

from tests.support.message_builders import invoice_received
from tests.support.real_broker import BrokerKit

CONTRACT_PAGE = Path(__file__).resolve().parents[2] / "docs" / "contract.md"


def _example() -> str:
    text = CONTRACT_PAGE.read_text("utf-8")
    match = re.search(r'```python\n("""Example downstream subscriber.*?)```', text, re.DOTALL)
    assert match, "docs/contract.md's example subscriber is gone"
    code = match.group(1)
    assert len(code.strip().splitlines()) <= 25, "the example is meant to stay short"
    return code


def test_the_readme_subscriber_receives_an_invoice(broker: BrokerKit) -> None:
    prefix = broker.topology.prefix
    queue = f"{prefix}accounting.invoices"
    # The same code, under this test's names, so it shares nothing with other tests.
    code = _example().replace('"invoice.received"', repr(broker.topology.received_exchange))
    code = code.replace('"accounting.invoices"', repr(queue))
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, "AMQP_URL": broker.url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        connection = broker.connect()
        channel = connection.channel()
        _wait_for_consumer(channel, queue, proc)
        event = invoice_received()
        channel.basic_publish(broker.topology.received_exchange, "acme", event.to_bytes())
        line = _read_line(proc, timeout=15)
        assert line == f"{event.invoice_id} {event.title} ({event.client}) {event.web_url}"
        channel.queue_delete(queue)
        connection.close()
    finally:
        proc.terminate()
        proc.wait(10)


def _wait_for_consumer(channel: pika.adapters.blocking_connection.BlockingChannel, queue: str, proc) -> None:
    """Until the example consumes: by then its queue is declared and bound, so a publish reaches it."""
    deadline = datetime.now(UTC).timestamp() + 15
    while datetime.now(UTC).timestamp() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        try:
            if channel.connection.channel().queue_declare(queue, passive=True).method.consumer_count:
                return
        except pika.exceptions.ChannelClosedByBroker:
            pass  # not declared yet
        channel.connection.sleep(0.2)
    raise AssertionError("the example never started consuming")


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    lines: list[str] = []
    stdout = proc.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: lines.append(stdout.readline().strip()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert lines, f"no line from the example within {timeout} s"
    return lines[0]
