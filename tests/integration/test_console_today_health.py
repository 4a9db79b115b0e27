"""The console's per-client arrivals (a real SQLite journal) and DocSpace write quota (real Redis), page to source."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import falcon.testing
import pytest
from pydantic import SecretStr

from console.__main__ import arrivals_today, window_today
from console.app import AuthConfig, create_app
from console.auth import LoginLimiter, Sessions, User, hash_password
from console.refresh import Refreshing
from console.sources import Sources
from ops.checkup import write_quota
from ops.cli import main as cli_main
from ops.today import arrivals, window
from shared.config.settings import DocSpaceSettings
from shared.journal.record import Decision
from shared.journal.sqlite_store import SqliteJournalStore
from shared.limits.redis_limiter import limiter_key
from shared.runtime.wiring import rate_limiter, shared_rate_limiter
from tests.support.console_sources import offline_sources
from tests.support.redis_keys import REDIS_URL, delete_containing

PASSWORD = "a long password"


class Browser:
    """A logged-in viewer on a console app in process (Falcon's test client): ``get`` sends the session cookie."""

    def __init__(self, sources: Sources) -> None:
        app = create_app(
            sources,
            auth=AuthConfig(users={"vera": User("vera", "viewer", hash_password(PASSWORD))}),
            sessions=Sessions(b"k" * 32, lifetime=600),
            limiter=LoginLimiter(5, 300),
        )
        self._client = falcon.testing.TestClient(app)
        form = self._client.simulate_get("/login")
        token = form.text.split('name="csrf" value="')[1].split('"')[0]
        login = self._client.simulate_post(
            "/login",
            body=urlencode({"csrf": token, "username": "vera", "password": PASSWORD, "next": "/today"}),
            headers={
                "Cookie": f"console_session={form.cookies['console_session'].value}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        self._cookie = login.cookies["console_session"].value

    def get(self, target: str) -> falcon.testing.Result:
        path, _, query = target.partition("?")
        return self._client.simulate_get(
            path, query_string=query, headers={"Cookie": f"console_session={self._cookie}"}
        )


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[SqliteJournalStore]:
    store = SqliteJournalStore(tmp_path / "journal.sqlite3")
    yield store
    store.close()


def _accepted(file_id: str, client: str, at: datetime) -> Decision:
    return Decision.make(
        "classifier",
        "accepted",
        at=at,
        file_id=file_id,
        invoice_id=f"{file_id}:1",
        client=client,
        title=f"{file_id}.pdf",
    )


def test_today_shows_each_client_s_invoices_since_midnight_each_number_opening_its_list(
    journal: SqliteJournalStore,
) -> None:
    now = datetime.now(UTC)
    midnight, _until, _name = window("today", now)
    earlier_today = midnight + (now - midnight) / 2
    journal.insert(
        [
            _accepted("101", "Acme Ltd", earlier_today),
            _accepted("102", "Acme Ltd", earlier_today + (now - earlier_today) / 2),
            _accepted("103", "Büro <Nord>", earlier_today),
            _accepted("100", "Acme Ltd", midnight - timedelta(hours=1)),  # yesterday's
            Decision.make("classifier", "ignored", at=earlier_today, file_id="104", client="Acme Ltd", reason="photo"),
        ]
    )
    # The CLI's function and the page's background count are one function over the same store.
    assert arrivals(journal, midnight, now + timedelta(seconds=1)).clients == [("Acme Ltd", 2), ("Büro <Nord>", 1)]
    per_client = Refreshing("arrivals", lambda: arrivals_today(journal), 30)
    per_client.run_once()
    browser = Browser(offline_sources(journal=journal, arrivals=per_client))

    page = browser.get("/today")
    assert page.status_code == 200
    table = page.text.split('id="per-client"')[1].split("</table>")[0]
    assert "Büro &lt;Nord&gt;" in table and "<Nord>" not in table  # a name from the rules is escaped too
    links = dict(
        (html.unescape(name), (html.unescape(href), int(count)))
        for name, href, count in re.findall(
            r"<tr><td>([^<]+)</td><td class=\"num\"><a href=\"([^\"]+)\">(\d+)</a>", table
        )
    )
    assert {name: count for name, (_href, count) in links.items()} == {"Acme Ltd": 2, "Büro <Nord>": 1}

    listed = browser.get(links["Acme Ltd"][0])
    assert listed.status_code == 200
    assert re.findall(r'href="/find\?q=(\d+)"', listed.text) == ["102", "101"]  # today's, newest first; not "100"
    assert "for Acme Ltd" in listed.text


def test_the_seven_day_window_is_shown_from_its_background_count_with_when_it_was_counted(
    journal: SqliteJournalStore,
) -> None:
    now = datetime.now(UTC)
    journal.insert([_accepted(str(200 + n), "Acme Ltd", now - timedelta(days=n, minutes=5)) for n in range(9)])
    week = Refreshing("today-7d", lambda: window_today(journal, "7d"), 30)
    week.run_once()
    browser = Browser(offline_sources(journal=journal, counted_windows={"7d": week}))
    page = browser.get("/today?window=7d")
    assert "counted in the background" in page.text
    assert re.search(r'id="funnel-invoices"[^>]*>7<', page.text)  # days 0..6, not the two older ones
    live = browser.get("/today?window=24h")
    assert "counted in the background" not in live.text
    assert re.search(r'id="funnel-invoices"[^>]*>1<', live.text)


@pytest.fixture
def docspace() -> Iterator[DocSpaceSettings]:
    """A portal of this test's own, so its quota keys in the shared Redis are its own (and deleted afterwards)."""
    host = f"https://t{uuid.uuid4().hex}.portal.example"
    settings = DocSpaceSettings(
        docspace_api_host=host,
        docspace_api_key=SecretStr("sk-console-test"),
        idempotency_url=SecretStr(REDIS_URL),
        docspace_daily_write_quota=10_000,
    )
    yield settings
    delete_containing(limiter_key(host, "sk-console-test"))


def test_health_shows_the_write_quota_the_movers_count_in_redis(docspace: DocSpaceSettings) -> None:
    mover = rate_limiter(docspace)  # what a mover builds: its gauge reads this count
    for _ in range(3):
        with mover.slot("POST"):
            pass
    with mover.slot("GET"):  # a read does not count against the quota
        pass
    shared = shared_rate_limiter(docspace, timeout=2.0)
    assert shared is not None
    assert write_quota(docspace, shared).used == mover.writes_used() == 3

    page = Browser(offline_sources(write_quota=lambda: write_quota(docspace, shared))).get("/health")
    assert re.search(r'id="write-quota"><strong>3</strong> of 10,000 writes used', page.text), page.text


def test_health_says_the_write_quota_is_not_tracked_without_redis(docspace: DocSpaceSettings, tmp_path: Path) -> None:
    in_process = docspace.model_copy(update={"idempotency_url": SecretStr(f"sqlite:///{tmp_path}/store.sqlite3")})
    assert shared_rate_limiter(in_process) is None
    page = Browser(offline_sources(write_quota=lambda: write_quota(in_process, None))).get("/health")
    assert "Not tracked here: IDEMPOTENCY_URL is not Redis" in page.text
    assert "the limit is 10,000 writes" in page.text


def test_health_says_when_redis_does_not_answer(docspace: DocSpaceSettings) -> None:
    away = docspace.model_copy(update={"idempotency_url": SecretStr("redis://127.0.0.1:1/0")})
    shared = shared_rate_limiter(away, timeout=1.0)
    page = Browser(offline_sources(write_quota=lambda: write_quota(away, shared))).get("/health")
    assert "StoreUnavailable: the shared DocSpace limit in Redis did not answer" in page.text


def test_the_today_command_prints_the_same_invoices_per_client(
    journal: SqliteJournalStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC)
    clients = ["Beta GmbH", "Acme Ltd", "Acme Ltd"] * 2
    journal.insert([_accepted(str(300 + n), name, now - timedelta(minutes=n + 1)) for n, name in enumerate(clients)])
    monkeypatch.setenv("JOURNAL_URL", f"sqlite:///{tmp_path / 'journal.sqlite3'}")
    assert cli_main(["today", "--window", "1h"]) == 0
    out = capsys.readouterr().out
    assert "invoices arrived, per client" in " ".join(out.split())  # rich wraps the title to the table's width
    assert re.search(r"Acme Ltd\s*│\s*4", out) and re.search(r"Beta GmbH\s*│\s*2", out), out
