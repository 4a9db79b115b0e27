"""The deployment files hold no weak defaults: required passwords, the Erlang cookie as a secret file, per-client
proxy limits with trusted proxies and exempt addresses from the environment, and the proxy's 429s counted."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILES = ("docker-compose.yml", "deploy/compose.cluster.yml")
NGINX_CONF = (ROOT / "deploy/nginx/nginx.conf").read_text("utf-8")
START_PROXY = ROOT / "deploy/nginx/start.sh"


def _without_comments(name: str) -> str:
    return "\n".join(
        line for line in (ROOT / name).read_text("utf-8").splitlines() if not line.lstrip().startswith("#")
    )


def _compose(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text("utf-8"))


def _env_file(name: str) -> dict[str, str]:
    lines = (ROOT / name).read_text("utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


# --- Compose defaults -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_every_password_and_secret_in_a_compose_file_is_required_never_defaulted(name: str) -> None:
    text = _without_comments(name)
    uses = re.findall(r"\$\{([A-Z_]*(?:PASSWORD|COOKIE)[A-Z_]*)([^}]*)\}", text)
    assert uses, f"{name} names no password"
    weak = [f"${{{var}{rest}}}" for var, rest in uses if not rest.startswith(":?")]
    assert not weak, f"{name}: {weak} must be ${{VAR:?...}} (compose refuses to start without it)"


def test_the_demo_env_file_gives_compose_every_variable_it_requires() -> None:
    # Compose v1 (and v2) check ${VAR:?} for every service, whatever the profile: the demo brings its own values.
    required = set(re.findall(r"\$\{([A-Z_]+):\?", _without_comments("docker-compose.yml")))
    assert {"RABBITMQ_PASSWORD", "REDIS_PASSWORD"} <= required
    assert required <= set(_env_file("deploy/demo.env")), "docker compose --env-file deploy/demo.env must work"
    assert "--env-file deploy/demo.env --profile demo up" in (ROOT / "docker-compose.yml").read_text("utf-8")


def test_env_example_ships_no_password_for_the_broker() -> None:
    env = _env_file(".env.example")
    assert env["RABBITMQ_PASSWORD"] == ""
    assert all(env[f"RABBITMQ_{kind.upper()}_PASSWORD"] == "" for kind in USER_OF)


# --- Least-privilege broker users --------------------------------------------------------------------------------

USER_OF = {"ingress": "ingress", "classifier": "classifier", "mover": "mover", "notifier": "notifier"}
USER_OF["reconciler"] = "reconciler"
USER_OF["journal"] = "journal"


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_each_process_connects_as_its_own_broker_user_and_only_checks_the_topology(name: str) -> None:
    services = _compose(name)["services"]
    for service, kind in USER_OF.items():
        if service not in services:
            continue  # the cluster example runs no reconciler
        env = services[service]["environment"]
        urls = env["AMQP_URL"].split(",")
        password = f"${{RABBITMQ_{kind.upper()}_PASSWORD:?"
        assert all(url.startswith(f"amqp://pipeline-{kind}:{password}") for url in urls), service
        assert env["TOPOLOGY_DECLARE"] == "passive", service
        assert services[service]["depends_on"]["topology"] == {"condition": "service_completed_successfully"}
    topology = services["topology"]
    assert topology["command"] == ["invoice-pipeline", "topology"]
    assert all(
        url.startswith("amqp://${RABBITMQ_USER:-pipeline}:") for url in topology["environment"]["AMQP_URL"].split(",")
    )
    for service, spec in services.items():
        if service.startswith("rabbitmq"):
            assert spec["command"][:2] == ["sh", "/etc/rabbitmq/with-users.sh"], service
            assert "broker-users-applied" in " ".join(spec["healthcheck"]["test"]), service
            assert any(volume.endswith("users.sh:/etc/rabbitmq/users.sh:ro") for volume in spec["volumes"]), service


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_redis_requires_a_password_that_every_process_uses(name: str) -> None:
    compose = _compose(name)
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert "--requirepass" in command and command[command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")
    assert "--protected-mode" not in command, "protected mode stays on (the default)"
    assert redis["environment"]["REDISCLI_AUTH"].startswith("${REDIS_PASSWORD:?"), "the health check authenticates"
    env = compose["x-pipeline-env"]
    assert env["IDEMPOTENCY_URL"].startswith("redis://:${REDIS_PASSWORD:?"), env["IDEMPOTENCY_URL"]


# --- The Erlang cookie (deploy/compose.cluster.yml) ------------------------------------------------------------


def test_the_erlang_cookie_is_a_secret_file_never_on_a_command_line_or_in_the_environment() -> None:
    text = (ROOT / "deploy/compose.cluster.yml").read_text("utf-8")
    assert "setcookie" not in text and "RABBITMQ_ERLANG_COOKIE:" not in text
    compose = _compose("deploy/compose.cluster.yml")
    assert compose["secrets"]["erlang_cookie"]["file"].startswith("${RABBITMQ_ERLANG_COOKIE_FILE:?")
    nodes = {name: spec for name, spec in compose["services"].items() if name.startswith("rabbitmq-")}
    assert len(nodes) == 3
    for name, node in nodes.items():
        assert node["secrets"] == ["erlang_cookie"], name
        # with-users.sh starts the node through start.sh, then creates the broker users.
        assert node["command"][-2:] == ["sh", "/etc/rabbitmq/start.sh"], name
        assert "./rabbitmq/start.sh:/etc/rabbitmq/start.sh:ro" in node["volumes"], name
        assert not any("COOKIE" in key or "ERL_ARGS" in key for key in node["environment"]), name
    start = (ROOT / "deploy/rabbitmq/start.sh").read_text("utf-8")
    assert "umask 0377" in start and "/run/secrets/erlang_cookie" in start and ".erlang.cookie" in start


# --- The reverse proxy (deploy/nginx/) -------------------------------------------------------------------------


def test_the_proxy_limits_are_keyed_per_real_client_with_exempt_addresses() -> None:
    assert "$binary_remote_addr zone=" not in NGINX_CONF, "one shared bucket behind a TLS terminator"
    assert "limit_conn_zone $limit_key zone=per_ip" in NGINX_CONF
    assert "limit_req_zone $limit_key zone=per_ip_rate" in NGINX_CONF
    assert "include /run/invoice-proxy/real-ip.conf;" in NGINX_CONF
    assert re.search(r"geo \$limit_exempt \{[^}]*include /run/invoice-proxy/exempt.conf;", NGINX_CONF)
    assert re.search(r'map \$limit_exempt \$limit_key \{\s*1 "";\s*default \$binary_remote_addr;', NGINX_CONF)


def test_the_proxy_logs_json_to_the_exporter_that_prometheus_scrapes() -> None:
    assert "log_format proxy_json escape=json" in NGINX_CONF
    assert NGINX_CONF.count("access_log syslog:server=proxy-exporter:5140") == 2  # the health check's too
    services = _compose("docker-compose.yml")["services"]
    assert services["proxy-exporter"]["command"][:3] == ["python", "-m", "ops.proxy_log_exporter"]
    assert services["proxy"]["depends_on"]["proxy-exporter"] == {"condition": "service_healthy"}
    jobs = {
        job["job_name"]: job
        for job in yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())["scrape_configs"]
    }
    assert jobs["proxy"]["static_configs"][0]["targets"] == ["proxy-exporter:9113"]
    rules = yaml.safe_load((ROOT / "deploy/prometheus/rules/proxy.yml").read_text("utf-8"))["groups"][0]["rules"]
    assert {"ProxyRateLimiting", "ProxyLogSilent"} <= {rule.get("alert") for rule in rules}


def test_the_proxy_service_starts_nginx_through_the_renderer_with_its_variables() -> None:
    proxy = _compose("docker-compose.yml")["services"]["proxy"]
    assert proxy["command"] == ["sh", "/etc/nginx/start.sh"]
    assert "./deploy/nginx/start.sh:/etc/nginx/start.sh:ro" in proxy["volumes"]
    assert set(proxy["environment"]) == {"PROXY_TRUSTED_ADDRESSES", "PROXY_REAL_IP_HEADER", "PROXY_EXEMPT_ADDRESSES"}


def _start_proxy(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """start.sh with a stand-in `nginx` on the PATH that prints its arguments (no nginx runs here)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "nginx").write_text('#!/bin/sh\necho nginx "$@"\n')
    (bin_dir / "nginx").chmod(0o755)
    path = f"{bin_dir}:{os.environ['PATH']}"
    full_env = {"PATH": path, "PROXY_RENDER_DIR": str(tmp_path / "out"), **env}
    return subprocess.run(["sh", str(START_PROXY)], env=full_env, capture_output=True, text=True, timeout=30)


def test_the_renderer_writes_trusted_proxies_and_exempt_addresses_then_runs_nginx(tmp_path: Path) -> None:
    done = _start_proxy(
        tmp_path,
        PROXY_TRUSTED_ADDRESSES="10.0.0.0/8, 172.16.0.0/12,fd00::/8",
        PROXY_EXEMPT_ADDRESSES="203.0.113.5,198.51.100.0/24",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "nginx -g daemon off;"
    real_ip = (tmp_path / "out/real-ip.conf").read_text().splitlines()
    assert real_ip[1:] == [
        "set_real_ip_from 10.0.0.0/8;",
        "set_real_ip_from 172.16.0.0/12;",
        "set_real_ip_from fd00::/8;",
        "real_ip_header X-Forwarded-For;",
        "real_ip_recursive on;",
    ]
    exempt = (tmp_path / "out/exempt.conf").read_text().splitlines()
    assert exempt[1:] == ["203.0.113.5 1;", "198.51.100.0/24 1;"]


def test_without_trusted_proxies_the_tcp_peer_is_the_client_and_nobody_is_exempt(tmp_path: Path) -> None:
    done = _start_proxy(tmp_path)
    assert done.returncode == 0, done.stderr
    assert "set_real_ip_from" not in (tmp_path / "out/real-ip.conf").read_text()
    assert (tmp_path / "out/exempt.conf").read_text().splitlines()[1:] == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PROXY_TRUSTED_ADDRESSES", "10.0.0.0/8;} server { listen 81"),
        ("PROXY_EXEMPT_ADDRESSES", "0.0.0.0/0 1; default"),
        ("PROXY_TRUSTED_ADDRESSES", "*"),
        ("PROXY_REAL_IP_HEADER", "X-Forwarded-For; real_ip_recursive off"),
    ],
)
def test_a_value_that_is_not_an_address_stops_the_start_before_nginx_runs(
    tmp_path: Path, variable: str, value: str
) -> None:
    done = _start_proxy(tmp_path, **{variable: value})
    assert done.returncode != 0
    assert "nginx -g" not in done.stdout
    assert variable in done.stderr
