"""The ingress's decision for each kind of delivery, through Falcon's test client with a fake publisher.

Millisecond tests for every path; what needs the real broker is in tests/integration/test_ingress*.py.
"""

from __future__ import annotations

from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from falcon import testing
from prometheus_client import CollectorRegistry

from ingress.app import EndpointLimits, IngressMetrics, IntakeHooks, create_app
from ingress.replay import RecentEvents
from ingress.signature import SignatureVerifier, resend_headers, sign
from ingress.spool import Spool
from ops.test_event import sample_delivery
from shared.core.errors import BrokerUnavailable, MessageRefused, UnpublishableMessage
from shared.core.outgoing import OutgoingMessage
from tests.support.journal_fakes import RecordingJournal

SECRET = "unit-Test-Secret-0123"
PATH = "/docspace/webhook"
INT64_MAX = 2**63 - 1
CREATED_ON = "2026-09-18T08:14:03Z"
# The ingress's wall clock in these tests: the deliveries below were created a moment ago.
CREATED_AT = datetime(2026, 9, 18, 8, 14, 3, tzinfo=UTC).timestamp()


class FakePublisher:
    """Implements the ingress's ``publish`` port: records each message, answers as scripted (confirm by default)."""

    def __init__(self) -> None:
        self.published: list[OutgoingMessage] = []
        self.answers: list[BaseException | None] = []  # one per publish, then confirms

    def publish(self, message: OutgoingMessage) -> Future[None]:
        future: Future[None] = Future()
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, TimeoutError):
            return future  # never confirmed
        if answer is None:
            self.published.append(message)
            future.set_result(None)
        else:
            future.set_exception(answer)
        return future


def delivery(
    event_id: Any = 141022,
    *,
    trigger: Any = "file.uploaded",
    webhook: dict[str, Any] | None = None,
    created_on: str = CREATED_ON,
) -> bytes:
    return sample_delivery(
        file_id=3358301,
        folder_id=6590431,
        title="Invoice-2026-0917.pdf",
        event_id=event_id,
        trigger=trigger,
        created_on=created_on,
        webhook=webhook if webhook is not None else {"id": 2622, "name": "invoice-router"},
    )


class Ingress:
    """The Falcon app under ``falcon.testing`` with a fake publisher, its metrics and (optionally) a spool."""

    def __init__(
        self, tmp_path: Path, *, spool: bool = False, replay_window: float = 3600, now: float = CREATED_AT + 2
    ) -> None:
        self.publisher = FakePublisher()
        self.metrics = IngressMetrics(CollectorRegistry())
        self.spool = Spool(tmp_path / "spool", max_bytes=1024 * 1024) if spool else None
        self.journal = RecordingJournal()
        self.client = testing.TestClient(
            create_app(
                verifier=SignatureVerifier([SECRET]),
                publish=self.publisher.publish,
                exchange="docspace.events",
                limits=EndpointLimits(confirm_timeout=0.05, retry_after_seconds=7),
                metrics=self.metrics,
                recent=RecentEvents(replay_window, wall_clock=lambda: now),
                spool=self.spool,
                hooks=IntakeHooks(journal=self.journal),
            )
        )

    def post(self, body: bytes, *, signature: str | None = None, **headers: str) -> testing.Result:
        headers["x-docspace-signature-256"] = signature if signature is not None else sign(body, SECRET)
        return self.client.simulate_post(PATH, body=body, headers=headers)

    def counted(self, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value("ingress_deliveries_total", {"outcome": outcome})
        return value or 0.0


@pytest.fixture
def ingress(tmp_path: Path) -> Ingress:
    return Ingress(tmp_path)


def test_a_delivery_is_published_byte_for_byte_with_the_ingress_s_own_content_type(ingress: Ingress) -> None:
    body = delivery()
    result = ingress.post(body, **{"Content-Type": "application/json; x=" + "y" * 300})
    assert result.status_code == 200 and result.json == {"status": "accepted", "event_id": "141022"}
    [message] = ingress.publisher.published
    assert message.body == body and message.content_type == "application/json"
    assert (message.routing_key, message.message_id) == ("file.uploaded", "141022")
    assert message.headers["x-docspace-event-id"] == "141022" and message.headers["x-signature-verified"] is True
    assert ingress.counted("accepted") == 1


def test_a_replay_is_answered_200_and_not_published_again(ingress: Ingress) -> None:
    body = delivery()
    assert ingress.post(body).status_code == 200
    replay = ingress.post(body)
    assert replay.status_code == 200 and replay.json == {"status": "replayed", "event_id": "141022"}
    # A DocSpace retry of the same event (new retry fields, new bytes) is the same event too.
    retry = delivery(webhook={"id": 2622, "retryCount": 1, "retryOn": "2026-09-18T08:14:05Z"})
    assert ingress.post(retry).json["status"] == "replayed"
    assert len(ingress.publisher.published) == 1
    assert ingress.counted("replayed") == 2


def test_a_retry_of_a_delivery_that_was_not_accepted_is_published(ingress: Ingress) -> None:
    ingress.publisher.answers = [BrokerUnavailable("down")]
    first = ingress.post(delivery())
    assert first.status_code == 503 and first.headers["Retry-After"] == "7"
    assert ingress.post(delivery(webhook={"id": 2622, "retryCount": 1})).status_code == 200
    assert len(ingress.publisher.published) == 1
    assert ingress.counted("broker_unavailable") == 1 and ingress.counted("accepted") == 1


def test_without_a_replay_window_every_delivery_is_published(tmp_path: Path) -> None:
    ingress = Ingress(tmp_path, replay_window=0)
    assert [ingress.post(delivery()).status_code for _ in range(3)] == [200, 200, 200]
    assert len(ingress.publisher.published) == 3


def test_a_replay_older_than_the_window_is_refused_even_by_a_restarted_ingress(tmp_path: Path) -> None:
    body = delivery()
    assert Ingress(tmp_path).post(body).status_code == 200
    # Two hours on, a new process (its memory of event ids empty) meets the same signed bytes again.
    restarted = Ingress(tmp_path, now=CREATED_AT + 7200)
    refused = restarted.post(body)
    # Not a 2xx: a delivery DocSpace itself sends this late (its backlog, or a manual redelivery, which keeps the
    # old createOn) then stays "failed" in DocSpace's log, where the reconciler picks it up.
    assert refused.status_code == 422
    assert refused.json == {"error": "stale delivery: event.createOn is older than the replay window"}
    assert restarted.publisher.published == []
    assert restarted.counted("stale") == 1 and restarted.counted("accepted") == 0
    # A manual redelivery through DocSpace's API: a new event id, the old createOn.
    assert restarted.post(delivery(event_id=141999)).status_code == 422
    assert restarted.counted("stale") == 2


@pytest.mark.parametrize(
    ("created_on", "now"),
    [
        (CREATED_ON, CREATED_AT + 31),  # DocSpace's last automatic retry
        (CREATED_ON, CREATED_AT + 900 + 31),  # ... when our clock runs a quarter of an hour fast
        (CREATED_ON, CREATED_AT + 3599),  # a delivery held an hour in DocSpace's queue, just inside
        ("2026-09-18T09:14:03Z", CREATED_AT),  # the portal's clock runs an hour fast
        ("not a date", CREATED_AT + 10**9),  # a date is never the reason to lose a delivery
        ("2026-09-18T08:14:03+24:00", CREATED_AT + 10**9),
    ],
)
def test_deliveries_inside_the_window_or_without_a_readable_date_are_published(
    tmp_path: Path, created_on: str, now: float
) -> None:
    ingress = Ingress(tmp_path, now=now)
    retry = delivery(webhook={"id": 2622, "retryCount": 5}, created_on=created_on)
    assert ingress.post(retry).status_code == 200
    assert len(ingress.publisher.published) == 1 and ingress.counted("stale") == 0


def test_an_operator_s_signed_recent_resend_of_an_old_delivery_is_published(tmp_path: Path) -> None:
    now = CREATED_AT + 30 * 86400
    ingress = Ingress(tmp_path, now=now)
    body = delivery()
    assert ingress.post(body, **resend_headers(body, SECRET, now - 5)).status_code == 200
    assert [m.body for m in ingress.publisher.published] == [body] and ingress.counted("stale") == 0


@pytest.mark.parametrize(
    "stamp",
    [
        pytest.param(lambda body, now: resend_headers(body, "Another-Secret-0123", now), id="wrong secret"),
        pytest.param(lambda body, now: resend_headers(body, SECRET, now - 3601), id="stamp too old"),
        pytest.param(lambda body, now: resend_headers(b"other bytes", SECRET, now), id="stamp of other bytes"),
        pytest.param(
            lambda body, now: {**resend_headers(body, SECRET, now), "x-pipeline-resent-at": str(int(now) + 1)},
            id="time changed",
        ),
        pytest.param(lambda body, now: {"x-pipeline-resent-at": str(int(now))}, id="no signature"),
        pytest.param(lambda body, now: {"x-pipeline-resent-at": "soon"}, id="not a time"),
    ],
)
def test_a_resend_stamp_that_is_not_fresh_and_signed_over_these_bytes_changes_nothing(
    tmp_path: Path, stamp: Any
) -> None:
    now = CREATED_AT + 30 * 86400
    ingress = Ingress(tmp_path, now=now)
    body = delivery()
    assert ingress.post(body, **stamp(body, now)).status_code == 422
    assert ingress.publisher.published == [] and ingress.counted("stale") == 1


def test_without_a_replay_window_no_delivery_is_too_old(tmp_path: Path) -> None:
    ingress = Ingress(tmp_path, replay_window=0, now=CREATED_AT + 10**8)
    assert ingress.post(delivery()).status_code == 200


def test_deliveries_without_an_event_id_are_never_taken_for_replays(ingress: Ingress) -> None:
    body = b'{"event":{"trigger":"file.uploaded"},"payload":{"id":1}}'
    assert [ingress.post(body).json["status"] for _ in range(2)] == ["accepted", "accepted"]
    ids = [m.message_id for m in ingress.publisher.published]
    assert all(i and i.startswith("no-event-id-") for i in ids) and ids[0] != ids[1]


@pytest.mark.parametrize("answer", [BrokerUnavailable("down"), TimeoutError(), MessageRefused("406")])
def test_a_broker_that_cannot_take_it_sends_it_to_the_spool(tmp_path: Path, answer: BaseException) -> None:
    ingress = Ingress(tmp_path, spool=True)
    ingress.publisher.answers = [answer]
    result = ingress.post(delivery())
    assert result.status_code == 202 and result.json["status"] == "spooled"
    assert ingress.spool is not None and ingress.spool.depth == 1
    # Spooled is accepted: a replay is not spooled again.
    assert ingress.post(delivery()).json["status"] == "replayed" and ingress.spool.depth == 1


def test_behind_a_backlog_deliveries_queue_in_the_spool_in_order(tmp_path: Path) -> None:
    ingress = Ingress(tmp_path, spool=True)
    ingress.publisher.answers = [BrokerUnavailable("down")]
    assert ingress.post(delivery(1)).status_code == 202
    assert ingress.post(delivery(2)).status_code == 202  # not published past the one waiting
    assert ingress.publisher.published == []
    assert ingress.spool is not None and ingress.spool.depth == 2


def test_a_full_spool_answers_503(tmp_path: Path) -> None:
    ingress = Ingress(tmp_path, spool=True)
    ingress.publisher.answers = [BrokerUnavailable("down")] * 3
    big = delivery(1)[:-1] + b',"pad":"' + b"x" * 700_000 + b'"}'
    assert ingress.post(big).status_code == 202
    refused = ingress.post(delivery(2)[:-1] + b',"pad":"' + b"x" * 700_000 + b'"}')
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "7"


def test_a_message_that_cannot_be_published_is_answered_422_and_counted(ingress: Ingress) -> None:
    ingress.publisher.answers = [UnpublishableMessage("ShortStringTooLong")]
    result = ingress.post(delivery())
    assert result.status_code == 422
    assert ingress.counted("unpublishable") == 1
    # Not accepted, so not remembered: DocSpace's retry goes through.
    assert ingress.post(delivery()).json["status"] == "accepted"


@pytest.mark.parametrize("signature", [None, "", "sha256=00", "sha256=" + "ÄÖ" * 32])
def test_a_bad_signature_is_401_and_nothing_is_published(ingress: Ingress, signature: str | None) -> None:
    body = delivery()
    result = ingress.client.simulate_post(
        PATH, body=body, headers={} if signature is None else {"x-docspace-signature-256": signature}
    )
    assert result.status_code == 401 and ingress.publisher.published == []
    assert ingress.counted("bad_signature") == 1


def test_a_body_over_the_cap_is_413(ingress: Ingress) -> None:
    body = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    assert ingress.post(body).status_code == 413
    assert ingress.publisher.published == [] and ingress.counted("too_large") == 1


# ---- the ways in of issue 11: values no AMQP field can hold, and values the peek may choke on ---------------


def test_an_event_id_of_5000_digits_is_kept_out_of_the_amqp_fields(ingress: Ingress) -> None:
    body = delivery("9" * 5000)
    assert ingress.post(body).status_code == 200
    [message] = ingress.publisher.published
    assert message.body == body
    assert message.message_id is not None and message.message_id.startswith("no-event-id-")
    assert "x-docspace-event-id" not in message.headers


def test_a_trigger_of_100_multibyte_characters_is_routed_as_unknown(ingress: Ingress) -> None:
    trigger = "ж" * 100  # 100 characters, 200 bytes
    assert ingress.post(delivery(trigger=trigger)).status_code == 200
    [message] = ingress.publisher.published
    assert message.routing_key == "unknown" and message.headers["x-docspace-trigger"] == "unknown"


def test_a_trigger_that_fits_in_bytes_keeps_its_name(ingress: Ingress) -> None:
    assert ingress.post(delivery(trigger="файл.загружен")).status_code == 200
    assert ingress.publisher.published[0].routing_key == "файл.загружен"


@pytest.mark.parametrize("odd", ["²", "--5", "5" * 5000, "٣", -(2**70), 2**63, 2**64 - 1, str(2**64), "9" * 4000])
@pytest.mark.parametrize("field", ["id", "retryCount"])
def test_odd_webhook_ids_and_retry_counts_never_cost_the_delivery(ingress: Ingress, field: str, odd: Any) -> None:
    body = delivery(webhook={"id": 2622, field: odd})
    result = ingress.post(body)
    assert result.status_code == 200, result.text
    [message] = ingress.publisher.published
    assert message.body == body and message.routing_key in {"file.uploaded", "unknown"}
    assert all(len(str(v).encode()) <= 255 for k, v in message.headers.items() if k != "x-received-at")
    # Read as a number (within int64) or, if the peek refuses it, the delivery is routed as unknown with count 0.
    assert -(2**63) <= message.headers["x-docspace-retry-count"] <= INT64_MAX


@pytest.mark.parametrize(
    "body", [b"not json \xff", b"[]", b'{"event":1}', b"{" * 100_000, b'{"event":{"id":"\\ud800"}}']
)
def test_signed_bodies_the_peek_cannot_read_are_published_as_unknown(ingress: Ingress, body: bytes) -> None:
    assert ingress.post(body).status_code == 200
    [message] = ingress.publisher.published
    assert message.body == body and message.routing_key == "unknown"


def test_the_public_app_serves_only_the_webhook_path(ingress: Ingress) -> None:
    assert ingress.client.simulate_head(PATH).status_code == 200
    assert ingress.client.simulate_get(PATH).status_code == 200
    for path in ("/metrics", "/healthz", "/readyz", "/"):
        assert ingress.client.simulate_get(path).status_code == 404


def test_each_delivery_s_decision_is_journalled_and_a_bad_signature_only_counted(tmp_path: Path) -> None:
    ingress = Ingress(tmp_path, spool=True)
    assert ingress.post(delivery()).status_code == 200
    assert ingress.post(delivery()).status_code == 200  # the same event again: a replay, refused
    ingress.publisher.answers = [BrokerUnavailable("down")]
    assert ingress.post(delivery(event_id=141023)).status_code == 202
    assert ingress.post(delivery(event_id=141024), signature="sha256=" + "0" * 64).status_code == 401
    assert ingress.journal.outcomes() == [
        ("ingress", "accepted", None),
        ("ingress", "replay_refused", "seen_recently"),
        ("ingress", "spooled", "broker_unavailable"),
    ]
    assert [(d.event_id, d.file_id) for d in ingress.journal.decisions] == [
        ("141022", "3358301"),
        ("141022", "3358301"),
        ("141023", "3358301"),
    ]


def test_a_stale_delivery_is_journalled_as_refused_with_its_rule(tmp_path: Path) -> None:
    restarted = Ingress(tmp_path, now=CREATED_AT + 7200)
    assert restarted.post(delivery()).status_code == 422
    [refused] = restarted.journal.decisions
    assert (refused.stage, refused.outcome, refused.reason, refused.event_id) == (
        "ingress",
        "refused",
        "stale",
        "141022",
    )
    assert refused.rule is not None and "replay window" in refused.rule


class _ExplodingJournal:
    def record(self, decision: Any) -> None:
        raise RuntimeError("journal exploded")


def test_a_journal_that_fails_never_changes_the_answer(tmp_path: Path) -> None:
    publisher = FakePublisher()
    client = testing.TestClient(
        create_app(
            verifier=SignatureVerifier([SECRET]),
            publish=publisher.publish,
            exchange="docspace.events",
            recent=RecentEvents(3600, wall_clock=lambda: CREATED_AT + 2),
            hooks=IntakeHooks(journal=_ExplodingJournal()),
        )
    )
    body = delivery()
    result = client.simulate_post(PATH, body=body, headers={"x-docspace-signature-256": sign(body, SECRET)})
    assert result.status_code == 200 and len(publisher.published) == 1
