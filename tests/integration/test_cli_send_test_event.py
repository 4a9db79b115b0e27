"""``invoice-pipeline send-test-event`` through the real ingress app onto the real broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingress.app import create_app
from ingress.signature import SignatureVerifier
from ops.cli import main
from shared.broker.connection import connection_parameters
from shared.broker.publisher import Publisher
from tests.support.cli_env import use_broker
from tests.support.real_broker import BrokerKit
from tests.support.wsgi_server import WsgiServer

SECRET = "Send-Test-Secret!7"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "docspace"


@pytest.fixture
def ingress_url(broker: BrokerKit, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    use_broker(monkeypatch, broker)
    monkeypatch.setenv("DOCSPACE_WEBHOOK_SECRET", f"{SECRET},Older-Secret!2")
    publisher = Publisher(connection_parameters(broker.url, name="test-ingress")).start()
    assert publisher.wait_connected(10)
    app = create_app(
        verifier=SignatureVerifier([SECRET]), publish=publisher.publish, exchange=broker.topology.events_exchange
    )
    with WsgiServer(app) as server:
        yield server.url + "/docspace/webhook"
    publisher.stop()


def test_the_sample_is_signed_accepted_and_published_as_sent(
    ingress_url: str, broker: BrokerKit, capsys: pytest.CaptureFixture[str]
) -> None:
    probe = broker.bind_probe(broker.topology.events_exchange)
    assert main(["send-test-event", "--url", ingress_url]) == 0
    out = capsys.readouterr().out
    assert "200" in out and "accepted" in out and SECRET not in out
    properties, body = broker.get(probe)
    delivery = json.loads(body)
    assert delivery["event"]["trigger"] == "file.uploaded" and delivery["payload"]["fileEntryType"] == 2
    assert properties.message_id == str(delivery["event"]["id"])


def test_a_saved_delivery_is_sent_byte_for_byte(
    ingress_url: str, broker: BrokerKit, capsys: pytest.CaptureFixture[str]
) -> None:
    probe = broker.bind_probe(broker.topology.events_exchange)
    fixture = FIXTURES / "file.created.json"
    assert main(["send-test-event", "--url", ingress_url, "--file", str(fixture)]) == 0
    assert broker.get(probe)[1] == fixture.read_bytes()


def test_a_wrong_secret_is_reported(
    ingress_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DOCSPACE_WEBHOOK_SECRET", "Not-The-Secret!9")
    assert main(["send-test-event", "--url", ingress_url]) == 1
    assert "401" in capsys.readouterr().out
