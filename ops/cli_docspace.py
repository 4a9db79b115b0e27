"""``invoice-pipeline docspace``: register the portal's webhook and list its webhooks with their delivery health."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import typer
from pydantic import SecretStr
from rich.markup import escape
from rich.table import Table

from ingress.settings import WEBHOOK_PATH
from ops.cli_common import EXIT_PROBLEM, ago, console, load_settings
from ops.webhook_setup import generate_secret
from shared.config.plaintext import is_loopback
from shared.config.redact import safe_url
from shared.config.settings import DocSpaceSettings
from shared.core.errors import StageError
from shared.docspace.admin import PortalAdmin
from shared.docspace.errors import DocSpaceAccessDenied, DocSpaceRejected
from shared.docspace.webhooks import INVOICE_TRIGGERS, trigger_names
from shared.runtime.wiring import docspace_client

app = typer.Typer(help="Manage the DocSpace side: the webhook that feeds the pipeline.", no_args_is_help=True)

SCOPE_HINT = (
    "webhook management needs an API key with a global scope (*:write; *:read to list), "
    "created by a DocSpace admin in Settings > Developer Tools > API keys"
)


@app.command("register-webhook")
def register_webhook(
    url: Annotated[str, typer.Option(help=f"the public ingress URL, e.g. https://hooks.example.com{WEBHOOK_PATH}")],
    name: Annotated[str, typer.Option(help="the webhook's name in DocSpace (at most 50 characters)")] = (
        "invoice-pipeline"
    ),
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="allow an http:// URL to a host other than this machine: deliveries and their signatures "
            "would cross the network in plain text",
        ),
    ] = False,
) -> None:
    """Create the DocSpace webhook (file.created + file.uploaded) with a new secret, printed once."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise typer.BadParameter("give an absolute http(s) URL", param_hint="--url")
    if len(name) > 50:
        raise typer.BadParameter("DocSpace allows at most 50 characters", param_hint="--name")
    out, err = console(), console(stderr=True)
    if parts.scheme == "http":
        if not (insecure or is_loopback(parts.hostname)):
            raise typer.BadParameter(
                "an http:// URL sends every delivery in plain text: give the https:// URL of the reverse proxy, "
                "or pass --insecure for a trusted network",
                param_hint="--url",
            )
        why = "this machine, for development" if is_loopback(parts.hostname) else "--insecure"
        err.print(f"[yellow]note:[/yellow] plain http webhook URL allowed ({why})")
    if parts.path.rstrip("/") != WEBHOOK_PATH:
        path = escape(repr(parts.path))
        err.print(f"[yellow]note:[/yellow] the ingress listens on {WEBHOOK_PATH}; this URL's path is {path}")
    settings = load_settings(DocSpaceSettings)
    secret = SecretStr(generate_secret())
    with docspace_client(settings) as client:
        try:
            # DocSpace HEAD-checks the URL before saving, so the ingress must already answer there.
            config = PortalAdmin(client.transport).create_webhook(
                name=name, uri=url, secret=secret, triggers=INVOICE_TRIGGERS, ssl=parts.scheme == "https"
            )
        except DocSpaceAccessDenied as exc:
            err.print(f"[red]DocSpace refused:[/red] {escape(str(exc))}\nFix: {SCOPE_HINT}.")
            raise typer.Exit(EXIT_PROBLEM) from None
        except DocSpaceRejected as exc:
            err.print(
                f"[red]DocSpace refused:[/red] {escape(str(exc))}\n"
                "Fix: 'webhook URL not available' means DocSpace's HEAD to the URL failed: start the ingress and make "
                "the URL public (DocSpace refuses private addresses; use a tunnel for a local test). "
                "'already exists' means this name and URL are taken: see 'invoice-pipeline docspace webhooks'."
            )
            raise typer.Exit(EXIT_PROBLEM) from None
        except StageError as exc:
            err.print(f"[red]DocSpace is unavailable:[/red] {escape(str(exc))}")
            raise typer.Exit(EXIT_PROBLEM) from None
    out.print(
        f"Webhook {escape(config.id)} '{escape(config.name)}' created for {escape(safe_url(config.uri, path=True))}, "
        f"triggers {', '.join(trigger_names(config.triggers))}, enabled: {'yes' if config.enabled else 'NO'}."
    )
    out.print("\nIts secret is shown this once; DocSpace never shows it again. Put it in the ingress environment:\n")
    out.print(f"DOCSPACE_WEBHOOK_SECRET={secret.get_secret_value()}", markup=False, soft_wrap=True)
    out.print(
        "\n(in .env or your secret store, then restart the ingress; during a rotation list the old and the new "
        "secret comma-separated). Then run: invoice-pipeline doctor"
    )


@app.command("webhooks")
def webhooks() -> None:
    """List the portal's webhooks with their triggers and last success / failure."""
    settings = load_settings(DocSpaceSettings)
    err = console(stderr=True)
    with docspace_client(settings) as client:
        try:
            configs = PortalAdmin(client.transport).list_webhooks()
        except DocSpaceAccessDenied as exc:
            err.print(f"[red]DocSpace refused:[/red] {escape(str(exc))}\nFix: {SCOPE_HINT}.")
            raise typer.Exit(EXIT_PROBLEM) from None
        except StageError as exc:
            err.print(f"[red]DocSpace is unavailable:[/red] {escape(str(exc))}")
            raise typer.Exit(EXIT_PROBLEM) from None
    out = console()
    if not configs:
        out.print(
            "No webhooks on this portal. Create one: invoice-pipeline docspace register-webhook --url https://..."
        )
        return
    table = Table(title=f"{len(configs)} webhook(s) on {safe_url(settings.docspace_api_host)}", title_justify="left")
    for column in ("id", "name", "url", "enabled", "triggers", "last success", "last failure", "last status"):
        table.add_column(column, overflow="fold")
    for c in configs:
        failure = ago(c.last_failure_on)
        if c.last_failure_content:
            failure += f"\n{c.last_failure_content[:120]}"
        table.add_row(
            escape(c.id),
            escape(c.name),
            escape(safe_url(c.uri, path=True)),
            "yes" if c.enabled else "[red]no[/red]",
            ", ".join(trigger_names(c.triggers)),
            ago(c.last_success_on),
            escape(failure),
            str(c.last_status) if c.last_status else "-",
        )
    out.print(table)
