"""``CaughtMail``: one message the mail catcher accepted, with its envelope, parsed only when read."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from functools import cached_property
from typing import Any

_INVOICE_HEADER = re.compile(rb"^X-Invoice-Id:\s*(\S+)", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True)
class CaughtMail:
    """One message the SMTP server accepted, with its envelope; parsed only when read (a benchmark takes thousands)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    received_at: datetime
    authenticated_as: str | None = None
    arrived: float = field(default_factory=time.monotonic)  # for durations: never goes back

    @cached_property
    def message(self) -> EmailMessage:
        message = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(message, EmailMessage)  # the default policy builds EmailMessage
        return message

    @property
    def invoice_id(self) -> str | None:
        """The pipeline's ``X-Invoice-Id`` header, read from the raw bytes."""
        match = _INVOICE_HEADER.search(self.raw)
        return match.group(1).decode("ascii", "replace") if match else None

    def summary(self) -> dict[str, Any]:
        text = self.message.get_body(preferencelist=("plain",))
        return {
            "from": self.mail_from,
            "to": list(self.rcpt_tos),
            "subject": str(self.message.get("Subject", "")),
            "message_id": str(self.message.get("Message-ID", "")),
            "date": str(self.message.get("Date", "")),
            "received_at": self.received_at.isoformat(),
            "text": text.get_content() if text is not None else "",
        }
