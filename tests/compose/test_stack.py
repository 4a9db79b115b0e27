"""docker-compose.yml for real: the demo stack up, an invoice through it once, doctor, an outage, Prometheus.

Run by ``make compose-test`` (and so by ``.ci/run``). Installs Docker from Debian's packages when missing, starts
its own engine when none runs, builds the stand-in images (deploy/ci-images.sh) and the pipeline's, and leaves
nothing running. A new service in the file is covered by adding nothing: every container must turn healthy,
every Prometheus target must be up, every recorded signal and dashboard query must return data.
"""

from __future__ import annotations

import ast
import json
import os
import re
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from ingress.signature import sign
from ops.test_event import post_delivery, sample_delivery
from simulator.demo import INVOICE_TITLE, PHOTO_TITLE, UPLOAD_PATH
from tests.compose.engine import ROOT, compose_command, docker_engine, free_ports, install_missing, run
from tests.compose.stack import PROFILES, PUBLISHED, REPORT, Stack, wait_for

pytestmark = [pytest.mark.compose, pytest.mark.timeout(1500)]

DEMO_ENV = dict(
    line.split("=", 1)
    for line in (ROOT / "deploy/demo.env").read_text("utf-8").splitlines()
    if line and not line.startswith("#")
)
WEBHOOK = "/docspace/webhook"
INGRESS_METRICS_PORT = 9100  # the ingress's internal METRICS_PORT on the compose network
CLASSIFIER_METRICS_PORT = 9101
MOVER_METRICS_PORT = 9102
PROXY_EXPORTER_METRICS_PORT = 9113
PORTAL_ADDRESS = "198.51.100.50"  # PROXY_EXEMPT_ADDRESSES in this stack
# Grafana's own variables, as Grafana would fill them in for a dashboard showing the last hour.
# The broker users the cluster example creates (it runs no reconciler).
CLUSTER_USERS = ("INGRESS", "CLASSIFIER", "MOVER", "NOTIFIER")
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__range": "1h", "$__interval": "1m"}


def _expected_services() -> set[str]:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))["services"]
    return {name for name, spec in services.items() if set(spec.get("profiles", [])) <= set(PROFILES)}


def _one_service_per_built_image() -> list[str]:
    """Services sharing an image are built once (compose 1.29 would build the same image for each of them)."""
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))["services"]
    first: dict[str, str] = {}
    for name in sorted(_expected_services()):
        if "build" in services[name]:
            first.setdefault(services[name]["image"], name)
    return sorted(first.values())


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    timings: dict[str, float] = {}
    started = time.monotonic()
    install_missing()
    timings["install"] = time.monotonic() - started
    compose = compose_command()
    assert compose is not None
    with docker_engine() as own_engine:
        ports = dict(zip(PUBLISHED.values(), free_ports(len(PUBLISHED)), strict=True))
        project = f"invoice-pipeline-test-{os.getpid()}"
        env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": project,
            "PIPELINE_ENV_FILE": "deploy/demo.env",  # the demo's wiring, whatever a local .env says
            # Requests reach the proxy from Docker's bridge (a private address): it stands for a TLS terminator,
            # so X-Forwarded-For names the client. One documentation address stands for the portal.
            "PROXY_TRUSTED_ADDRESSES": "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
            "PROXY_EXEMPT_ADDRESSES": PORTAL_ADDRESS,
            **{var: f"127.0.0.1:{ports[service]}" for var, service in PUBLISHED.items()},
        }
        s = Stack(compose=compose, project=project, ports=ports, env=env, timings=timings)
        try:
            mark = time.monotonic()
            run(["deploy/ci-images.sh"], env=env, timeout=900)
            timings["stand-in images"] = time.monotonic() - mark
            mark = time.monotonic()
            s.dc("build", *_one_service_per_built_image(), timeout=900)
            timings["pipeline images"] = time.monotonic() - mark
            mark = time.monotonic()
            s.dc("up", "-d", "--no-build")
            s.wait_healthy(timeout=240)
            timings["up until healthy"] = time.monotonic() - mark
            s.timings["healthy at"] = time.monotonic()
            yield s
        finally:
            mark = time.monotonic()
            if s.dc("ps", "-q", check=False).stdout.strip():
                logs = s.dc("logs", "--no-color", "--tail=40", check=False).stdout
                print(f"\n--- last lines of every container\n{logs[-20000:]}")
            s.dc("down", "-v", "--remove-orphans", "-t", "10", check=False)
            timings["down"] = time.monotonic() - mark
            left = run(
                ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"], env=env
            ).stdout.split()
            volumes = run(
                ["docker", "volume", "ls", "-q", "--filter", f"label=com.docker.compose.project={project}"], env=env
            ).stdout.split()
            timings["total"] = time.monotonic() - started
            REPORT.update({k: round(v, 1) for k, v in timings.items() if k != "healthy at"})
            REPORT["engine started by the test"] = own_engine
            assert not left, f"containers left behind: {left}"
            assert not volumes, f"volumes left behind: {volumes}"


def _sim(stack: Stack, method: str, path: str, doc: dict[str, Any] | None = None) -> Any:
    resp = requests.request(method, stack.url("simulator", f"/_sim{path}"), json=doc, timeout=10)
    resp.raise_for_status()
    return resp.json()


def _mails_about(stack: Stack, title: str) -> list[dict[str, Any]]:
    return [m for m in stack.get("mailcatcher", "/api/messages") if title in m["subject"]]


def _calls_about(stack: Stack, file_id: str) -> list[dict[str, Any]]:
    return [c for c in stack.get("pipeline-receiver", "/api/calls") if c["body"].get("file_id") == file_id]


def _incoming_id(stack: Stack) -> str:
    room = DEMO_ENV["CLIENT_ROOM_ID"]
    folders = _sim(stack, "GET", f"/folders/{room}")["folders"]
    return next(str(f["id"]) for f in folders if f["title"] == "Incoming")


def _demo_invoice(stack: Stack) -> dict[str, Any]:
    return next(
        f for f in _sim(stack, "GET", f"/folders/{_incoming_id(stack)}")["files"] if f["title"] == INVOICE_TITLE
    )


def _upload_folder(stack: Stack) -> int:
    folder = int(DEMO_ENV["CLIENT_ROOM_ID"])
    for title in UPLOAD_PATH:
        folder = next(f["id"] for f in _sim(stack, "GET", f"/folders/{folder}")["folders"] if f["title"] == title)
    return folder


def _went_through_once(stack: Stack, title: str, file_id: str, timeout: float = 90) -> None:
    """Moved into Incoming, e-mailed once, sent to the pipeline once with a valid signature."""
    wait_for(f"{title} e-mailed and sent", lambda: _mails_about(stack, title) and _calls_about(stack, file_id), timeout)
    time.sleep(3)  # a duplicate, if there were one, would land within this
    assert str(_sim(stack, "GET", f"/files/{file_id}")["folderId"]) == _incoming_id(stack)
    mails = _mails_about(stack, title)
    assert len(mails) == 1, mails
    assert mails[0]["to"] == [DEMO_ENV["MANAGER_EMAIL"]]
    calls = _calls_about(stack, file_id)
    assert len(calls) == 1, calls
    assert calls[0]["valid_signature"] is True
    assert calls[0]["body"]["title"] == title


def test_every_service_of_the_demo_runs_healthy(stack: Stack) -> None:
    assert set(stack.containers()) == _expected_services()
    assert not stack.unhealthy()


def test_the_demo_invoice_reaches_the_mail_catcher_within_a_minute_once(stack: Stack) -> None:
    invoice = _demo_invoice(stack)
    _went_through_once(stack, INVOICE_TITLE, str(invoice["id"]), timeout=60)
    # The simulator's upload started when the stack was healthy; a newcomer sees the mail well within a minute.
    assert time.monotonic() - stack.timings["healthy at"] < 60
    page = requests.get(stack.url("mailcatcher", "/"), timeout=10)
    assert INVOICE_TITLE in page.text
    photo = [f for f in _sim(stack, "GET", f"/folders/{_upload_folder(stack)}")["files"] if f["title"] == PHOTO_TITLE]
    assert photo, "the photo stays where it was uploaded"
    assert not _mails_about(stack, PHOTO_TITLE)


# After the demo invoice's test: that one times the first minute of the stack.
def test_the_rules_and_the_prometheus_config_pass_promtool(stack: Stack) -> None:
    check = stack.dc(
        "run", "--rm", "--no-deps", "--entrypoint", "promtool", "prometheus",
        "check", "config", "/etc/prometheus/prometheus.yml",
    )  # fmt: skip
    assert "SUCCESS" in check.stdout + check.stderr
    for test_file in sorted(p.name for p in (ROOT / "deploy/prometheus/tests").glob("*.yml")):
        tests = stack.dc(
            "run", "--rm", "--no-deps", "--entrypoint", "promtool", "prometheus",
            "test", "rules", f"/etc/prometheus/tests/{test_file}",
        )  # fmt: skip
        assert "SUCCESS" in tests.stdout + tests.stderr, test_file


def _portal(stack: Stack, method: str, path: str, doc: dict[str, Any] | None = None) -> Any:
    """The simulator's DocSpace API, as the pipeline's API key calls it."""
    headers = {"Authorization": f"Bearer {DEMO_ENV['DOCSPACE_API_KEY']}"}
    resp = requests.request(method, stack.url("simulator", f"/api/2.0/{path}"), json=doc, headers=headers, timeout=10)
    resp.raise_for_status()
    return resp.json()["response"]


def _set_webhook_enabled(stack: Stack, enabled: bool) -> None:
    (config,) = (row["configs"] for row in _portal(stack, "GET", "settings/webhook"))
    fields = {key: config[key] for key in ("id", "name", "uri", "ssl", "triggers")}
    _portal(stack, "PUT", "settings/webhook/enable", {**fields, "enabled": enabled})


def _deliveries_about(stack: Stack, file_id: str) -> list[dict[str, Any]]:
    return [d for d in _sim(stack, "GET", "/deliveries") if f'"id":{file_id}' in _body(d)]


def test_a_signed_delivery_through_the_proxy_is_accepted_and_the_invoice_handled_once(stack: Stack) -> None:
    secret = DEMO_ENV["DOCSPACE_WEBHOOK_SECRET"]
    # An upload DocSpace does not announce (its webhook switched off for the moment): only the delivery posted
    # to the published port below can bring this invoice through.
    _set_webhook_enabled(stack, False)
    try:
        folder = _upload_folder(stack)
        uploaded = _sim(stack, "POST", "/files", {"folderId": folder, "title": "Invoice-2026-0045.pdf"})
    finally:
        _set_webhook_enabled(stack, True)
    file_id = str(uploaded["id"])
    assert not _deliveries_about(stack, file_id), "the simulator delivered it itself"
    body = sample_delivery(file_id=int(file_id), folder_id=folder, title="Invoice-2026-0045.pdf")
    resp = post_delivery(stack.url("proxy", WEBHOOK), body, secret)
    assert resp.status_code == 200, resp.text
    _went_through_once(stack, "Invoice-2026-0045.pdf", file_id)
    # The same delivery again (a DocSpace retry): answered 200 as a replay, and still one mail, one call.
    assert post_delivery(stack.url("proxy", WEBHOOK), body, secret).status_code == 200
    _went_through_once(stack, "Invoice-2026-0045.pdf", file_id)

    # A file that does not exist: accepted, then dead-lettered by the classifier (docspace_not_found).
    before = _not_found_by_classifier(stack)
    assert post_delivery(stack.url("proxy", WEBHOOK), sample_delivery(), secret).status_code == 200
    wait_for("the classifier to dead-letter the unknown file", lambda: _not_found_by_classifier(stack) > before, 60)


def _not_found_by_classifier(stack: Stack) -> float:
    labels = {"stage": "classifier", "outcome": "dead_lettered", "reason": "docspace_not_found"}
    return stack.metric("classifier", CLASSIFIER_METRICS_PORT, "stage_messages_total", labels) or 0.0


def test_the_proxy_forwards_only_the_webhook_and_caps_what_it_reads(stack: Stack) -> None:
    url = stack.url("proxy", WEBHOOK)
    assert requests.head(url, timeout=10).status_code == 200  # DocSpace's check of the URL
    forged = sample_delivery()
    headers = {"x-docspace-signature-256": sign(forged, "not-the-secret")}
    resp = requests.post(url, data=forged, headers=headers, timeout=10)
    assert resp.status_code == 401
    for path in ("/metrics", "/readyz", "/healthz", "/", "/docspace/webhook/../metrics"):
        assert requests.get(stack.url("proxy", path), timeout=10).status_code == 404, path
    too_big = b"{" + b" " * (1024 * 1024 + 10) + b"}"
    assert requests.post(url, data=too_big, timeout=10).status_code == 413
    assert requests.delete(url, timeout=10).status_code == 403


def test_a_transient_docspace_failure_is_retried_and_the_invoice_still_arrives_once(stack: Stack) -> None:
    # DocSpace answers 503 to moves: the mover puts the invoice on its retry ladder, not in a hot loop. (The
    # classifier decides from the signed delivery and calls DocSpace only for a room's path, remembered.)
    _sim(
        stack,
        "POST",
        "/faults",
        {"rules": [{"method": "PUT", "path": "/api/2.0/files/fileops/move", "error_rate": 1.0, "error_status": 503}]},
    )
    try:
        uploaded = _sim(stack, "POST", "/files", {"folderId": _upload_folder(stack), "title": "Invoice-2026-0043.pdf"})
        wait_for(
            "the mover to retry",
            lambda: 'outcome="retried"' in stack.metrics_text("mover", MOVER_METRICS_PORT),
            60,
        )
    finally:
        _sim(stack, "DELETE", "/faults")
    _went_through_once(stack, "Invoice-2026-0043.pdf", str(uploaded["id"]))


def test_doctor_in_the_ingress_container_says_ready(stack: Stack) -> None:
    doctor = stack.dc("run", "--rm", "ingress", "invoice-pipeline", "doctor", timeout=120)
    assert "READY" in doctor.stdout and "NOT READY" not in doctor.stdout, doctor.stdout


def test_a_delivery_spooled_while_rabbitmq_is_stopped_survives_an_ingress_restart(stack: Stack) -> None:
    mark = time.monotonic()
    stack.dc("stop", "-t", "10", "rabbitmq")  # the stack's own broker container, never the machine's
    uploaded = _sim(stack, "POST", "/files", {"folderId": _upload_folder(stack), "title": "Invoice-2026-0044.pdf"})
    file_id = str(uploaded["id"])

    def spooled() -> bool:
        answers = [d["status"] for d in _sim(stack, "GET", "/deliveries") if f'"id":{file_id}' in _body(d)]
        return bool(answers) and all(status == 202 for status in answers) and len(answers) == 2

    wait_for("both deliveries of the upload answered 202 (spooled)", spooled, 60)
    assert stack.metric("ingress", INGRESS_METRICS_PORT, "ingress_spool_depth") == 2.0

    stack.dc("restart", "-t", "10", "ingress")
    stack.wait_healthy({"ingress"}, timeout=120)
    # The new container found the spool on its volume: the deliveries are still waiting for the broker.
    assert stack.metric("ingress", INGRESS_METRICS_PORT, "ingress_spool_depth") == 2.0
    assert not _mails_about(stack, "Invoice-2026-0044.pdf")

    stack.dc("start", "rabbitmq")
    _went_through_once(stack, "Invoice-2026-0044.pdf", file_id, timeout=180)
    drained = lambda: stack.metric("ingress", INGRESS_METRICS_PORT, "ingress_spool_depth") == 0.0  # noqa: E731
    wait_for("the spool drained", drained, 30)
    stack.wait_healthy(timeout=180)
    stack.timings["broker outage + restart"] = time.monotonic() - mark


def _body(delivery: dict[str, Any]) -> str:
    import base64

    return re.sub(r"\s", "", base64.b64decode(delivery["body"]).decode("utf-8", "replace"))


def _prom(stack: Stack, query: str) -> list[dict[str, Any]]:
    doc = stack.get("prometheus", f"/api/v1/query?query={urllib.parse.quote(query)}")
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def _dashboard_queries() -> list[str]:
    queries = []
    for path in sorted((ROOT / "deploy/grafana/dashboards").glob("*.json")):
        for panel in json.loads(path.read_text("utf-8"))["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                queries.append(expr)
    return queries


def _rules() -> list[dict[str, Any]]:
    rules = []
    for path in sorted((ROOT / "deploy/prometheus/rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text("utf-8"))["groups"]:
            rules.extend(group["rules"])
    return rules


def test_prometheus_scrapes_every_service_and_every_query_returns_data(stack: Stack) -> None:
    mark = time.monotonic()
    # The ingress restarted above and counts from zero: a refused delivery for the webhook-failing signal to see.
    forged = sample_delivery()
    headers = {"x-docspace-signature-256": sign(forged, "not-the-secret")}
    assert requests.post(stack.url("proxy", WEBHOOK), data=forged, headers=headers, timeout=10).status_code == 401

    def targets_up() -> bool:
        active = stack.get("prometheus", "/api/v1/targets")["data"]["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)

    wait_for("every Prometheus target up", targets_up, 90, interval=2)
    jobs = {t["labels"]["job"] for t in stack.get("prometheus", "/api/v1/targets")["data"]["activeTargets"]}
    assert {"ingress", "consumers", "reconciler", "rabbitmq", "prometheus"} <= jobs

    records = [rule["record"] for rule in _rules() if "record" in rule]
    queries = _dashboard_queries() + records
    # Rates need two scrapes after the last event, recording rules one evaluation: give them a few intervals.
    deadline = time.monotonic() + 120
    while (empty := [q for q in queries if not _prom(stack, q)]) and time.monotonic() < deadline:
        time.sleep(5)
    assert not empty, f"no data for: {empty}"

    # Every alert expression evaluates (data or not: a healthy stack fires nothing but the dead letter it was sent).
    for rule in _rules():
        if "alert" in rule:
            _prom(stack, rule["expr"])
    groups = stack.get("prometheus", "/api/v1/rules")["data"]["groups"]
    broken = [(r["name"], r.get("lastError")) for g in groups for r in g["rules"] if r["health"] == "err"]
    assert not broken, broken
    # (Alerts pending from the broker outage above may still be listed; none of them may have fired.)
    alerts = stack.get("prometheus", "/api/v1/alerts")["data"]["alerts"]
    firing = [a["labels"] for a in alerts if a["state"] == "firing"]
    assert {labels["alertname"] for labels in firing} <= {"DeadLettersWaiting"}, firing
    stack.timings["prometheus checks"] = time.monotonic() - mark


def _flood(stack: Stack, client: str, requests_count: int = 400) -> list[int]:
    """Answers to a burst of HEADs of the webhook (DocSpace's URL check) that a trusted proxy says ``client`` sent.

    The webhook's location: nginx answers other paths itself before its limits apply.
    """
    with requests.Session() as session:
        headers = {"X-Forwarded-For": client}
        return [
            session.head(stack.url("proxy", WEBHOOK), headers=headers, timeout=10).status_code
            for _ in range(requests_count)
        ]


def _proxy_refusals(stack: Stack) -> float:
    labels = {"status": "429", "limited": "rate"}
    return stack.metric("proxy-exporter", PROXY_EXPORTER_METRICS_PORT, "proxy_responses_total", labels) or 0.0


# After the Prometheus test: the 429s below fire ProxyRateLimiting, as they should.
def test_behind_a_trusted_proxy_each_client_has_its_own_bucket_and_the_portal_none(stack: Stack) -> None:
    before = _proxy_refusals(stack)
    flooded = _flood(stack, "203.0.113.10")
    refused = flooded.count(429)
    assert refused > 0 and set(flooded) == {200, 429}, "the flood is over the limit (50/s, burst 100)"
    # The flooder's bucket is empty; another client behind the same proxy, and the proxy itself, are not refused.
    other = requests.head(stack.url("proxy", WEBHOOK), headers={"X-Forwarded-For": "203.0.113.11"}, timeout=10)
    assert other.status_code == 200
    assert requests.head(stack.url("proxy", WEBHOOK), timeout=10).status_code == 200
    # A flooder cannot pretend to be the portal through a proxy it is not: the last untrusted address counts.
    spoofed = _flood(stack, f"{PORTAL_ADDRESS}, 203.0.113.10")
    assert 429 in spoofed, "the flooder's bucket, whatever it put first in X-Forwarded-For"
    # The portal's address (PROXY_EXEMPT_ADDRESSES) is never limited, however much it sends.
    assert set(_flood(stack, PORTAL_ADDRESS)) == {200}
    # Every refusal is counted for Prometheus (ProxyRateLimiting reads it), the spoofed ones too.
    wait_for("the proxy's 429s counted", lambda: _proxy_refusals(stack) == before + refused + spoofed.count(429), 30)


# Run inside the ingress container with its own AMQP_URL: what its broker user may and may not do.
INGRESS_USER_PROBE = """
import os, pika, pika.exceptions
def attempt(action):
    connection = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        action(channel)
        return "ok"
    except pika.exceptions.ChannelClosedByBroker as exc:
        return str(exc.reply_code)
    finally:
        if connection.is_open:
            connection.close()
print({
    "check": attempt(lambda ch: ch.queue_declare("classifier", passive=True)),
    "publish elsewhere": attempt(lambda ch: ch.basic_publish("invoice.detected", "x", b"{}", mandatory=True)),
    "publish to a queue": attempt(lambda ch: ch.basic_publish("", "mover", b"{}", mandatory=True)),
    "read": attempt(lambda ch: ch.basic_get("classifier")),
    "declare": attempt(lambda ch: ch.queue_declare("ingress-owned", durable=True)),
})
"""


def test_each_process_is_its_own_broker_user_and_the_ingress_is_refused_all_but_its_exchange(stack: Stack) -> None:
    # Publishing to docspace.events itself is what every delivery of the demo does: the invoice arrives.
    result = ast.literal_eval(stack.exec_python("ingress", INGRESS_USER_PROBE).strip().splitlines()[-1])
    refused = {"publish elsewhere": "403", "publish to a queue": "403", "read": "403", "declare": "403"}
    assert result == {"check": "ok", **refused}
    connected = stack.dc(
        "exec", "-T", "rabbitmq", "rabbitmqctl", "-q", "list_connections", "user", "--no-table-headers"
    ).stdout.split()  # fmt: skip
    kinds = ("ingress", "classifier", "mover", "notifier", "reconciler")
    assert {f"pipeline-{kind}" for kind in kinds} <= set(connected), connected
    topology_logs = stack.dc("logs", "--no-color", "topology").stdout
    assert "topology declared" in topology_logs, topology_logs


def test_redis_refuses_a_client_without_the_password_and_ps_does_not_show_it(stack: Stack) -> None:
    anonymous = stack.dc("exec", "-T", "redis", "sh", "-c", "env -u REDISCLI_AUTH redis-cli ping", check=False)
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr, anonymous
    wrong = stack.dc("exec", "-T", "redis", "sh", "-c", "REDISCLI_AUTH=wrong redis-cli ping", check=False)
    assert "PONG" not in wrong.stdout, wrong
    assert "PONG" in stack.dc("exec", "-T", "redis", "redis-cli", "ping").stdout
    command_lines = stack.dc("exec", "-T", "redis", "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '").stdout
    assert "redis-server" in command_lines
    assert DEMO_ENV["REDIS_PASSWORD"] not in command_lines


def test_the_cluster_nodes_share_a_cookie_read_from_a_secret_file_with_mode_0400(stack: Stack, tmp_path: Path) -> None:
    cookie_value = "cluster-test-cookie-" + os.urandom(8).hex()
    cookie = tmp_path / "erlang.cookie"
    cookie.write_text(cookie_value + "\n", "utf-8")
    cookie.chmod(0o644)  # CI's stand-in runs as rabbitmq, and compose v1 mounts the file as it is
    project = f"{stack.project}-cluster"
    env = {
        **stack.env,
        "COMPOSE_PROJECT_NAME": project,
        "RABBITMQ_PASSWORD": "cluster-test-password",
        "REDIS_PASSWORD": "cluster-test-password",
        "RABBITMQ_ERLANG_COOKIE_FILE": str(cookie),
        **{f"RABBITMQ_{kind}_PASSWORD": f"cluster-test-{kind.lower()}" for kind in CLUSTER_USERS},
    }
    cluster = [*stack.compose, "-f", "deploy/compose.cluster.yml"]
    nodes = ["rabbitmq-1", "rabbitmq-2", "rabbitmq-3"]
    try:
        run([*cluster, "up", "-d", "--no-build", *nodes], env=env, timeout=300)

        def clustered() -> bool:
            status = run(
                [*cluster, "exec", "-T", "rabbitmq-1", "rabbitmqctl", "cluster_status", "--formatter", "json"],
                env=env, check=False,
            )  # fmt: skip
            return status.returncode == 0 and len(json.loads(status.stdout)["running_nodes"]) == 3

        wait_for("three nodes running in one cluster", clustered, 180, interval=3)

        def users_made() -> bool:
            # Each node runs users.sh once it answers (the users are cluster-wide); healthy means done.
            users = run([*cluster, "exec", "-T", "rabbitmq-1", "rabbitmqctl", "-q", "list_users"], env=env).stdout
            return all(f"pipeline-{kind.lower()}" in users for kind in CLUSTER_USERS)

        wait_for("the broker users on the cluster", users_made, 120, interval=3)
        for node in nodes:
            mode = run([*cluster, "exec", "-T", node, "sh", "-c", 'stat -c %a "$HOME/.erlang.cookie"'], env=env)
            assert mode.stdout.strip() == "400", node
            command_lines = run(
                [*cluster, "exec", "-T", node, "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"], env=env
            ).stdout
            assert "beam" in command_lines and cookie_value not in command_lines and "setcookie" not in command_lines
    finally:
        run([*cluster, "down", "-v", "-t", "10"], env=env, check=False, timeout=300)


def test_the_production_image_carries_no_test_code_and_stays_small(stack: Stack) -> None:
    image = "docspace-invoice-pipeline:latest"
    listing = run(
        ["docker", "run", "--rm", "--entrypoint", "sh", image, "-c",
         "id -u; ls /opt/venv/lib/python*/site-packages; python -c 'import simulator' 2>&1 | tail -1"],
        env=stack.env,
    ).stdout  # fmt: skip
    uid, *rest = listing.split("\n")
    assert uid.strip() != "0", "the image must not run as root"
    installed = set("\n".join(rest).split())
    for forbidden in ("simulator", "standins", "tests", "aiosmtpd", "pytest", "bench"):
        assert forbidden not in installed, f"{forbidden} is in the production image"
    assert "No module named 'simulator'" in listing
    size = int(run(["docker", "image", "inspect", "-f", "{{.Size}}", image], env=stack.env).stdout)
    stack.timings["image MB"] = size / 1e6
    assert size < 200 * 1000 * 1000, f"{image} is {size / 1e6:.0f} MB"


def test_compose_file_avoids_what_compose_v1_and_the_legacy_builder_reject() -> None:
    text = (ROOT / "docker-compose.yml").read_text("utf-8")
    assert not re.search(r"^name:", text, re.MULTILINE), "compose v1 rejects a top-level name:"
    for dockerfile in [ROOT / "Dockerfile", *Path(ROOT / "deploy/ci-images").glob("*.Dockerfile")]:
        assert "--mount" not in dockerfile.read_text("utf-8"), f"{dockerfile.name}: RUN --mount needs BuildKit"


def test_the_cluster_example_is_a_valid_compose_file_that_builds_the_production_image(tmp_path: Path) -> None:
    compose = compose_command()
    assert compose is not None
    env_file = tmp_path / ".env"
    settings = os.path.relpath(ROOT / "deploy/demo.env", ROOT)
    cookie = tmp_path / "erlang.cookie"
    cookie.write_text("example-cookie\n", "utf-8")
    required = {"RABBITMQ_PASSWORD": "example", "REDIS_PASSWORD": "example", "RABBITMQ_ERLANG_COOKIE_FILE": str(cookie)}
    required |= {f"RABBITMQ_{kind}_PASSWORD": "example" for kind in CLUSTER_USERS}
    env_file.write_text("".join(f"{k}={v}\n" for k, v in required.items()) + f"PIPELINE_ENV_FILE={settings}\n", "utf-8")
    cluster = ["-f", "deploy/compose.cluster.yml", "--env-file", str(env_file)]
    for name in required:
        partial = tmp_path / f"without-{name}.env"
        partial.write_text("".join(f"{k}={v}\n" for k, v in required.items() if k != name), "utf-8")
        missing = run([*compose, *cluster[:2], "--env-file", str(partial), "config", "-q"], check=False)
        assert missing.returncode != 0 and name in missing.stderr + missing.stdout, name
    config = yaml.safe_load(run([*compose, *cluster, "config"]).stdout)
    built = {name: spec["build"] for name, spec in config["services"].items() if "build" in spec}
    assert set(built) == {"topology", "ingress", "classifier", "mover", "notifier"}
    assert all(build.get("target") == "runtime" for build in built.values()), built
    assert {name for name, spec in config["services"].items() if name.startswith("rabbitmq-")} == {
        "rabbitmq-1", "rabbitmq-2", "rabbitmq-3",
    }  # fmt: skip
