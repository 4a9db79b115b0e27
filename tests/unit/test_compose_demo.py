"""The compose demo's wiring agrees with itself: the seeded room, the settings every process reads, the profiles."""

from __future__ import annotations

from pathlib import Path

import yaml

from consumers.classifier.settings import ClassifierSettings
from consumers.mover.settings import MoverSettings
from consumers.notifier.settings import NotifierSettings
from consumers.reconciler.settings import ReconcilerSettings
from ingress.settings import IngressSettings
from simulator import DocSpaceSimulator
from simulator.demo import MANAGER_EMAIL, seed_demo

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text("utf-8"))


def _demo_env() -> dict[str, str]:
    lines = (ROOT / "deploy/demo.env").read_text("utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_the_room_the_demo_settings_name_is_the_one_the_simulator_seeds() -> None:
    env = _demo_env()
    portal = seed_demo(DocSpaceSimulator(port=0))  # not started: seeding is in memory
    assert env["CLIENT_ROOM_ID"] == portal.room_id
    assert env["MANAGER_EMAIL"] == MANAGER_EMAIL


def test_every_process_accepts_the_demo_settings(monkeypatch) -> None:
    for name, value in _demo_env().items():
        monkeypatch.setenv(name, value)
    for settings in (IngressSettings, ClassifierSettings, MoverSettings, NotifierSettings, ReconcilerSettings):
        settings()


def test_the_demo_wires_the_services_the_compose_file_names() -> None:
    env = _demo_env()
    services = COMPOSE["services"]
    assert env["DOCSPACE_API_HOST"] == "http://simulator:8090" and "simulator" in services
    assert env["SMTP_HOST"] in services and env["PIPELINE_URL"].startswith("http://pipeline-receiver:")


def test_the_stand_ins_stay_in_the_demo_profile_and_out_of_the_production_image() -> None:
    services = COMPOSE["services"]
    for name in ("simulator", "mailcatcher", "pipeline-receiver"):
        assert services[name]["profiles"] == ["demo"]
        assert services[name]["build"]["target"] == "demo"
    for name in ("ingress", "classifier", "mover", "notifier", "reconciler", "journal"):
        assert "profiles" not in services[name]
        assert services[name]["build"]["target"] == "runtime"


def test_published_ports_listen_on_loopback_unless_said_otherwise() -> None:
    for name, service in COMPOSE["services"].items():
        for port in service.get("ports", []):
            assert port.startswith("${") and ":-127.0.0.1:" in port, f"{name} publishes {port}"
    assert "ports" not in COMPOSE["services"]["ingress"], "the ingress is reached through the proxy only"
