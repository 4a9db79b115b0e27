"""Dead-letter queues for operators: read, replay and purge them in one ordered pass that never loses a message.

How a queue is read without losing anything (and why not ``basic_get`` + ``nack(requeue=True)``): a sweep counts
the queue's ready messages, then takes exactly that many from the head, one at a time, and for each one either
republishes it unchanged to the tail of the same queue ("keep") or to its stage's work queue ("replay"), or drops
it ("drop"). The original is acked only after the broker confirmed the republished copy, so a crash at any moment
leaves the message in the queue (at worst twice: a copy confirmed but its original not yet acked, which is
harmless because the stages are idempotent and a copy has the same :func:`dead_letter_id`). After a full pass the
kept messages are back in their original order.

A requeue would also keep the message, but on quorum queues every requeue counts against the delivery limit
(RabbitMQ 4.x gives every quorum queue a default limit of 20), so listing a dead-letter queue twenty times could
silently drop its messages. A republished copy is a new message with a fresh count.

Messages that arrive during a sweep go to the tail after the ones being swept and are left alone. Two sweeps of
the same queue at the same time would interleave; run one operator command at a time per queue.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pika
from pika.adapters.blocking_connection import BlockingChannel

from shared.broker.connection import BrokerNodes
from shared.broker.topology import Topology
from shared.core.headers import (
    ATTEMPT_HEADER,
    ATTEMPTS_HEADER,
    DEATH_HEADER,
    ERROR_HEADER,
    FAILURE_HEADERS,
    FIRST_FAILURE_HEADER,
    ID_HEADERS,
    LAST_FAILURE_HEADER,
    REASON_HEADER,
    REPLAYED_AT_HEADER,
    REPLAYS_HEADER,
    ROUTING_KEY_HEADER,
    STAGE_HEADER,
)
from shared.core.ids import small_count
from shared.docspace.delivery import parse_datetime

Decision = Literal["keep", "replay", "drop"]

_PURGE_BATCH = 500


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered message, with what its headers say about the failure."""

    id: str
    stage: str
    reason: str
    error: str
    attempts: int | None
    first_failure: datetime | None
    last_failure: datetime | None
    event_id: str | None
    file_id: str | None
    invoice_id: str | None
    routing_key: str | None
    message_id: str | None
    content_type: str | None
    headers: Mapping[str, Any] = field(repr=False)
    body: bytes = field(repr=False)


def dead_letter_id(stage: str, message_id: str | None, body: bytes) -> str:
    """The operator-facing id: 12 hex digits of SHA-256 over stage, message id and body.

    Stable across listings and sweeps (headers may change, these do not), short enough to type, and the same for
    two copies of one message. ``message_id`` alone is not enough: both notifier queues hold the same invoice id.
    """
    digest = hashlib.sha256(f"{stage}\0{message_id or ''}\0".encode())
    digest.update(body)
    return digest.hexdigest()[:12]


def describe(stage: str, properties: pika.BasicProperties, body: bytes) -> DeadLetter:
    """Read a dead letter's headers: ours (``x-reason``...) or the broker's ``x-death`` (delivery limit)."""
    headers = dict(properties.headers or {})
    death = _first_death(headers)
    reason = _text(headers.get(REASON_HEADER)) or (_text(death.get("reason")) if death else None) or "unknown"
    attempts = (
        small_count(headers.get(ATTEMPTS_HEADER))
        or small_count(headers.get(ATTEMPT_HEADER))
        or small_count(death.get("count"))
    )
    last = _when(headers.get(LAST_FAILURE_HEADER)) or _when(death.get("time"))
    return DeadLetter(
        id=dead_letter_id(stage, properties.message_id, body),
        stage=_text(headers.get(STAGE_HEADER)) or stage,
        reason=reason,
        error=_text(headers.get(ERROR_HEADER)) or "",
        attempts=attempts,
        first_failure=_when(headers.get(FIRST_FAILURE_HEADER)) or last,
        last_failure=last,
        event_id=_text(headers.get(ID_HEADERS["event_id"])),
        file_id=_text(headers.get(ID_HEADERS["file_id"])),
        invoice_id=_text(headers.get(ID_HEADERS["invoice_id"])),
        routing_key=original_routing_key(headers),
        message_id=properties.message_id,
        content_type=properties.content_type,
        headers=headers,
        body=body,
    )


def original_routing_key(headers: Mapping[str, Any]) -> str | None:
    """The key the message was first published with; the consumer reads it back from ``x-original-routing-key``."""
    key = _text(headers.get(ROUTING_KEY_HEADER))
    if key:
        return key
    death = _first_death(headers)
    keys = death.get("routing-keys") if death else None
    return _text(keys[0]) if isinstance(keys, list) and keys else None


def replay_properties(properties: pika.BasicProperties, now: datetime | None = None) -> pika.BasicProperties:
    """The message as its stage first saw it: same body and identity, failure headers gone, replay counted."""
    headers = {k: v for k, v in (properties.headers or {}).items() if k not in FAILURE_HEADERS}
    key = original_routing_key(properties.headers or {})
    if key:
        headers[ROUTING_KEY_HEADER] = key
    headers[REPLAYS_HEADER] = (small_count(headers.get(REPLAYS_HEADER)) or 0) + 1
    headers[REPLAYED_AT_HEADER] = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    replayed = copy.copy(properties)
    replayed.headers = headers
    replayed.delivery_mode = pika.DeliveryMode.Persistent.value
    return replayed


class DeadLetterQueues:
    """The dead-letter queues of one topology, over one short-lived connection per operation."""

    def __init__(self, params: pika.ConnectionParameters | BrokerNodes, topology: Topology) -> None:
        self._params = params
        self._topology = topology

    def depth(self, stage: str) -> int:
        with self._channel() as channel:
            return int(
                channel.queue_declare(self._topology.stage(stage).dead_letters, passive=True).method.message_count
            )

    def sweep(
        self,
        stage: str,
        decide: Callable[[DeadLetter], Decision],
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[tuple[DeadLetter, Decision]]:
        """One ordered pass over the stage's dead letters (see the module docstring); returns what was decided."""
        queues = self._topology.stage(stage)
        done: list[tuple[DeadLetter, Decision]] = []
        with self._channel() as channel:
            channel.confirm_delivery()
            total = int(channel.queue_declare(queues.dead_letters, passive=True).method.message_count)
            for index in range(total):
                method, properties, body = channel.basic_get(queues.dead_letters, auto_ack=False)
                if method is None:
                    break  # someone else took messages meanwhile
                letter = describe(stage, properties, body)
                decision = decide(letter)
                # With confirms on, basic_publish returns only once the broker has the copy (it raises on a nack
                # or, being mandatory, on an unroutable message); only then is the original let go.
                if decision == "keep":
                    channel.basic_publish("", queues.dead_letters, body, properties, mandatory=True)
                elif decision == "replay":
                    channel.basic_publish("", queues.work, body, replay_properties(properties), mandatory=True)
                channel.basic_ack(method.delivery_tag)
                done.append((letter, decision))
                if progress is not None:
                    progress(index + 1, total)
        return done

    def purge(self, stage: str, count: int) -> int:
        """Delete the ``count`` oldest dead letters of the stage (what the operator was shown); returns how many.

        Not ``queue.purge``: that also deletes whatever arrived after the operator counted and confirmed.
        """
        queue = self._topology.stage(stage).dead_letters
        removed, last_tag = 0, None
        with self._channel() as channel:
            while removed < count:
                method, _properties, _body = channel.basic_get(queue, auto_ack=False)
                if method is None:
                    break  # someone else took messages meanwhile
                removed, last_tag = removed + 1, method.delivery_tag
                # Acked in batches (one round trip per message would make a purge of thousands slow); whatever is
                # not acked yet when the connection drops goes back to the queue.
                if removed % _PURGE_BATCH == 0:
                    channel.basic_ack(last_tag, multiple=True)
            if last_tag is not None and removed % _PURGE_BATCH:
                channel.basic_ack(last_tag, multiple=True)
        return removed

    @contextmanager
    def _channel(self) -> Iterator[BlockingChannel]:
        connection = pika.BlockingConnection(self._params)
        try:
            yield connection.channel()
        finally:
            if connection.is_open:
                connection.close()


def _first_death(headers: Mapping[str, Any]) -> Mapping[str, Any]:
    deaths = headers.get(DEATH_HEADER)
    if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
        return deaths[0]
    return {}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return parse_datetime(_text(value))


# --- what the CLI and the console both do with them ------------------------------------------------------------


@dataclass(frozen=True)
class LetterFilter:
    """Which dead letters an operator means: a reason, failed since a time, an id (or its unique prefix)."""

    reason: str | None = None
    since: datetime | None = None
    ident: str | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if self.reason is not None and letter.reason != self.reason:
            return False
        if self.since is not None and (letter.last_failure is None or letter.last_failure < self.since):
            return False
        return self.ident is None or letter.id.startswith(self.ident)


Sweep = Callable[[list[str], Callable[[DeadLetter], Decision], str], list[tuple[DeadLetter, Decision]]]


def plain_sweep(queues: DeadLetterQueues) -> Sweep:
    """Sweep each stage in turn, without progress reporting (the CLI passes one with a progress bar)."""

    def sweep(
        stages: list[str], decide: Callable[[DeadLetter], Decision], _verb: str
    ) -> list[tuple[DeadLetter, Decision]]:
        done: list[tuple[DeadLetter, Decision]] = []
        for stage in stages:
            done += queues.sweep(stage, decide)
        return done

    return sweep


def list_letters(sweep: Sweep, stages: list[str], letter_filter: LetterFilter) -> list[DeadLetter]:
    """The dead letters that match, in queue order; every message is put back."""
    return [d for d, _ in sweep(stages, lambda _d: "keep", "reading") if letter_filter.matches(d)]


def replay_letters(
    sweep: Sweep, stages: list[str], letter_filter: LetterFilter, *, limit: int | None = None, dry_run: bool = False
) -> list[DeadLetter]:
    """Replay (or, dry, only count) the dead letters that match, at most ``limit``: what was chosen.

    ``limit`` is how an operator's confirmation holds: replay the N that were counted, not whatever arrived since.
    """
    chosen: list[DeadLetter] = []

    def decide(letter: DeadLetter) -> Decision:
        if not letter_filter.matches(letter) or (limit is not None and len(chosen) >= limit):
            return "keep"
        chosen.append(letter)
        return "keep" if dry_run else "replay"

    sweep(stages, decide, "checking" if dry_run else "replaying")
    return chosen


def purge_letters(queues: DeadLetterQueues, counts: Mapping[str, int]) -> dict[str, int]:
    """Delete, per stage, the number of oldest dead letters the operator was shown and confirmed."""
    return {stage: queues.purge(stage, count) for stage, count in counts.items() if count}
