"""A private three-node RabbitMQ cluster for a test, from the installed ``rabbitmq-server``, beside the machine's node.

Every node has its own name, AMQP and distribution ports, data, log and pid files, and a config file of its own
(``/etc/rabbitmq/rabbitmq.conf`` pins port 5672); all listen on 127.0.0.1 only and share one Erlang cookie through
a ``HOME`` of the cluster's. The machine's own node (5672, ``rabbit@``) is never addressed: every CLI call names
its node with ``-n``. See ``../shared/notes/rabbitmq-cluster-on-one-host.md`` for why each piece is there.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from standins.ports import free_port
from tests.support.real_broker import broker_answers

SCRIPTS = Path("/usr/lib/rabbitmq/bin")  # the real scripts: /usr/sbin's wrappers cd to /var/lib and switch user


def installed() -> bool:
    return (SCRIPTS / "rabbitmq-server").exists() and shutil.which("erl") is not None


# The machine's rabbitmqctl takes its own distribution ports from here: a node listening on one breaks it.
HOST_CLI_PORTS = range(35672, 35683)


def _free_range(size: int) -> int:
    """The first of ``size`` consecutive free ports (for the CLI's own distribution ports)."""
    for _ in range(50):
        base = 40000 + secrets.randbelow(20000)
        try:
            sockets = []
            for port in range(base, base + size):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free port range for the RabbitMQ CLI")


@dataclass
class Node:
    """One node of the private cluster: its Erlang name, its ports, its directory and its server process."""

    name: str  # e.g. n1-3f9a2c@localhost
    amqp_port: int
    dist_port: int
    base: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.amqp_port}/%2F"

    @property
    def pid_file(self) -> Path:
        return self.base / "rabbit.pid"

    @property
    def log_file(self) -> Path:
        return self.base / "server.out"

    def answers(self) -> bool:
        return broker_answers(self.url)


class RabbitCluster:
    """``start()`` and ``stop()`` the cluster; a test drives ``kill()``, ``restart()`` and ``stop_node()``."""

    def __init__(self, root: Path, size: int = 3) -> None:
        self.root = root
        tag = secrets.token_hex(3)
        self.home = root / "home"
        self.nodes = [
            Node(
                f"n{i + 1}-{tag}@localhost",
                free_port(avoid=HOST_CLI_PORTS),
                free_port(avoid=HOST_CLI_PORTS),
                root / f"n{i + 1}",
            )
            for i in range(size)
        ]
        self._ctl_ports = _free_range(10)

    # --- lifecycle ---------------------------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> RabbitCluster:
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        for node in self.nodes:
            self._write_config(node)
            self._launch(node)  # in parallel: they boot in about 20 s together
        for node in self.nodes:
            self._await(node, timeout)
        first = self.nodes[0]
        for node in self.nodes[1:]:
            self.ctl(node, "stop_app")
            self.ctl(node, "join_cluster", first.name)
            self.ctl(node, "start_app")
            self._await(node, timeout)
        return self

    def stop(self) -> None:
        for node in self.nodes:
            self._stop(node)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    # --- faults ------------------------------------------------------------------------------------------------

    def kill(self, node: Node) -> None:
        """``kill -9`` of the node's Erlang VM: a crash, nothing flushed, no goodbye to clients or peers."""
        os.kill(int(node.pid_file.read_text().strip()), signal.SIGKILL)
        if node.process is not None:
            node.process.wait(30)

    def restart(self, node: Node, timeout: float = 120) -> None:
        """Start a node again; it rejoins its cluster by itself (its data directory knows the peers)."""
        self._launch(node)
        self._await(node, timeout)

    def stop_node(self, node: Node) -> None:
        """A graceful stop: clients get connection.close, quorum queues hand their leadership over."""
        self.ctl(node, "stop", str(node.pid_file), timeout=120)
        if node.process is not None:
            node.process.wait(30)

    # --- queries -----------------------------------------------------------------------------------------------

    def leaders(self, via: Node, names: set[str]) -> dict[str, str]:
        """queue name -> node name of its leader, for the given quorum queues."""
        out = self.ctl(via, "list_queues", "name", "leader", "--no-table-headers", "--quiet")
        leaders: dict[str, str] = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in names:
                leaders[parts[0]] = parts[1]
        return leaders

    def members(self, via: Node, queue: str) -> list[str]:
        out = self.ctl(via, "list_queues", "name", "members", "--no-table-headers", "--quiet")
        for line in out.splitlines():
            name, _, rest = line.partition("\t")
            if name == queue:
                return [m.strip(" []") for m in rest.split(",") if m.strip(" []")]
        return []

    def node_named(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def ctl(self, node: Node, *args: str, timeout: float = 60) -> str:
        result = subprocess.run(
            [str(SCRIPTS / "rabbitmqctl"), "-n", node.name, *args],
            env=self._env(node),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"rabbitmqctl -n {node.name} {' '.join(args)}: {result.stderr or result.stdout}")
        return result.stdout

    # --- internals ---------------------------------------------------------------------------------------------

    def _env(self, node: Node) -> Mapping[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(self.home),  # the cookie lives here, for the servers and every CLI call
            "RABBITMQ_NODENAME": node.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(node.amqp_port),
            "RABBITMQ_DIST_PORT": str(node.dist_port),
            "RABBITMQ_CONFIG_FILE": str(node.base / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(node.base / "rabbitmq-env.conf"),
            "RABBITMQ_MNESIA_BASE": str(node.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(node.base / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(node.base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(node.pid_file),
            "ERL_CRASH_DUMP": str(node.base / "erl_crash.dump"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
            "RABBITMQ_CTL_DIST_PORT_MIN": str(self._ctl_ports),
            "RABBITMQ_CTL_DIST_PORT_MAX": str(self._ctl_ports + 9),
        }

    def _write_config(self, node: Node) -> None:
        node.base.mkdir(parents=True, exist_ok=True)
        (node.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.1 = 127.0.0.1:{node.amqp_port}\n"
            # A test's cluster must not stop taking messages because the shared machine's disk is busy.
            "disk_free_limit.absolute = 50MB\n"
            "log.console = false\n"
            "log.file.level = info\n"
        )
        (node.base / "rabbitmq-env.conf").write_text("")
        (node.base / "enabled_plugins").write_text("[].\n")

    def _launch(self, node: Node) -> None:
        # In the background, not -detached: a second -detached start of a running node exits 0 silently.
        with node.log_file.open("ab") as log:
            node.process = subprocess.Popen(
                [str(SCRIPTS / "rabbitmq-server")],
                env=self._env(node),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in pytest must not reach the nodes before teardown does
            )

    def _await(self, node: Node, timeout: float) -> None:
        # await_startup fails at once (exit 69) until the VM has registered with epmd: wait for the port first.
        deadline = time.monotonic() + timeout
        while not _port_open(node.amqp_port):
            if node.process is not None and node.process.poll() is not None:
                raise RuntimeError(f"{node.name} exited during start-up: see {node.log_file}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node.name} did not open its AMQP port in {timeout:.0f}s: see {node.log_file}")
            time.sleep(0.2)
        self.ctl(node, "await_startup", timeout=timeout)

    def _stop(self, node: Node) -> None:
        if node.process is None or node.process.poll() is not None:
            return
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.ctl(node, "stop", str(node.pid_file), timeout=60)
        if node.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, ValueError, OSError):
                os.kill(int(node.pid_file.read_text().strip()), signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait(30)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def running_cluster(root: Path, size: int = 3) -> Iterator[RabbitCluster]:
    cluster = RabbitCluster(root, size)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
