"""Standard Webhooks signing: the spec's test vector, secret handling, Retry-After parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from consumers.notifier.pipeline import sign_standard_webhook, signing_key
from shared.limits.retry_after import parse_retry_after

# The example from the Standard Webhooks specification (and the reference libraries' tests).
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TIMESTAMP = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_spec_test_vector() -> None:
    assert sign_standard_webhook(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY) == SPEC_SIGNATURE


def test_signature_covers_id_timestamp_and_body() -> None:
    base = sign_standard_webhook(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY)

    assert sign_standard_webhook(SPEC_SECRET, "msg_other", SPEC_TIMESTAMP, SPEC_BODY) != base
    assert sign_standard_webhook(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP + 1, SPEC_BODY) != base
    assert sign_standard_webhook(SPEC_SECRET, SPEC_MSG_ID, SPEC_TIMESTAMP, SPEC_BODY + b" ") != base


def test_whsec_secret_is_base64_decoded() -> None:
    assert signing_key(SPEC_SECRET) == base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")


def test_plain_secret_is_used_as_utf8_bytes() -> None:
    body = '{"title":"Счёт"}'.encode()
    expected = hmac.new("pässword".encode(), b"inv-1:v1.1700000000." + body, hashlib.sha256).digest()

    signature = sign_standard_webhook("pässword", "inv-1:v1", 1700000000, body)

    assert signature == "v1," + base64.b64encode(expected).decode()


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_not base64!"])
def test_unusable_secrets_are_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="secret"):
        signing_key(secret)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("Mon, 06 May 2024 07:00:30 GMT", 30.0),
        ("Mon, 06 May 2024 06:00:00 GMT", 0.0),  # in the past: go now
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
    ],
)
def test_retry_after(header: str | None, seconds: float | None) -> None:
    now = datetime(2024, 5, 6, 7, 0, 0, tzinfo=UTC)

    assert parse_retry_after(header, now=now) == seconds
