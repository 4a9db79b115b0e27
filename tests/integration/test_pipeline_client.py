"""HttpPipelineClient against a real HTTP receiver: the signed request, and typed failures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from pydantic import SecretStr

from consumers.notifier.handler import PipelineTrigger
from consumers.notifier.pipeline import USER_AGENT, HttpPipelineClient
from shared.core.errors import PermanentError, TransientError
from shared.core.events import InvoiceReceived
from standins.pipeline_receiver import PipelineReceiver
from standins.ports import free_port
from tests.support.mail_fixtures import PIPELINE_PATH
from tests.support.message_builders import invoice_received

pytestmark = pytest.mark.timeout(30)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


# What these tests read back from the request: the invoice id and a non-ASCII title.
NOTICE: dict[str, Any] = {"invoice_id": "4711:v2", "file_id": "4711", "title": "Счёт-Invoice №42.pdf"}


def invoice(**overrides: Any) -> InvoiceReceived:
    return invoice_received(**{**NOTICE, **overrides})


def verify(secret: str, headers: dict[str, str] | Any, body: bytes, tolerance: int = 300) -> bool:
    """An independent Standard Webhooks verifier, written from the spec rather than from our signer."""
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    key = base64.b64decode(secret.split("_", 1)[1]) if secret.startswith("whsec_") else secret.encode()
    expected = base64.b64encode(
        hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    for candidate in headers["webhook-signature"].split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


def client_for(receiver: PipelineReceiver, secret: SecretStr | str = SECRET, **kwargs: Any) -> HttpPipelineClient:
    kwargs.setdefault("timeout", (2.0, 5.0))
    return HttpPipelineClient(receiver.url, secret, **kwargs)


def test_receiver_gets_the_signed_invoice(pipeline_receiver: PipelineReceiver) -> None:
    trigger: PipelineTrigger = client_for(pipeline_receiver, SecretStr(SECRET))
    sent = invoice()

    trigger.trigger(sent)

    [request] = pipeline_receiver.wait_for(1)
    assert request.method == "POST"
    assert request.path == PIPELINE_PATH
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["webhook-id"] == "4711:v2"
    assert request.headers["idempotency-key"] == "4711:v2"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert request.headers["webhook-signature"].startswith("v1,")
    assert verify(SECRET, request.headers, request.body)
    assert not verify("whsec_" + base64.b64encode(b"another key").decode(), request.headers, request.body)
    assert not verify(SECRET, request.headers, request.body + b" ")

    assert json.loads(request.body.decode("utf-8")) == sent.model_dump(mode="json")
    assert InvoiceReceived.from_bytes(request.body) == sent
    assert "Счёт-Invoice №42.pdf".encode() in request.body  # UTF-8, not \u escapes
    assert b": " not in request.body  # compact


def test_plain_secret_signs_with_its_utf8_bytes(pipeline_receiver: PipelineReceiver) -> None:
    client_for(pipeline_receiver, "plain shared sëcret").trigger(invoice())

    [request] = pipeline_receiver.wait_for(1)
    assert verify("plain shared sëcret", request.headers, request.body)


def test_the_idempotency_key_is_the_same_on_a_retry(pipeline_receiver: PipelineReceiver) -> None:
    client = client_for(pipeline_receiver)
    pipeline_receiver.respond_with(500)

    with pytest.raises(TransientError):
        client.trigger(invoice())
    client.trigger(invoice())

    first, second = pipeline_receiver.wait_for(2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "4711:v2"
    assert first.body == second.body


def test_500_is_transient(pipeline_receiver: PipelineReceiver) -> None:
    pipeline_receiver.respond_with(500, body='{"error":"database down"}')

    with pytest.raises(TransientError) as caught:
        client_for(pipeline_receiver).trigger(invoice())
    assert caught.value.reason == "pipeline_unavailable"
    assert caught.value.retry_after is None
    assert "500" in str(caught.value)
    assert "database down" in str(caught.value)


def test_429_with_retry_after_is_transient_and_says_when(pipeline_receiver: PipelineReceiver) -> None:
    pipeline_receiver.respond_with(429, retry_after=7)

    with pytest.raises(TransientError) as caught:
        client_for(pipeline_receiver).trigger(invoice())
    assert caught.value.reason == "pipeline_unavailable"
    assert caught.value.retry_after == 7


def test_503_for_a_window_then_recovers(pipeline_receiver: PipelineReceiver) -> None:
    pipeline_receiver.respond_with(503, for_seconds=0.5, retry_after=1)
    client = client_for(pipeline_receiver)

    with pytest.raises(TransientError) as caught:
        client.trigger(invoice())
    assert caught.value.retry_after == 1

    time.sleep(0.6)
    client.trigger(invoice())


def test_408_is_transient(pipeline_receiver: PipelineReceiver) -> None:
    pipeline_receiver.respond_with(408)

    with pytest.raises(TransientError):
        client_for(pipeline_receiver).trigger(invoice())


def test_400_is_permanent_with_a_body_excerpt(pipeline_receiver: PipelineReceiver) -> None:
    pipeline_receiver.respond_with(400, body='{"error":"unknown field size"}' + "x" * 5000)

    with pytest.raises(PermanentError) as caught:
        client_for(pipeline_receiver).trigger(invoice())
    assert caught.value.reason == "pipeline_rejected"
    assert "400" in str(caught.value)
    assert "unknown field size" in str(caught.value)
    assert len(str(caught.value)) < 600


def test_redirect_is_not_followed(pipeline_receiver: PipelineReceiver) -> None:
    pipeline_receiver.respond_with(307, headers={"Location": "http://elsewhere.invalid/hook"})

    with pytest.raises(PermanentError) as caught:
        client_for(pipeline_receiver).trigger(invoice())
    assert caught.value.reason == "pipeline_rejected"
    assert "elsewhere.invalid" in str(caught.value)
    assert len(pipeline_receiver.calls) == 1


def test_connection_refused_is_transient() -> None:
    client = HttpPipelineClient(f"http://127.0.0.1:{free_port()}/hook", SECRET, timeout=(1.0, 1.0))

    with pytest.raises(TransientError) as caught:
        client.trigger(invoice())
    assert caught.value.reason == "pipeline_unavailable"


def test_read_timeout_is_transient(pipeline_receiver: PipelineReceiver) -> None:
    pipeline_receiver.respond_with(200, delay=2.0)

    with pytest.raises(TransientError) as caught:
        client_for(pipeline_receiver, timeout=(1.0, 0.3)).trigger(invoice())
    assert caught.value.reason == "pipeline_unavailable"


def test_receiver_outage_and_recovery(pipeline_receiver: PipelineReceiver) -> None:
    client = client_for(pipeline_receiver)
    pipeline_receiver.stop()

    with pytest.raises(TransientError):
        client.trigger(invoice())

    pipeline_receiver.start()
    client.trigger(invoice())
    assert len(pipeline_receiver.wait_for(1)) == 1


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "/relative", "example.com/hook"])
def test_bad_url_is_refused_at_start_up(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        HttpPipelineClient(url, SECRET)


def test_bad_secret_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="secret"):
        HttpPipelineClient("http://127.0.0.1/hook", SecretStr("whsec_***"))


def test_secret_is_not_in_repr() -> None:
    assert "MfKQ9r8G" not in repr(HttpPipelineClient("http://127.0.0.1/hook", SECRET))
