"""Tolerant parsing of a DocSpace webhook delivery body into a small, shape-independent ``Delivery``."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

from shared.core.errors import PermanentError
from shared.core.ids import InvalidId, parse_id

__all__ = ["Delivery", "DeliveryPeek", "InvalidDelivery", "parse_datetime", "parse_delivery", "peek_delivery"]


class InvalidDelivery(PermanentError):
    """The body is not a webhook delivery: not JSON, no ``event``/``payload`` objects, or a field that cannot be
    what DocSpace sends there (an id that is no DocSpace id, a count that is no integer)."""

    reason = "invalid_delivery"


@dataclass(frozen=True)
class Delivery:
    """What the pipeline needs from a delivery, whichever payload shape DocSpace sent.

    Ids are strings (DocSpace sends ints for its own storage and strings for third-party rooms). A missing
    value is ``None``: the sender omits every default value, so absence means "default", never "error".
    """

    event_id: str | None
    trigger: str | None
    created_on: datetime | None
    created_by: str | None
    file_id: str | None
    folder_id: str | None
    root_id: str | None
    title: str | None
    entry_type: int | None
    webhook_id: str | None
    webhook_name: str | None
    retry_count: int
    # As sent, not parsed: it only has to be equal for two deliveries about the same upload.
    modified_on: str | None = None


# Lenient ISO-8601: DocSpace writes "…Z" for event dates, no zone for lastSuccessOn (read back from the
# database with an unspecified kind) and seven fractional digits plus an offset in REST ApiDateTime values.
# ASCII digits only: int() would also read "٢٠٢٦", which no DocSpace writes.
_DATE_RE = re.compile(
    r"^\s*(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?\s*$",
    re.ASCII,
)
# Far enough from datetime's limits that adding a margin or converting to UTC cannot overflow downstream.
_YEARS = (1970, 9000)


def parse_datetime(value: Any) -> datetime | None:
    """Parse a DocSpace date leniently into an aware datetime; naive values are taken as UTC.

    Accepts strings with or without a trailing ``Z``, with any number of fractional digits and with offsets,
    and the SDK's ``{"utcTime": ...}`` object form. Returns ``None`` for anything it cannot read (an impossible
    date, a year outside 1970-9000, an offset of a day or more): a date is never a reason to refuse a delivery.
    """
    if isinstance(value, dict):
        value = value.get("utcTime") or value.get("UtcTime")
    if not isinstance(value, str):
        return None
    m = _DATE_RE.match(value)
    if not m:
        return None
    year, month, day, hour, minute, second, frac, zone = m.groups()
    if not _YEARS[0] <= int(year) <= _YEARS[1]:
        return None
    micro = int((frac or "0")[:6].ljust(6, "0"))
    try:
        tz: timezone = UTC
        if zone and zone not in ("Z", "z"):
            sign = -1 if zone[0] == "-" else 1
            digits = zone[1:].replace(":", "")
            # timezone() refuses offsets of ±24 h or more with ValueError, as datetime() refuses 2026-13-45.
            tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0)))
        return datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            micro,
            tzinfo=tz,
        )
    except ValueError:
        return None


def _id(value: Any, where: str) -> str | None:
    """An id field: absent (``None``, empty) is ``None``; present, it is a DocSpace id or the delivery is invalid."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return parse_id(value)
    except InvalidId as exc:
        raise InvalidDelivery(f"{where} is not a DocSpace id: {exc}") from None


_INTEGER = re.compile(r"-?[0-9]{1,19}", re.ASCII)


def _int(value: Any, where: str) -> int | None:
    """A number field (an int, or its decimal text as older senders wrote it), within int64; else invalid."""
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        number = int(value.strip())
    if number is None or not -(2**63) <= number < 2**63:
        raise InvalidDelivery(f"{where} is not an integer within int64")
    return number


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


def _text(value: Any) -> str | None:
    """Informational text (who uploaded): a string, or a number's digits; anything else is left out."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return str(value)
    return None


_BOM = b"\xef\xbb\xbf"


def _load_parts(raw: bytes) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The body's ``event``, ``payload`` and ``webhook`` objects; raises ``InvalidDelivery``."""
    try:
        doc = orjson.loads(raw.removeprefix(_BOM) if isinstance(raw, bytes | bytearray) else raw)
    except (orjson.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise InvalidDelivery(f"delivery body is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidDelivery(f"delivery body is a JSON {type(doc).__name__}, not an object")
    event, payload = doc.get("event"), doc.get("payload")
    if not isinstance(event, dict) or not isinstance(payload, dict):
        raise InvalidDelivery("delivery body has no 'event' and 'payload' objects")
    webhook = doc.get("webhook")
    return event, payload, webhook if isinstance(webhook, dict) else {}


@dataclass(frozen=True)
class DeliveryPeek:
    """The few facts the ingress routes and traces a delivery by, read without the dates and titles."""

    event_id: str | None
    trigger: str | None
    file_id: str | None
    webhook_id: str | None
    retry_count: int
    created_on: datetime | None = None


def peek_delivery(raw: bytes) -> DeliveryPeek:
    """The ingress's cheap read of a delivery (it runs once per request). Raises ``InvalidDelivery``."""
    event, payload, webhook = _load_parts(raw)
    return DeliveryPeek(
        event_id=_id(event.get("id"), "event.id"),
        trigger=_str(event.get("trigger")),
        file_id=_id(payload.get("id"), "payload.id"),
        webhook_id=_id(webhook.get("id"), "webhook.id"),
        retry_count=_retry_count(webhook),
        # The ingress refuses a delivery older than its replay window: see ``ingress/replay.py``.
        created_on=parse_datetime(event.get("createOn")),
    )


def parse_delivery(raw: bytes) -> Delivery:
    """Read a delivery body, accepting both the current ``FileEntry`` payload and the newer REST-like one.

    Raises ``InvalidDelivery`` when the body cannot be a delivery, or an id or count in it cannot be what
    DocSpace sends (see ``shared.core.ids``). A missing file id is not an error here: whether a delivery is
    actionable is the classifier's call. Unreadable dates and titles are ``None``: they never decide a route.
    """
    event, payload, webhook = _load_parts(raw)

    created_by = _text(event.get("createBy")) or _text(payload.get("createBy"))
    if created_by is None and isinstance(payload.get("createdBy"), dict):
        created_by = _text(payload["createdBy"].get("id"))
    entry_type = _int(payload.get("fileEntryType"), "payload.fileEntryType")

    return Delivery(
        event_id=_id(event.get("id"), "event.id"),
        trigger=_str(event.get("trigger")),
        created_on=parse_datetime(event.get("createOn")),
        created_by=created_by,
        file_id=_id(payload.get("id"), "payload.id"),
        # parentId in both shapes; folderIdDisplay/folderId as fall-backs for partial payloads.
        folder_id=_id(*_field(payload, "parentId", "folderIdDisplay", "folderId")),
        root_id=_id(*_field(payload, "rootId", "rootFolderId")),
        title=_str(payload.get("title")),
        entry_type=entry_type if entry_type else None,
        webhook_id=_id(webhook.get("id"), "webhook.id"),
        webhook_name=_str(webhook.get("name")),
        retry_count=_retry_count(webhook),
        # FileEntry's modifiedOn, or the newer REST-like shape's updated: either changes with each new version.
        modified_on=_str(payload.get("modifiedOn")) or _str(payload.get("updated")),
    )


def _field(payload: dict[str, Any], *keys: str) -> tuple[Any, str]:
    """The first of ``keys`` present in ``payload``: its value and its name, for ``_id``."""
    for key in keys:
        if payload.get(key) is not None:
            return payload[key], f"payload.{key}"
    return None, f"payload.{keys[0]}"


def _retry_count(webhook: dict[str, Any]) -> int:
    # A negative count is read as none yet; the sender counts from 0.
    return max(_int(webhook.get("retryCount"), "webhook.retryCount") or 0, 0)
