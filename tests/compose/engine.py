"""A Docker engine and a compose command for the compose test: installed and started when missing, stopped after."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from standins.ports import free_port
from tests.support.processes import stop_gently

ROOT = Path(__file__).resolve().parents[2]
# Debian's packages: the engine, compose v1, and what deploy/ci-images.sh needs to build the base image.
APT_PACKAGES = ["docker.io", "containerd", "runc", "iptables", "debootstrap", "docker-compose"]
# Ports the machine's own services use, beside the usual ephemeral range: never publish on them.
RESERVED_PORTS = {3000, 5672, 6379, 8025, 8080, 8090, 9090, 9100, 15672, 25672, *range(35672, 35683)}


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 600, check: bool = True):
    """Run a command from the repository's root; on failure, raise with its output (the CI log shows why)."""
    proc = subprocess.run(
        list(argv), cwd=ROOT, env=dict(env or os.environ), capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        output = f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}\n{output}")
    return proc


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


def compose_command() -> list[str] | None:
    """Compose v2 (the docker plugin) when present, else Debian's docker-compose 1.29: the file serves both."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def install_missing() -> None:
    """apt-get what is missing (about 16 s): the test runs on a fresh CI machine too."""
    missing = not shutil.which("dockerd") or not shutil.which("debootstrap") or compose_command() is None
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise AssertionError(f"the compose test needs {' '.join(APT_PACKAGES)}: install them (as root, apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "update", "-qq"], env=env)
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES], env=env)


@contextlib.contextmanager
def docker_engine() -> Iterator[bool]:
    """Yield with a Docker engine answering; start `dockerd` if none does and stop it (by its pid) afterwards.

    Yields whether this test started it.
    """
    if engine_answers():
        yield False
        return
    log = tempfile.NamedTemporaryFile(prefix="compose-test-dockerd-", suffix=".log", delete=False)  # noqa: SIM115
    daemon = subprocess.Popen(["dockerd"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not engine_answers():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"dockerd did not come up: see {log.name}")
            time.sleep(0.5)
        yield True
    finally:
        stop_gently(daemon, 60)
        log.close()


def free_ports(count: int) -> list[int]:
    """Ports free on 127.0.0.1 right now, clear of the machine's own services and of the ephemeral range."""
    return [free_port(avoid=RESERVED_PORTS) for _ in range(count)]
