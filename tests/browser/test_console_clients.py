"""The Clients page against the DocSpace simulator: the rules in force, a room DocSpace refuses flagged."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from simulator.server import DocSpaceSimulator
from tests.browser.conftest import Console


@pytest.fixture
def rooms(docspace_sim: DocSpaceSimulator) -> dict[str, str]:
    acme = docspace_sim.create_room("Acme Ltd")
    docspace_sim.create_folder(acme, "Incoming")
    globex = docspace_sim.create_room("Globex")
    docspace_sim.deny_room(globex)
    docspace_sim.register_webhook(
        "http://127.0.0.1:9/docspace/webhook", "Console-Test-Secret!1", triggers=["file.created"], check=False
    )
    return {"acme": acme, "globex": globex}


@pytest.fixture
def console_env(docspace_sim: DocSpaceSimulator, rooms: dict[str, str], tmp_path: Path) -> dict[str, str]:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        f'[[clients]]\nname = "acme"\nroom_id = {rooms["acme"]}\nmanager_email = "anna@acme.example"\n\n'
        f'[[clients]]\nname = "globex"\nroom_id = {rooms["globex"]}\nmanager_email = "bob@globex.example"\n'
        'title_patterns = ["<script>alert(1)</script>*"]\n',
        encoding="utf-8",
    )
    return {
        "DOCSPACE_API_HOST": docspace_sim.base_url,
        "DOCSPACE_API_KEY": docspace_sim.api_key,
        "INVOICE_RULES_FILE": str(rules),
    }


def test_the_rules_in_force_with_the_room_docspace_refuses_flagged(page, console: Console) -> None:
    console.login(page, "victor")
    deadline = time.monotonic() + 30
    while True:  # the doctor's checks run in the background once the console starts
        page.goto(f"{console.url}/clients")
        if "refused" in page.inner_text("main") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    acme = page.locator("tbody tr", has_text="anna@acme.example")
    globex = page.locator("tbody tr", has_text="bob@globex.example")
    assert "ok" in acme.inner_text() and "Incoming" in acme.inner_text()
    assert "refused" in globex.inner_text() and "403" in globex.inner_text()
    assert "<script>alert(1)</script>*" in globex.inner_text()  # shown as text
    assert page.locator("main script").count() == 0


def test_health_shows_docspace_s_failed_deliveries_and_the_refused_room(
    page, console: Console, docspace_sim: DocSpaceSimulator, rooms: dict[str, str]
) -> None:
    docspace_sim.upload_file(rooms["acme"], "Invoice-0815.pdf")  # its delivery meets nobody on port 9
    assert docspace_sim.wait_idle(30)
    console.login(page, "victor")
    page.goto(f"{console.url}/health")
    page.click("button:has-text('Check again')")
    deadline = time.monotonic() + 30
    while True:
        page.goto(f"{console.url}/health")
        text = page.inner_text("main")
        if "no answer" in text or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert page.locator("tr.flagged", has_text="no answer").count() >= 1
    assert "room globex" in text and "cannot read it (403)" in text
