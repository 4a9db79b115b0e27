"""The mail catcher's SMTP side: aiosmtpd hooks that answer scripted failures and hand each accepted mail on."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from aiosmtpd.smtp import SMTP, Envelope, LoginPassword, Session

from standins.mail.caught import CaughtMail


class SmtpHandler:
    """aiosmtpd's hooks; all state lives with the catcher (``take_failure``, ``keep``), so it survives a restart."""

    def __init__(self, take_failure: Callable[[str], str | None], keep: Callable[[CaughtMail], None]) -> None:
        self._take_failure = take_failure
        self._keep = keep

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if failure := self._take_failure("MAIL"):
            return failure
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if failure := self._take_failure("RCPT"):
            return failure
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if failure := self._take_failure("DATA"):
            return failure
        auth = session.auth_data
        self._keep(
            CaughtMail(
                mail_from=str(envelope.mail_from or ""),
                rcpt_tos=tuple(envelope.rcpt_tos),
                raw=envelope.original_content or b"",
                received_at=datetime.now(UTC),
                authenticated_as=auth.login.decode("utf-8", "replace") if isinstance(auth, LoginPassword) else None,
            )
        )
        return "250 Message accepted for delivery"
