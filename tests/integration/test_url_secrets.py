"""A PIPELINE_URL or DOCSPACE_API_HOST holding a token never shows it: not in logs, dead letters or doctor.

The notifier runs as a process on the real broker against a real HTTP endpoint that fails in each way a call
can fail (refused, 4xx, 5xx until the retry ladder is spent, a redirect that echoes the URL back), with a URL
carrying a secret in its userinfo, its path and its query at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from consumers.notifier.pipeline import HttpPipelineClient
from shared.broker.topology import NOTIFIER_PIPELINE
from shared.config.redact import safe_url, scrub
from shared.core.errors import StageError
from standins.ports import free_port
from tests.support.loopback_http import LoopbackServer, QuietHandler
from tests.support.mail_fixtures import wait_until
from tests.support.message_builders import invoice_received
from tests.support.processes import stop_gently
from tests.support.real_broker import BrokerKit

ROOT = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "invoice-pipeline")
USER_SECRET = "userinfo-secret-4711"
PATH_SECRET = "path-secret-4712"
QUERY_SECRET = "query-secret-4713"
SECRETS = (USER_SECRET, PATH_SECRET, QUERY_SECRET)


class FailingEndpoint(LoopbackServer):
    """A real HTTP endpoint that answers every request with ``status``; a redirect points back at the request."""

    def __init__(self, status: int) -> None:
        endpoint = self
        self.hits = 0

        class Handler(QuietHandler):
            def _answer(self) -> None:
                endpoint.hits += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", f"http://127.0.0.1:{endpoint.port}{self.path}")
                self.send_header("Retry-After", "inf")
                self.send_header("Content-Length", "4")
                self.end_headers()
                self.wfile.write(b"nope")

            do_POST = do_HEAD = _answer

        super().__init__(Handler)


def secret_url(port: int) -> str:
    return f"http://invoices:{USER_SECRET}@127.0.0.1:{port}/hooks/{PATH_SECRET}?api_key={QUERY_SECRET}"


@pytest.fixture(params=[400, 503, 307, "refused"])
def pipeline_url(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(URL, the dead-letter reason it ends in) for each way a pipeline call fails."""
    if request.param == "refused":
        yield secret_url(free_port()), "retries_exhausted"
        return
    endpoint = FailingEndpoint(request.param)
    reason = "retries_exhausted" if request.param == 503 else "pipeline_rejected"
    yield secret_url(endpoint.port), reason
    endpoint.close()


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} shown in:\n{text}"


def test_a_failing_pipeline_call_shows_no_secret_in_logs_or_dead_letters(
    broker: BrokerKit, pipeline_url: tuple[str, str], tmp_path: Path
) -> None:
    url, reason = pipeline_url
    env = {
        **os.environ,
        **broker.env(),
        "IDEMPOTENCY_URL": f"sqlite:///{tmp_path / 'idempotency.sqlite3'}",
        "PIPELINE_URL": url,
        "PIPELINE_SECRET": "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHM=",
        "PIPELINE_TIMEOUT": "2",
        "LOG_FORMAT": "json",
    }
    env.pop("SMTP_HOST", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "consumers.notifier", "--only", "pipeline"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    dlq = broker.topology.stage(NOTIFIER_PIPELINE).dead_letters
    try:
        invoice = invoice_received()
        connection = broker.connect()
        connection.channel().basic_publish(
            broker.topology.received_exchange, invoice.client, invoice.model_dump_json().encode()
        )
        connection.close()
        assert wait_until(lambda: broker.depth(dlq) == 1, 30), "the call never reached the dead-letter queue"
    finally:
        stop_gently(process, 30)
    logs = process.stdout.read() if process.stdout else ""
    properties, _ = broker.get(dlq)
    headers = properties.headers or {}
    assert headers["x-reason"] == reason, headers
    assert "127.0.0.1" in str(headers["x-error"])  # the host is still there to say which pipeline failed
    assert_no_secret(repr(headers))
    assert '"message_handled"' in logs and "insecure_transport_allowed" in logs
    assert_no_secret(logs)


def test_the_pipeline_client_caps_a_retry_after_of_inf() -> None:
    endpoint = FailingEndpoint(503)
    try:
        client = HttpPipelineClient(secret_url(endpoint.port), "s3cr3t", timeout=(2, 2), max_pause=42)
        with client, pytest.raises(StageError) as info:
            client.trigger(invoice_received())
    finally:
        endpoint.close()
    assert getattr(info.value, "retry_after", "missing") is None  # "inf" is junk, not "wait forever"
    assert_no_secret(str(info.value) + repr(client))


@pytest.mark.parametrize("status", [503, "refused"])
def test_doctor_shows_the_pipeline_and_docspace_hosts_without_their_secrets(status: int | str) -> None:
    endpoint = FailingEndpoint(503) if status == 503 else None
    port = endpoint.port if endpoint else free_port()
    env = {key: os.environ[key] for key in ("PATH", "HOME") if key in os.environ}
    env |= {
        "AMQP_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F",
        "PIPELINE_URL": secret_url(port),
        "PIPELINE_SECRET": "s3cr3t-0123456789abcdef",
        "DOCSPACE_API_HOST": f"http://admin:{USER_SECRET}@127.0.0.1:{port}",
        "DOCSPACE_API_KEY": "sk-test",
        "CLIENT_ROOM_ID": "1",
        "MANAGER_EMAIL": "anna@acme.example",
    }
    try:
        done = subprocess.run([CLI, "doctor"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        if endpoint:
            endpoint.close()
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert f"http://127.0.0.1:{port}" in output  # scheme and host: enough to know which endpoint it is
    assert "transport" in output and "plain http to this machine" in output
    assert_no_secret(output)


def test_safe_url_and_scrub_keep_the_host_and_drop_every_secret() -> None:
    url = secret_url(8443)
    assert safe_url(url) == "http://127.0.0.1:8443"
    assert safe_url(url, path=True) == f"http://127.0.0.1:8443/hooks/{PATH_SECRET}"
    assert safe_url("not a url") == "…" and safe_url("http://[::1") == "…" and safe_url(None) == ""
    quoted = f"HTTPConnectionPool(host='127.0.0.1', port=8443): Max retries exceeded with url: /hooks/{PATH_SECRET}"
    text = scrub(f"{quoted}?api_key={QUERY_SECRET} (Caused by ...) Invalid URL '{url}'", url)
    assert "127.0.0.1" in text
    assert_no_secret(text)
