"""The operator console in a real Chromium, over the journal a real pipeline run on the simulator filled.

Every test reads the one run (``run``, tests/browser/real_run.py) and the console started over it (``run_console``).
What a test expects is what the run did as the outside world saw it (DocSpace's deliveries and folders, the mail
catcher, the pipeline receiver) or as the journal stored it, read when the test asserts: the replay test changes
the run (an invoice arrives), so no test relies on running before or after it.
"""

from __future__ import annotations

import os
from pathlib import Path

from shared.broker.topology import MOVER
from shared.journal.record import decisions_from_bytes
from tests.browser.conftest import ROOT, Console
from tests.browser.real_run import XSS, RealRun
from tests.support.mail_fixtures import wait_until

PAGES = ("/today", "/find", "/dead-letters", "/health", "/clients")


def csrf(page) -> str:
    return page.get_attribute("input[name=csrf]", "value")


def dead_letters(run: RealRun) -> int:
    return run.broker.depth(run.broker.topology.stage(MOVER).dead_letters)


def letter_row(page, file_id: str):
    """The dead-letters page's row of the file's letter (the mover names no invoice before the move: by file)."""
    return page.locator("tbody tr", has=page.get_by_role("cell", name=file_id, exact=True))


def test_a_page_without_login_redirects_to_the_login_page(page, run_console: Console) -> None:
    for path in PAGES:
        page.goto(f"{run_console.url}{path}")
        assert page.url.startswith(f"{run_console.url}/login?next="), path
        assert page.is_visible("input[name=password]")


def test_a_wrong_password_fails_and_the_right_one_lands_where_the_user_was_going(page, run_console: Console) -> None:
    page.goto(f"{run_console.url}/clients")
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", "not-her-password")
    page.click("button[type=submit]")
    assert "Wrong user name or password." in page.inner_text("main")
    assert "/login" in page.url
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", "operator-password-1")
    page.click("button[type=submit]")
    assert page.url == f"{run_console.url}/clients"
    cookie = next(c for c in page.context.cookies() if c["name"] == "console_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"


def test_a_viewer_sees_the_run_s_dead_letters_but_cannot_replay_one(page, run_console: Console, run: RealRun) -> None:
    before = dead_letters(run)
    assert before >= 1  # the deleted file's, which no replay can cure
    run_console.login(page, "victor")
    page.goto(f"{run_console.url}/dead-letters")
    deleted = letter_row(page, run.files["deleted"])
    assert "docspace_not_found" in deleted.inner_text()
    assert page.locator("form[action='/dead-letters/replay'] button").count() == 0
    answer = page.request.post(
        f"{run_console.url}/dead-letters/replay",
        form={"csrf": csrf(page), "stage": MOVER, "id": deleted.locator("code").inner_text(), "count": "1"},
    )
    assert answer.status == 403
    assert dead_letters(run) == before


def test_a_post_without_the_csrf_token_is_refused(page, run_console: Console, run: RealRun) -> None:
    before = dead_letters(run)
    handled = lambda: len(run.pipeline.logs.events("mover", "message_handled", file_id=run.files["deleted"]))  # noqa: E731
    seen = handled()
    run_console.login(page, "olga")
    page.goto(f"{run_console.url}/dead-letters")
    target = letter_row(page, run.files["deleted"]).locator("code").inner_text()
    answer = page.request.post(f"{run_console.url}/dead-letters/replay", form={"stage": MOVER, "id": target})
    assert answer.status == 403
    forged = page.request.post(
        f"{run_console.url}/dead-letters/replay", form={"csrf": "0" * 64, "stage": MOVER, "id": target}
    )
    assert forged.status == 403
    assert dead_letters(run) == before
    assert not wait_until(lambda: handled() > seen, 1.0)  # nothing republished: the mover saw nothing new


def test_a_dead_letter_replayed_from_the_page_is_republished_once_and_its_record_names_the_user(
    page, run_console: Console, run: RealRun
) -> None:
    invoice = run.invoice_id("move_fails")
    before = dead_letters(run)
    audit = run.broker.bind_probe(run.broker.topology.journal_exchange, "#")
    run_console.login(page, "olga")
    page.goto(f"{run_console.url}/dead-letters")
    row = letter_row(page, run.files["move_fails"])
    assert "docspace_move_failed" in row.inner_text()
    row.locator("button", has_text="Replay").click()
    assert "Replayed 1 dead letter" in page.inner_text("main")
    assert "Recorded with your name" in page.inner_text("main")
    # The letter left the dead-letter queue; the mover took it, moved the file, and the invoice went out once.
    assert dead_letters(run) == before - 1
    assert wait_until(lambda: run.smtp.per_invoice()[invoice] == 1, 30), run.pipeline.logs.dump(40)
    assert wait_until(lambda: run.receiver.per_invoice()[invoice] == 1, 30), run.pipeline.logs.dump(40)
    run.settle()
    assert run.smtp.per_invoice()[invoice] == 1 and run.receiver.per_invoice()[invoice] == 1
    assert run.sim.folder_title(run.sim.file(run.files["move_fails"])["folderId"]) == "Incoming"
    assert dead_letters(run) == before - 1
    # One record of the action, naming the user, on the journal's exchange and in the journal.
    sent = [d for _, body in run.broker.get_all(audit) for d in decisions_from_bytes(body)[0]]
    replayed = [d for d in sent if d.outcome == "replayed"]
    assert [(d.stage, d.actor, d.file_id) for d in replayed] == [(MOVER, "olga", run.files["move_fails"])]
    stored = [(d.stage, d.outcome, d.actor) for d in run.timeline("move_fails")]
    assert stored.count((MOVER, "replayed", "olga")) == 1
    assert stored.count((MOVER, "received", None)) == 1
    assert stored.index((MOVER, "replayed", "olga")) < stored.index((MOVER, "received", None))
    assert '"user":"olga"' in run_console.log() and '"action":"replay"' in run_console.log()
    # The file's trace tells it: dead-lettered, replayed by olga, arrived.
    page.goto(f"{run_console.url}/find?q={run.files['move_fails']}")
    assert "arrived" in page.inner_text("#verdict")
    replay_row = page.locator("#timeline tbody tr", has_text="replayed")
    assert replay_row.count() == 1 and "by olga" in replay_row.inner_text()


def funnel_shown(page, run_console: Console, keys) -> dict[str, int]:
    page.goto(f"{run_console.url}/today?window=1h")  # the hour the run took, whatever the time of day
    return {key: int(page.inner_text(f"#funnel-{key}")) for key in keys}


def test_the_funnel_s_numbers_are_what_the_run_did_and_each_opens_its_list(
    page, run_console: Console, run: RealRun
) -> None:
    run.settle()
    expected = run.funnel()
    del expected["files"]  # see the next test
    run_console.login(page, "victor")
    assert funnel_shown(page, run_console, expected) == expected
    main = page.inner_text("main")
    assert "not_an_invoice" in main and "docspace_not_found" in main
    if os.environ.get("CONSOLE_DOCS_SCREENSHOT"):
        page.goto(f"{run_console.url}/today")
        page.screenshot(path=str(ROOT / "docs" / "images" / "console-today.png"), full_page=True)
        page.goto(f"{run_console.url}/today?window=1h")
    page.click("#funnel-invoices")
    assert page.locator("tbody tr").count() == expected["invoices"]
    assert f"{XSS} invoice.pdf" in page.inner_text("main")  # the title as text, never as markup


def test_files_seen_is_the_number_of_files_the_run_uploaded(page, run_console: Console, run: RealRun) -> None:
    run_console.login(page, "victor")
    assert funnel_shown(page, run_console, ["files"]) == {"files": run.funnel()["files"]}


def test_a_title_is_found_and_its_trace_shows_every_decision_the_journal_holds(
    page, run_console: Console, run: RealRun
) -> None:
    run_console.login(page, "victor")
    page.goto(f"{run_console.url}/find")
    page.fill("input[name=q]", "Invoice-2026-0042")
    page.click("button:has-text('Find')")
    assert "Invoice-2026-0042.pdf" in page.inner_text("h2")
    timeline = run.timeline("acme_first")
    rows = page.locator("#timeline tbody tr")
    assert rows.count() == len(timeline)
    shown = list(
        zip(
            rows.locator("td:nth-child(2)").all_inner_texts(),
            rows.locator("td:nth-child(3)").all_inner_texts(),
            strict=True,
        )
    )
    assert shown == [(d.stage, d.outcome) for d in timeline]
    for decision in ("ingress", "classifier", "mover", "notifier.email", "notifier.pipeline"):
        assert decision in {stage for stage, _ in shown}
    verdict = page.inner_text("#verdict")
    assert "arrived" in verdict and "anna@acme.example" in verdict


def test_a_title_with_a_script_is_found_and_shown_as_text(page, run_console: Console, run: RealRun) -> None:
    dialogs: list[str] = []

    def dismiss(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    run_console.login(page, "victor")
    page.goto(f"{run_console.url}/find")
    page.fill("input[name=q]", "<script>")
    page.click("button:has-text('Find')")
    assert f"{XSS} invoice.pdf" in page.inner_text("h2")
    assert page.locator("#timeline tbody tr").count() == len(run.timeline("script"))
    assert "arrived" in page.inner_text("#verdict")
    assert page.locator("main script").count() == 0 and dialogs == []


def test_a_skipped_file_shows_its_reason(page, run_console: Console, run: RealRun) -> None:
    run_console.login(page, "victor")
    page.goto(f"{run_console.url}/find?q=Team+photo")
    verdict = page.inner_text("#verdict")
    assert "skipped" in verdict and "not_an_invoice" in verdict and "acme" in verdict
    skipped = [d for d in run.timeline("photo") if d.stage == "classifier"]
    assert skipped and {(d.outcome, d.reason) for d in skipped} == {("ignored", "not_an_invoice")}


def test_a_file_deleted_before_its_move_shows_its_dead_letter(page, run_console: Console, run: RealRun) -> None:
    run_console.login(page, "victor")
    page.goto(f"{run_console.url}/find?q={run.files['deleted']}")
    verdict = page.inner_text("#verdict")
    assert "dead lettered" in verdict and "docspace_not_found" in verdict and f"{MOVER}.dlq" in verdict
    page.click("#verdict a:has-text('see it in Dead letters')")
    assert "docspace_not_found" in letter_row(page, run.files["deleted"]).inner_text()


def test_every_page_renders_from_the_run_for_an_operator(page, run_console: Console, run: RealRun) -> None:
    shots = os.environ.get("CONSOLE_PAGE_SHOTS")
    pages = {
        "today": "/today",
        "find": "/find?q=Invoice",
        "trace": f"/find?q={run.files['acme_first']}",
        "trace-script": f"/find?q={run.files['script']}",
        "trace-skipped": f"/find?q={run.files['photo']}",
        "trace-dead-letter": f"/find?q={run.files['deleted']}",
        "dead-letters": "/dead-letters",
        "health": "/health",
        "clients": "/clients",
    }
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        page.goto(f"{run_console.url}/login")
        page.screenshot(path=f"{shots}/login.png", full_page=True)
    run_console.login(page, "olga")
    for name, path in pages.items():
        answer = page.goto(f"{run_console.url}{path}")
        assert answer.status == 200, path
        assert answer.headers["content-security-policy"].startswith("default-src 'none'")
        assert answer.headers["x-frame-options"] == "DENY" and answer.headers["referrer-policy"] == "no-referrer"
        assert "Traceback" not in page.content()
        if shots:
            page.screenshot(path=f"{shots}/{name}.png", full_page=True)
