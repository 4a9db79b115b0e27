"""``make run`` without a portal: a simulated DocSpace, the stand-ins and the pipeline, and what became of each file.

It starts a DocSpace simulator, a mail catcher and a pipeline receiver, seeds a client room, uploads an invoice (three
folders deep) and a photo, and shows what became of each; then the ingress goes away for a moment and the
reconciler recovers an invoice uploaded meanwhile. Beside the stand-ins, outside the package and the production
image: it needs the simulator and the stand-ins, which only a checkout has.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import socket
import time
from pathlib import Path

import pika
import pika.exceptions

from console.auth import user_line
from ops.console import echo, say
from ops.logs import LogCollector
from ops.supervisor import ChildSpec, Supervisor, pipeline_children, python_module, supervise, wait_for_pipeline
from shared.broker.connection import connection_parameters
from shared.broker.topology import Topology
from shared.config.settings import DEFAULT_AMQP_URL
from simulator import DocSpaceSimulator
from simulator.demo import INVOICE_TITLE, MANAGER_EMAIL, PHOTO_TITLE, ROOM_TITLE, seed_demo, upload_demo_files
from standins.mail.catcher import MailCatcher
from standins.pipeline_receiver import PipelineReceiver

STATE_DIR = Path("var")
# The demo's settings for the command line: `invoice-pipeline --env-file var/demo.env doctor` sees what the demo runs.
DEMO_ENV = STATE_DIR / "demo.env"


def run_demo() -> int:
    STATE_DIR.mkdir(exist_ok=True)
    prefix = os.environ.get("TOPOLOGY_PREFIX", "demo.")
    amqp_url = os.environ.get("AMQP_URL", DEFAULT_AMQP_URL)
    try:
        _fresh_demo_topology(amqp_url, prefix)
    except pika.exceptions.AMQPError as exc:
        say(
            f"✗ RabbitMQ does not answer at {_redacted(amqp_url)} ({type(exc).__name__}). Start it "
            "(e.g. `rabbitmq-server -detached`, or `docker run -d -p 5672:5672 rabbitmq:4`) or set AMQP_URL."
        )
        return 1
    logs = LogCollector()
    last_cycle: dict[str, str] = {}

    def on_line(process: str, line: str) -> None:
        logs.add(process, line)
        # The demo's reconciler runs every few seconds: show a cycle only when it differs from the one before.
        cycle = _quiet_cycle(line)
        if cycle is not None:
            if last_cycle.get(process) == cycle:
                return
            last_cycle[process] = cycle
        echo(process, line)

    webhook_secret = secrets.token_urlsafe(24)
    pipeline_secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")
    ingress_port = int(os.environ.get("PORT", "3000"))
    ingress_metrics_port = _port(int(os.environ.get("METRICS_PORT") or 9100))
    sim = DocSpaceSimulator(api_key="sk-demo-" + secrets.token_hex(16), port=_port(8090), move_delay=0.5).start()
    mail = MailCatcher(
        _port(1025),
        lambda m, to: say(f"  📧 mail catcher: to {', '.join(to)}: {m['Subject']}"),
        http_port=_port(8025),
    ).start()
    pipeline = PipelineReceiver(
        _port(8091),
        pipeline_secret,
        lambda call: say(
            f"  🔗 pipeline receiver: invoice {call.headers.get('webhook-id')}, "
            f"signature {'ok' if call.valid else 'BAD'}"
        ),
    ).start()

    portal = seed_demo(sim)
    room = portal.room_id
    rules = STATE_DIR / "demo-rules.toml"
    rules.write_text(
        f'[[clients]]\nname = "acme"\nroom_id = "{room}"\nmanager_email = "{MANAGER_EMAIL}"\n'
        'incoming_folder = "Incoming"\n',
        encoding="utf-8",
    )
    # Each demo starts with a fresh simulator, whose ids repeat: start with a fresh memory of invoices (and a
    # fresh journal) too. Absolute paths: var/demo.env serves the command line from any directory.
    store = (STATE_DIR / "demo-idempotency.sqlite3").resolve()
    journal = (STATE_DIR / "demo-journal.sqlite3").resolve()
    for leftover in [*STATE_DIR.glob("demo-idempotency.sqlite3*"), *STATE_DIR.glob("demo-journal.sqlite3*")]:
        leftover.unlink()
    # The operator console with a login that lives as long as this run: a new password each time, only its hash
    # on disk.
    console_port, console_password = _port(8088), secrets.token_urlsafe(12)
    console_users = STATE_DIR / "demo-console-users"
    console_users.write_text(user_line("admin", "operator", console_password) + "\n", encoding="utf-8")
    console_users.chmod(0o600)
    env = {
        "AMQP_URL": amqp_url,
        "PORT": str(ingress_port),
        "HOST": "127.0.0.1",
        "TOPOLOGY_PREFIX": prefix,
        "LOG_FORMAT": "json",
        "DOCSPACE_WEBHOOK_SECRET": webhook_secret,
        "DOCSPACE_API_HOST": sim.base_url,
        "DOCSPACE_API_KEY": sim.api_key,
        "INVOICE_RULES_FILE": str(rules.resolve()),
        "IDEMPOTENCY_URL": f"sqlite:///{store}",
        "JOURNAL_URL": f"sqlite:///{journal}",
        "SMTP_HOST": mail.host,
        "SMTP_PORT": str(mail.port),
        "MAIL_FROM": "invoices@pipeline.localhost",
        "PIPELINE_URL": pipeline.url,
        "PIPELINE_SECRET": pipeline_secret,
        # The reconciler at demo speed: a cycle every 3 s, failed deliveries taken from DocSpace's log after 2 s.
        "DOCSPACE_WEBHOOK_URL": f"http://127.0.0.1:{ingress_port}/docspace/webhook",
        "RECONCILE_INTERVAL": "3",
        "RECONCILE_LOG_SETTLE": "2",
        "RECONCILE_GRACE": "60",
    }
    write_env_file(DEMO_ENV, env)
    # Registered before the processes start (so the reconciler's first look finds it); the URL check DocSpace
    # makes on registration is skipped because the ingress is not up yet.
    sim.register_webhook(
        f"http://127.0.0.1:{ingress_port}/docspace/webhook",
        webhook_secret,
        triggers=["file.created", "file.uploaded"],
        check=False,
    )
    # The ingress's probes and metrics are on an internal port of their own; the consumers serve none here.
    children = [
        spec.__class__(spec.name, spec.argv, {**env, "METRICS_PORT": str(ingress_metrics_port)})
        if spec.name == "ingress"
        else spec.__class__(spec.name, spec.argv, {**env, "METRICS_PORT": "0"})
        for spec in pipeline_children()
    ]
    # The journal writer is one of pipeline_children(); the console is the demo's own.
    children += [
        ChildSpec(
            "console",
            python_module("console"),
            {**env, "CONSOLE_PORT": str(console_port), "CONSOLE_USERS_FILE": str(console_users)},
        ),
    ]
    supervisor = Supervisor(children, on_line=on_line).start()
    try:
        wait_for_pipeline(f"http://127.0.0.1:{ingress_metrics_port}", logs.started, supervisor)
    except RuntimeError as exc:
        say(f"✗ the pipeline did not start: {exc}")
        supervisor.stop()
        return 1

    say(f"\n▶ Demo portal {sim.base_url}: room '{ROOM_TITLE}' ({room}), manager {MANAGER_EMAIL}")
    say(f"▶ Operator console http://127.0.0.1:{console_port}/ : log in as admin / {console_password} (this run only)")
    invoice = upload_demo_files(sim, portal)
    say(f"▶ Uploaded Uploads/2026/November/{INVOICE_TITLE} and {PHOTO_TITLE}; the mail catcher shows {mail.http_url}\n")
    _report(sim, logs, mail, pipeline, room, invoice)
    _outage(sim, logs, mail, supervisor, f"http://127.0.0.1:{ingress_metrics_port}", portal.upload_folder_id)
    say(f"\n▶ What happened to a file, with the demo's settings: {trace_hint(DEMO_ENV, INVOICE_TITLE)}")
    say(
        f"\nThe pipeline keeps running. Upload more with:\n"
        f"  curl -s -X POST {sim.base_url}/_sim/files -H 'Content-Type: application/json' "
        f'-d \'{{"folderId": {portal.upload_folder_id}, "title": "Invoice-0043.pdf"}}\'\n'
        "Ctrl-C stops everything."
    )
    try:
        return supervise(supervisor)
    finally:
        sim.stop()
        mail.close()
        pipeline.stop()


def _report(
    sim: DocSpaceSimulator, logs: LogCollector, mail: MailCatcher, pipeline: PipelineReceiver, room: str, invoice: str
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (mail.messages and pipeline.calls and _decision(logs, PHOTO_TITLE)):
        time.sleep(0.2)
    folder_id = str(sim.file(invoice)["folderId"])
    incoming = [str(f["id"]) for f in sim.subfolders(room) if f["title"] == "Incoming"]
    say("━━ What happened ━━")
    if folder_id in incoming:
        say(f"  ✓ moved:     {INVOICE_TITLE} → {ROOM_TITLE}/Incoming (folder {folder_id})")
    else:
        say(f"  ✗ not moved: {INVOICE_TITLE} is still in folder {folder_id}")
    say(f"  {'✓' if mail.messages else '✗'} e-mailed:  {len(mail.messages)} message(s) to {MANAGER_EMAIL}")
    say(f"  {'✓' if pipeline.calls else '✗'} pipeline:  {len(pipeline.calls)} signed call(s)")
    reason = _decision(logs, PHOTO_TITLE)
    say(f"  {'✓' if reason else '✗'} skipped:   {PHOTO_TITLE} ({reason or 'no decision logged yet'})")


def _outage(
    sim: DocSpaceSimulator,
    logs: LogCollector,
    mail: MailCatcher,
    supervisor: Supervisor,
    ingress_internal_url: str,
    folder: str,
) -> None:
    """The ingress goes away for a moment; an invoice uploaded meanwhile still arrives, through the reconciler."""
    say("\n▶ Stopping the ingress for a moment (a deploy, a firewall change): DocSpace's deliveries now fail")
    supervisor.pause("ingress")
    late = sim.upload_file(folder, "Invoice-2026-0043.pdf")
    say("▶ Uploaded Invoice-2026-0043.pdf while the ingress was down\n")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not logs.events("reconciler", "delivery_recovered", file_id=str(late)):
        time.sleep(0.2)
    say("\n▶ Starting the ingress again\n")
    supervisor.resume("ingress")
    wait_for_pipeline(ingress_internal_url, logs.started, supervisor)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(mail.messages) < 2:
        time.sleep(0.2)
    time.sleep(1)  # DocSpace's own retry may arrive too now: the classifier absorbs it
    recovered = logs.events("reconciler", "delivery_recovered", file_id=str(late))
    mails = [m for m in mail.messages if "Invoice-2026-0043.pdf" in str(m["Subject"])]
    say("━━ While the ingress was down ━━")
    if recovered:
        source = "DocSpace's delivery log" if recovered[0].get("source") == "delivery_log" else "the room scan"
        say(f"  ✓ recovered: Invoice-2026-0043.pdf by the reconciler, from {source} (DocSpace could not deliver it)")
    else:
        say("  ✗ not recovered: no reconciler line for Invoice-2026-0043.pdf yet")
    say(f"  {'✓' if len(mails) == 1 else '✗'} e-mailed:  {len(mails)} message(s) for it: exactly once")


def trace_hint(env_file: Path, title: str) -> str:
    """The one command line that points the CLI at the demo (doctor, dlq and the rest take --env-file the same way)."""
    return f"invoice-pipeline --env-file {env_file} trace {title.removesuffix('.pdf')}"


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """The demo's settings as ``KEY=value`` lines for ``--env-file``; readable by the owner only (a demo secret is
    still a secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Written by `make run` for `invoice-pipeline --env-file` (the demo's settings; rewritten each run)."]
    lines += [f"{key}={value}" for key, value in env.items()]
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _quiet_cycle(line: str) -> str | None:
    """A reconcile_done line without its time, to compare with the previous one; None for any other line."""
    if '"reconcile_done"' not in line:
        return None
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    doc.pop("timestamp", None)
    return json.dumps(doc, sort_keys=True)


def _decision(logs: LogCollector, title: str) -> str | None:
    for record in logs.events("classifier", "message_handled", title=title):
        if record.get("outcome") == "ignored":
            return str(record.get("reason"))
    return None


def _fresh_demo_topology(amqp_url: str, prefix: str) -> None:
    """The demo's queues hold nothing worth keeping: start them afresh, so a demo never meets an older layout."""
    connection = pika.BlockingConnection(connection_parameters(amqp_url, name="invoice-pipeline-demo"))
    try:
        Topology(prefix).delete(connection.channel())
    finally:
        connection.close()


def _redacted(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _port(preferred: int) -> int:
    """The preferred port when it is free, else any free one (a second demo, or something else on 8090)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
