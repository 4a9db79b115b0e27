"""The signature check, one test per failure mode, against the delivery a real DocSpace server signed."""

from __future__ import annotations

import pytest

from ingress.signature import SignatureVerifier, sign
from tests.fixtures import DOCSPACE_FIXTURES

FIXTURES = DOCSPACE_FIXTURES


@pytest.fixture
def real_delivery() -> tuple[bytes, str, str]:
    body = (FIXTURES / "file.created.json").read_bytes()
    secret = (FIXTURES / "file.created.secret").read_text().strip()
    header = (FIXTURES / "file.created.sig").read_text().strip()
    return body, secret, header


def test_real_docspace_signature_verifies(real_delivery: tuple[bytes, str, str]) -> None:
    body, secret, header = real_delivery
    assert header.startswith("sha256=") and header[7:].isupper()
    assert SignatureVerifier([secret]).verify(body, header)


def test_lower_case_hex_verifies(real_delivery: tuple[bytes, str, str]) -> None:
    body, secret, header = real_delivery
    assert SignatureVerifier([secret]).verify(body, "sha256=" + header[7:].lower())


def test_one_changed_byte_fails(real_delivery: tuple[bytes, str, str]) -> None:
    body, secret, header = real_delivery
    tampered = body.replace(b"321.xlsx", b"321.xlsX")
    assert tampered != body
    assert not SignatureVerifier([secret]).verify(tampered, header)


@pytest.mark.parametrize("header", [None, "", "sha256=", "sha1=abc", "520FEF8A53886234C06559A5204F54248DE7E346C7"])
def test_missing_or_malformed_header_fails(real_delivery: tuple[bytes, str, str], header: str | None) -> None:
    body, secret, _ = real_delivery
    assert not SignatureVerifier([secret]).verify(body, header)


def test_wrong_secret_fails(real_delivery: tuple[bytes, str, str]) -> None:
    body, _, header = real_delivery
    assert not SignatureVerifier(["another-secret"]).verify(body, header)


def test_any_secret_of_a_rotation_verifies(real_delivery: tuple[bytes, str, str]) -> None:
    body, secret, header = real_delivery
    assert SignatureVerifier(["new-secret-2027", secret]).verify(body, header)
    assert SignatureVerifier(["new-secret-2027", secret]).verify(body, sign(body, "new-secret-2027"))


def test_non_ascii_header_is_rejected_not_raised(real_delivery: tuple[bytes, str, str]) -> None:
    body, secret, _ = real_delivery
    assert not SignatureVerifier([secret]).verify(body, "sha256=ÄÖÜ")


def test_sign_matches_docspace_upper_case(real_delivery: tuple[bytes, str, str]) -> None:
    body, secret, header = real_delivery
    assert sign(body, secret) == header


def test_no_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        SignatureVerifier([])
