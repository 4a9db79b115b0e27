"""What a process hands the publisher: one message to publish, in plain Python, without pika."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OutgoingMessage:
    """A persistent message for ``exchange``: the publisher turns it into AMQP properties when it sends it.

    AMQP short strings (``exchange``, ``routing_key``, ``message_id``, ``content_type``, ``type`` and header names)
    hold at most 255 UTF-8 bytes and header integers are signed 64-bit: whoever fills these from outside input
    caps them first (see ``ingress/fields.py``). A message that still does not fit fails alone.
    """

    exchange: str
    routing_key: str
    body: bytes
    message_id: str | None = None
    content_type: str = "application/json"
    headers: Mapping[str, Any] = field(default_factory=dict)
    timestamp: int | None = None
    type: str | None = None
    expiration_ms: int | None = None  # a per-message TTL: how long a parked message waits
