"""``invoice-pipeline send-test-event``: post a signed sample delivery to the ingress and print its answer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import requests
import typer
from rich.markup import escape

from ingress.settings import WEBHOOK_PATH, IngressSettings
from ops.cli_common import EXIT_CONFIG, EXIT_PROBLEM, console, load_settings
from ops.test_event import post_delivery, sample_delivery


def send_test_event(
    file: Annotated[
        Path | None,
        typer.Option("--file", exists=True, dir_okay=False, help="send this file's bytes as is (a saved delivery)"),
    ] = None,
    url: Annotated[str | None, typer.Option(help=f"default: http://127.0.0.1:$PORT{WEBHOOK_PATH}")] = None,
    file_id: Annotated[int | None, typer.Option(help="payload.id: a real file, to run it through the stages")] = None,
    folder_id: Annotated[int | None, typer.Option(help="payload.parentId of that file")] = None,
) -> None:
    """Sign a sample file.uploaded delivery with DOCSPACE_WEBHOOK_SECRET and post it to the ingress."""
    settings = load_settings(IngressSettings)
    secrets = settings.webhook_secrets()
    err = console(stderr=True)
    if not secrets:
        err.print(
            "[red]DOCSPACE_WEBHOOK_SECRET is not set[/red]: the test event is signed with it, like DocSpace does."
        )
        raise typer.Exit(EXIT_CONFIG)
    body = file.read_bytes() if file is not None else sample_delivery(file_id=file_id, folder_id=folder_id)
    target = url or f"http://127.0.0.1:{settings.port}{WEBHOOK_PATH}"
    try:
        resp = post_delivery(target, body, secrets[0], resent_at=time.time() if file is not None else None)
    except requests.RequestException as exc:
        err.print(f"[red]no answer from {escape(target)}:[/red] {type(exc).__name__}: {escape(str(exc))}")
        raise typer.Exit(EXIT_PROBLEM) from None
    out = console()
    colour = "green" if resp.ok else "red"
    out.print(f"POST {escape(target)} ({len(body)} bytes, signed) -> [{colour}]{resp.status_code} {resp.reason}[/]")
    out.print(resp.text, markup=False)
    if not resp.ok:
        if resp.status_code == 401:
            err.print("The ingress rejected the signature: it runs with another DOCSPACE_WEBHOOK_SECRET.")
        raise typer.Exit(EXIT_PROBLEM)
