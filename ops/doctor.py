"""The checks behind ``invoice-pipeline doctor``: each dependency, what is wrong with it, and how to fix it."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import methodcaller
from typing import Any, Literal

import pika
import pika.exceptions
import requests

from ingress.settings import WEBHOOK_PATH, IngressSettings
from shared.broker.connection import CONNECTION_ERRORS, BrokerNodes, node_names
from shared.broker.topology import STAGES, Topology
from shared.config.redact import safe_url
from shared.core.errors import StageError
from shared.core.events import IncomingFolder
from shared.core.rules import Rules
from shared.docspace.admin import PortalAdmin
from shared.docspace.client import DocSpaceClient
from shared.docspace.delivery import parse_datetime
from shared.docspace.errors import DocSpaceAccessDenied, DocSpaceNotFound
from shared.docspace.values import WebhookConfig
from shared.docspace.webhooks import (
    FILE_CREATED,
    FILE_UPLOADED,
    find_pipeline_webhook,
    register_command,
    trigger_names,
)

Status = Literal["ok", "warn", "fail", "off", "skip"]

# DocSpace disables a webhook whose deliveries have failed for 3 days; warn well before that.
WEBHOOK_DISABLE_AFTER = timedelta(days=3)
WEBHOOK_FAILING_ALARM = timedelta(days=1)


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report: a component, its status, what was seen and how to fix it."""

    component: str
    status: Status
    detail: str
    fix: str = ""


# --- broker -------------------------------------------------------------------------------------------------


def check_broker(params: pika.ConnectionParameters | BrokerNodes, topology: Topology) -> Iterator[Check]:
    """Reachable, the topology declared (passive declares only: the doctor never creates anything), dead letters.

    With several nodes (a cluster) every node is tried on its own as well: one that does not answer is a warning,
    since the processes fail over to the others.
    """
    nodes = [params] if isinstance(params, pika.ConnectionParameters) else list(params)
    try:
        connection = pika.BlockingConnection(nodes)
    except CONNECTION_ERRORS as exc:
        yield Check(
            "broker",
            "fail",
            f"cannot connect to {node_names(nodes)}: {type(exc).__name__} {exc}".strip(),
            "start RabbitMQ, or set AMQP_URL (user, password, host, vhost; several nodes comma-separated)",
        )
        yield Check("topology", "skip", "broker unreachable")
        return
    try:
        node = connection._impl.params  # the node pika settled on
        yield Check("broker", "ok", f"connected to {node.host}:{node.port} vhost {node.virtual_host}")
        if len(nodes) > 1:
            yield _cluster_nodes(nodes)
        missing: list[str] = []
        depths: dict[str, int] = {}
        for exchange in topology.exchanges():
            if not _passive(connection, methodcaller("exchange_declare", exchange.name, passive=True)):
                missing.append(f"exchange {exchange.name}")
        for queue in topology.queues():
            frame = _passive(connection, methodcaller("queue_declare", queue.name, passive=True))
            if not frame:
                missing.append(f"queue {queue.name}")
            elif queue.name.endswith(".dlq"):
                depths[queue.name] = int(frame.method.message_count)
        prefix = f" (prefix {topology.prefix!r})" if topology.prefix else ""
        if missing:
            yield Check(
                "topology",
                "fail",
                f"{len(missing)} missing{prefix}: " + ", ".join(missing[:4]) + (" ..." if len(missing) > 4 else ""),
                "run `invoice-pipeline topology` as the broker's administrator (or start a process with "
                "TOPOLOGY_DECLARE=full once); check TOPOLOGY_PREFIX and RETRY_DELAYS match the running processes",
            )
        else:
            yield Check(
                "topology", "ok", f"{len(topology.exchanges())} exchanges, {len(topology.queues())} queues{prefix}"
            )
        if not missing:
            waiting = {name: n for name, n in depths.items() if n}
            if waiting:
                yield Check(
                    "dead letters",
                    "warn",
                    ", ".join(f"{name}: {n}" for name, n in waiting.items()),
                    "invoice-pipeline dlq list; then replay or purge",
                )
            else:
                yield Check("dead letters", "ok", f"none in {len(STAGES)} dead-letter queues")
    finally:
        if connection.is_open:
            connection.close()


def _cluster_nodes(nodes: list[pika.ConnectionParameters]) -> Check:
    silent: list[str] = []
    for node in nodes:
        try:
            pika.BlockingConnection(node).close()
        except CONNECTION_ERRORS as exc:
            silent.append(f"{node.host}:{node.port} ({type(exc).__name__})")
    if not silent:
        return Check("cluster nodes", "ok", f"all {len(nodes)} nodes answer")
    return Check(
        "cluster nodes",
        "warn",
        f"{len(nodes) - len(silent)} of {len(nodes)} answer; not: {', '.join(silent)}",
        "the processes use the other nodes meanwhile; restart the node, or check `rabbitmqctl cluster_status`",
    )


def _passive(connection: pika.BlockingConnection, declare: Callable[[Any], Any]) -> Any:
    """Run one passive declare on its own channel: a missing name closes the channel with 404."""
    channel = connection.channel()
    try:
        return declare(channel)
    except pika.exceptions.ChannelClosedByBroker as exc:
        if exc.reply_code == 404:
            return None
        raise
    finally:
        if channel.is_open:
            channel.close()


# --- DocSpace -----------------------------------------------------------------------------------------------


def check_docspace(
    client: DocSpaceClient, portal: PortalAdmin, rules: Rules | None, webhook_url: str | None
) -> Iterator[Check]:
    """The portal and key (through the webhook list), every watched room, every Incoming folder, the webhook."""
    configs: list[WebhookConfig] | None = None
    try:
        configs = portal.list_webhooks()
        yield Check("docspace", "ok", f"{client.shown_url} answered; the API key is valid (global scope)")
    except DocSpaceAccessDenied as exc:
        if "401" in str(exc):
            yield Check(
                "docspace", "fail", f"the API key was rejected: {exc}", "create a new API key and set DOCSPACE_API_KEY"
            )
            return
        # 403 with a valid key: a files-only key. Enough for the stages; the webhook cannot be checked.
        yield Check(
            "docspace",
            "warn",
            f"{client.shown_url} answered; the key cannot read webhook settings (403)",
            "to let doctor check the webhook, use a key with a global scope (*:read)",
        )
    except StageError as exc:
        yield Check(
            "docspace",
            "fail",
            f"{client.shown_url} unreachable: {exc}",
            "check DOCSPACE_API_HOST and that this host can reach the portal",
        )
        return
    yield from _check_rooms(client, rules)
    if configs is None:
        yield Check("webhook", "skip", "the key cannot list webhooks")
    else:
        yield _check_webhook(configs, webhook_url)


def _check_rooms(client: DocSpaceClient, rules: Rules | None) -> Iterator[Check]:
    if rules is None:
        return
    for client_rule in rules.clients:
        label = f"room {client_rule.name}"
        try:
            title = client.folder_title(client_rule.room_id)
        except DocSpaceAccessDenied:
            yield Check(
                label,
                "fail",
                f"room {client_rule.room_id}: the API key cannot read it (403)",
                "invite the key's owner to the room (room admin or content creator), or fix room_id in the rules",
            )
            yield Check(f"incoming {client_rule.name}", "skip", "room unreadable")
            continue
        except DocSpaceNotFound:
            yield Check(
                label,
                "fail",
                f"room {client_rule.room_id} does not exist",
                "fix room_id in the rules file (the id is in the room's URL)",
            )
            yield Check(f"incoming {client_rule.name}", "skip", "room missing")
            continue
        except StageError as exc:
            yield Check(label, "fail", f"room {client_rule.room_id}: {exc}", "retry; check the portal's status")
            continue
        yield Check(label, "ok", f"'{title}' ({client_rule.room_id}) readable")
        yield _check_incoming(client, client_rule.name, client_rule.room_id, client_rule.incoming)


def _check_incoming(client: DocSpaceClient, name: str, room_id: str, incoming: IncomingFolder) -> Check:
    label = f"incoming {name}"
    folder_id, folder_name = incoming.id, incoming.name
    try:
        if folder_id:
            title = client.folder_title(folder_id)
            return Check(label, "ok", f"folder {folder_id} '{title}' present")
        found = client.find_subfolder(room_id, folder_name)
    except (DocSpaceAccessDenied, DocSpaceNotFound) as exc:
        return Check(label, "fail", str(exc), "fix incoming_folder_id in the rules, or remove it to use 'Incoming'")
    except StageError as exc:
        return Check(label, "fail", str(exc), "retry; check the portal's status")
    if found:
        return Check(label, "ok", f"'{folder_name}' present ({found})")
    return Check(label, "ok", f"'{folder_name}' not there yet: the mover creates it on the first invoice")


def _check_webhook(configs: list[WebhookConfig], webhook_url: str | None, now: datetime | None = None) -> Check:
    now = now or datetime.now(UTC)
    config = find_pipeline_webhook(configs, path=WEBHOOK_PATH, url=webhook_url)
    if config is None:
        where = webhook_url or f"a URL ending in {WEBHOOK_PATH}"
        return Check("webhook", "fail", f"no webhook registered for {where}", register_command(webhook_url))
    what = f"{config.id} '{config.name}' -> {safe_url(config.uri, path=True)}"
    if not config.enabled:
        return Check(
            "webhook",
            "fail",
            f"{what} is disabled (DocSpace disables one after 3 days of failed deliveries)",
            "make sure the URL answers, then enable it in DocSpace (Developer Tools > Webhooks)",
        )
    needed = FILE_CREATED | FILE_UPLOADED
    if config.triggers and config.triggers & needed != needed:
        return Check(
            "webhook",
            "fail",
            f"{what} triggers: {', '.join(trigger_names(config.triggers))}",
            "include file.created and file.uploaded (or register a new webhook with register-webhook)",
        )
    failing_since = _failing_since(config)
    if failing_since is not None:
        failing = now - failing_since
        error = f"last failure {config.last_failure_on:%Y-%m-%d %H:%M} UTC: {config.last_failure_content or '?'}"
        if failing >= WEBHOOK_FAILING_ALARM:
            left = max(WEBHOOK_DISABLE_AFTER - failing, timedelta(0))
            return Check(
                "webhook",
                "fail",
                f"{what}: no success for {failing.days}d {failing.seconds // 3600}h; DocSpace disables it in "
                f"about {left.days}d {left.seconds // 3600}h. {error}",
                "make the ingress reachable at the webhook URL (public address, TLS, DOCSPACE_WEBHOOK_SECRET)",
            )
        return Check("webhook", "warn", f"{what}: the last delivery failed. {error}", "check the ingress logs")
    last = config.last_success_on
    detail = f"{what}, enabled, triggers {', '.join(trigger_names(config.triggers))}"
    detail += f", last success {last:%Y-%m-%d %H:%M} UTC" if last else ", no delivery yet"
    return Check("webhook", "ok", detail)


def _failing_since(config: WebhookConfig) -> datetime | None:
    """When the current run of failures began (DocSpace counts from the last success, or from creation)."""
    failure = config.last_failure_on
    if failure is None or (config.last_success_on is not None and config.last_success_on >= failure):
        return None
    return config.last_success_on or config.created_on or failure


# --- reconciler ---------------------------------------------------------------------------------------------


def check_reconciler(last_run: dict[str, Any] | None, interval: float, now: datetime | None = None) -> Check:
    """The reconciler's last cycle, from the checkpoint store: when, and what it found."""
    now = now or datetime.now(UTC)
    if last_run is None:
        return Check(
            "reconciler",
            "warn",
            "no reconcile run recorded: deliveries DocSpace gives up on are not recovered",
            "run the reconciler (python -m consumers.reconciler, the compose service) or invoice-pipeline reconcile",
        )
    finished = parse_datetime(last_run.get("finished_at"))
    recovered = last_run.get("recovered") or {}
    found = (
        f"webhook {last_run.get('webhook', '?')}, {recovered.get('delivery_log', 0)} deliveries recovered from "
        f"the log, {recovered.get('room_scan', 0)} invoices announced by the room scan, "
        f"{last_run.get('files_scanned', 0)} files in {last_run.get('rooms_scanned', 0)}/"
        f"{last_run.get('rooms_total', 0)} rooms"
    )
    when = f"last run {finished:%Y-%m-%d %H:%M:%S} UTC" if finished else "last run at an unknown time"
    if last_run.get("error"):
        return Check(
            "reconciler", "fail", f"{when} failed: {last_run['error']}", "see the reconciler's log; it retries"
        )
    if finished is None or (now - finished).total_seconds() > 3 * interval:
        return Check(
            "reconciler",
            "fail",
            f"{when}: no successful run for 3 intervals ({interval:g}s each)",
            "is the reconciler running? see its log",
        )
    refused = [f for f in last_run.get("findings") or [] if isinstance(f, dict) and f.get("kind") == "room"]
    if refused:
        rooms = ", ".join(f"{f.get('what')} ({f.get('ref')}): {f.get('detail')}" for f in refused)
        return Check(
            "reconciler",
            "warn",
            f"{when}: {found}; rooms DocSpace refused to list: {rooms}",
            "give the API key access to the room again, or take it out of the rules",
        )
    return Check("reconciler", "ok", f"{when}: {found}")


def check_quarantine(set_aside: dict[str, dict[str, Any]]) -> Check:
    """The rows a bug met and the reconciler set aside (``delivery:<log id>``, ``file:<id>:v<version>``)."""
    if not set_aside:
        return Check("reconciler quarantine", "ok", "no row set aside")
    rows = "; ".join(
        f"{key} ({detail.get('error_type', '?')} at {detail.get('at', '?')})"
        for key, detail in sorted(set_aside.items())
    )
    return Check(
        "reconciler quarantine",
        "fail",
        f"{len(set_aside)} row(s) a bug met, set aside and not recovered: {rows}",
        "each one's traceback is in the reconciler's log (reconcile_failed, reason bug): look at that delivery or "
        "file in DocSpace, move it into the client's Incoming folder by hand if it is an invoice, report the bug",
    )


# --- ingress, SMTP, pipeline ----------------------------------------------------------------------------------


def check_ingress_secret(settings: IngressSettings) -> Check:
    count = len(settings.webhook_secrets())
    if not count:
        return Check(
            "webhook secret",
            "fail",
            "DOCSPACE_WEBHOOK_SECRET is not set: the ingress refuses to start",
            "set it to the secret printed by 'invoice-pipeline docspace register-webhook'",
        )
    weak = settings.weak_secrets()
    if weak:
        return Check(
            "webhook secret",
            "fail",
            "DOCSPACE_WEBHOOK_SECRET: " + "; ".join(weak) + ": the ingress refuses to start",
            "replace the short part with a long random secret (register-webhook generates one)",
        )
    too_long = [s for s in settings.webhook_secrets() if len(s) > 50]
    if too_long:
        return Check("webhook secret", "warn", "a secret is longer than DocSpace's 50 characters", "shorten it")
    return Check("webhook secret", "ok", f"{count} secret(s) configured" + (" (rotation)" if count > 1 else ""))


def check_smtp(
    host: str | None, port: int, *, starttls: bool, use_ssl: bool, timeout: float, local_hostname: str | None = None
) -> Check:
    """Connect and EHLO (STARTTLS when configured); no login, no mail."""
    if not host:
        return Check("smtp", "off", "SMTP_HOST unset: e-mail notices are off")
    try:
        if use_ssl:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout, local_hostname=local_hostname)
        with smtp:
            code, _ = smtp.ehlo()
            if code != 250:
                return Check("smtp", "fail", f"{host}:{port} answered EHLO with {code}", "check SMTP_HOST / SMTP_PORT")
            if starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
    except (OSError, smtplib.SMTPException) as exc:
        return Check(
            "smtp",
            "fail",
            f"{host}:{port}: {type(exc).__name__}: {exc}",
            "check SMTP_HOST, SMTP_PORT, SMTP_SSL/SMTP_STARTTLS and the firewall",
        )
    mode = "implicit TLS" if use_ssl else "STARTTLS" if starttls else "plain"
    return Check("smtp", "ok", f"{host}:{port} answered EHLO ({mode}; login not tried)")


def check_pipeline(url: str | None, *, timeout: float) -> Check:
    """Any HTTP answer means the endpoint is there (a HEAD may well get 405); no event is sent.

    The URL may hold a token (userinfo, query, path): only its scheme and host are shown.
    """
    if not url:
        return Check("pipeline", "off", "PIPELINE_URL unset: the processing pipeline is not called")
    shown = safe_url(url)
    try:
        resp = requests.head(url, timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        return Check(
            "pipeline", "fail", f"{shown}: {type(exc).__name__}", "check PIPELINE_URL and that it is reachable"
        )
    # 405/501 only say HEAD is not supported: the endpoint is there. A 500 or a gateway error says it is not well.
    if resp.status_code in (500, 502, 503, 504):
        return Check(
            "pipeline", "warn", f"{shown} answered HEAD with {resp.status_code}", "check the pipeline's health"
        )
    return Check("pipeline", "ok", f"{shown} answered HEAD with {resp.status_code}")


def check_transport(notes: list[str]) -> Check:
    """Plain-text transport the settings allow (loopback for development, or ALLOW_INSECURE_TRANSPORT)."""
    if not notes:
        return Check("transport", "ok", "DocSpace, the pipeline and SMTP logins use TLS (or are off)")
    return Check(
        "transport",
        "warn",
        "; ".join(notes),
        "use https:// URLs and SMTP_STARTTLS/SMTP_SSL; keep ALLOW_INSECURE_TRANSPORT for trusted networks only",
    )
