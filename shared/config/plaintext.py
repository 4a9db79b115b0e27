"""When plain-text transport is allowed: to loopback for development, elsewhere only with ALLOW_INSECURE_TRANSPORT.

An ``http://`` DocSpace URL sends the API key in the clear, an ``http://`` pipeline URL the signed invoice, and
an SMTP login without TLS the password. Each is refused at start-up unless the host is this machine (the
tests and ``make run`` use simulators on 127.0.0.1) or the operator says so explicitly; either way a log
line says so.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from shared.config.redact import safe_url

__all__ = ["InsecureTransport", "check_smtp_login", "check_url", "is_loopback"]

SETTING = "ALLOW_INSECURE_TRANSPORT"


class InsecureTransport(ValueError):
    """A secret would cross the network in plain text and nothing allows it."""


def is_loopback(host: str | None) -> bool:
    """``localhost``, 127.0.0.0/8 or ``::1``: traffic that never leaves this machine."""
    if not host:
        return False
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_url(setting: str, url: str, *, allow_insecure: bool) -> str | None:
    """``None`` for ``https://``; a note for plain ``http://`` that is allowed; ``InsecureTransport`` otherwise."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        return None
    if is_loopback(parts.hostname):
        return f"{setting} {safe_url(url)} is plain http to this machine: allowed for development"
    if allow_insecure:
        return f"{setting} {safe_url(url)} is plain http, allowed by {SETTING}=true: traffic can be read on the way"
    raise InsecureTransport(
        f"{setting} must be https:// ({safe_url(url)} would carry secrets in plain text); "
        f"for a trusted network set {SETTING}=true"
    )


def check_smtp_login(host: str, *, login: bool, tls: bool, allow_insecure: bool) -> str | None:
    """A login without STARTTLS or implicit TLS sends the password in plain text: refused unless allowed."""
    if not login or tls:
        return None
    if is_loopback(host):
        return f"SMTP login to {host} without TLS: allowed for development (this machine)"
    if allow_insecure:
        return f"SMTP login to {host} without TLS, allowed by {SETTING}=true: the password can be read on the way"
    raise InsecureTransport(
        f"SMTP_USERNAME is set but neither SMTP_STARTTLS nor SMTP_SSL: the password would cross the network in "
        f"plain text; turn one on, or for a trusted network set {SETTING}=true"
    )
