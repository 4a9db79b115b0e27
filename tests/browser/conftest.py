"""A real console process on loopback, a headless Chromium from Debian's packages, a screenshot when a test fails.

Chromium is never downloaded: Playwright drives /usr/bin/chromium (``apt-get install chromium``; .ci/run installs
it). Without it the browser tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from console.auth import user_line
from shared.journal.sqlite_store import SqliteJournalStore
from standins.ports import free_port
from tests.browser.real_run import RealRun, real_run
from tests.support.real_broker import BrokerKit

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("SCREENSHOT_DIR", ROOT / "test-artifacts" / "screenshots"))
PASSWORDS = {"olga": "operator-password-1", "victor": "viewer-password-22"}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep each phase's report on the test item, so the ``page`` fixture knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def chromium_browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium_browser, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh browser context (no cookies) and page; its screenshot is kept if the test fails."""
    context = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield page
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.nodeid)[-150:]
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    context.close()


@dataclass
class Console:
    """A running ``python -m console``: its URL, its journal, and what it logged."""

    url: str
    journal: SqliteJournalStore
    process: subprocess.Popen[str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text("utf-8")

    def login(self, page, user: str, password: str | None = None) -> None:
        page.goto(f"{self.url}/login")
        page.fill("input[name=username]", user)
        page.fill("input[name=password]", password or PASSWORDS[user])
        page.click("button[type=submit]")


@pytest.fixture
def console_env() -> dict[str, str]:
    """More environment for the console process (a module overrides this fixture: a portal, rules)."""
    return {}


@contextmanager
def console_process(directory: Path, env: Mapping[str, str]) -> Iterator[Console]:
    """``python -m console`` with the two users, over the SQLite journal in ``directory``, with ``env`` on top."""
    users = directory / "users"
    users.write_text(
        user_line("olga", "operator", PASSWORDS["olga"]) + "\n" + user_line("victor", "viewer", PASSWORDS["victor"])
    )
    journal_file = directory / "journal.sqlite3"
    journal = SqliteJournalStore(journal_file)
    port = free_port()
    process_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DOCSPACE_", "CONSOLE_", "SMTP_", "PIPELINE_", "JOURNAL_"))
    }
    process_env.update(
        CONSOLE_PORT=str(port),
        CONSOLE_USERS_FILE=str(users),
        JOURNAL_URL=f"sqlite:///{journal_file}",
        IDEMPOTENCY_URL=f"sqlite:///{directory / 'idempotency.sqlite3'}",
        LOG_FORMAT="json",
    )
    process_env.update(env)
    log_path = directory / "console.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "console"],
            cwd=ROOT,
            env=process_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the console did not start: {log_path.read_text()}")
            time.sleep(0.1)
        yield Console(url, journal, process, log_path)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        journal.close()


@pytest.fixture
def console(broker: BrokerKit, tmp_path: Path, console_env: dict[str, str]) -> Iterator[Console]:
    """A console of the test's own, on an empty journal and a topology nobody else uses (its dead letters: the
    test's to make, replay and purge)."""
    with console_process(tmp_path, {**broker.env(), "CONSOLE_LOGIN_ATTEMPTS": "3", **console_env}) as running:
        yield running


@pytest.fixture(scope="module")
def run(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealRun]:
    """The real pipeline's morning on the simulator (tests/browser/real_run.py), once for the module's tests.

    Module-scoped, not session-scoped: its seven processes stop when the module is done, not at the end of the
    whole suite (where they would idle, and the reconciler poll, through every later test).
    """
    with real_run(amqp_url, tmp_path_factory.mktemp("run")) as made:
        yield made


@pytest.fixture(scope="module")
def run_console(run: RealRun) -> Iterator[Console]:
    """The console over the run's journal, broker topology, rules and outside world, as an operator runs it."""
    with console_process(run.journal_path.parent, {**run.broker.env(), **run.env}) as running:
        yield running
