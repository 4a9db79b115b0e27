"""The outside-world stand-ins of the demo: a real SMTP server with its page and API, a real pipeline receiver."""

from __future__ import annotations

import json
import smtplib
import time
from email.message import EmailMessage

import requests

from consumers.notifier.pipeline import sign_standard_webhook
from standins.mail.catcher import MailCatcher
from standins.pipeline_receiver import PipelineReceiver
from standins.ports import free_port
from tests.support.mail_fixtures import wait_until

SECRET = "whsec_ZGVtby1waXBlbGluZS1zZWNyZXQtbm90LXJlYWw="


def test_the_mail_catcher_keeps_each_mail_and_lists_it_as_json_and_as_an_escaped_page() -> None:
    catcher = MailCatcher(free_port(), http_port=free_port()).start()
    try:
        message = EmailMessage()
        message["From"], message["To"] = "invoices@pipeline.localhost", "anna@acme.example"
        message["Subject"] = "New invoice <script>alert(1)</script>"
        message.set_content("File: Invoice-2026-0042.pdf")
        with smtplib.SMTP(catcher.host, catcher.port, timeout=5) as smtp:
            smtp.send_message(message)
        assert wait_until(lambda: len(catcher.mails) == 1)

        listed = requests.get(f"{catcher.http_url}/api/messages", timeout=5).json()
        assert [(m["to"], m["subject"]) for m in listed] == [(["anna@acme.example"], message["Subject"])]
        assert "Invoice-2026-0042.pdf" in listed[0]["text"]
        page = requests.get(f"{catcher.http_url}/", timeout=5).text
        assert "&lt;script&gt;" in page and "<script>" not in page
        assert requests.get(f"{catcher.http_url}/nothing", timeout=5).status_code == 404
        assert requests.delete(f"{catcher.http_url}/api/messages", timeout=5).status_code == 204
        assert catcher.mails == []
    finally:
        catcher.stop()


def test_the_pipeline_receiver_accepts_signed_calls_refuses_others_and_records_both() -> None:
    receiver = PipelineReceiver(0, SECRET).start()
    try:
        body = json.dumps({"invoice_id": "18910:v1", "file_id": "18910"}).encode()
        stamp = int(time.time())
        signed = {
            "webhook-id": "18910:v1",
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign_standard_webhook(SECRET, "18910:v1", stamp, body),
        }
        assert requests.post(receiver.url, data=body, headers=signed, timeout=5).status_code == 202
        forged = {**signed, "webhook-signature": sign_standard_webhook("whsec_b3RoZXI=", "18910:v1", stamp, body)}
        assert requests.post(receiver.url, data=body, headers=forged, timeout=5).status_code == 401
        assert requests.post(receiver.url, data=body, headers={}, timeout=5).status_code == 401
        assert requests.head(receiver.url, timeout=5).status_code == 200  # doctor's check of the URL

        calls = requests.get(f"http://{receiver.host}:{receiver.port}/api/calls", timeout=5).json()
        assert [c["valid_signature"] for c in calls] == [True, False, False]
        assert calls[0]["body"] == {"invoice_id": "18910:v1", "file_id": "18910"}
        assert calls[0]["webhook_id"] == "18910:v1"
    finally:
        receiver.stop()
