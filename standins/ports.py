"""Loopback ports to listen on (or be refused on), chosen below the kernel's ephemeral range.

``bind(("127.0.0.1", 0))`` hands out a port from the ephemeral range, the same range every outgoing connection on
the machine takes its source port from. Between closing that probe socket and the real server's ``bind`` (seconds,
for a child process that first imports its modules), any client connection can take the port and hold it for as long
as it lives: CI saw an ingress fail to bind its metrics port eight times in four minutes. Ports below the range are
never given to outgoing connections, and each is handed out at most once per process.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Container
from pathlib import Path

# Ports the machine's own services (and the compose stack's published ports) listen on.
_SERVICES = frozenset({3000, 3306, 4369, 5432, 5672, 6379, 8025, 8080, 8090, 9090, 9100, 15672, 25672})
_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux's default when it cannot be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR, so a port whose last connection lingers in TIME_WAIT is free for them too.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1", *, avoid: Container[int] = ()) -> int:
    """A port nothing listens on now, outside the ephemeral range; ``avoid`` skips ports another tool needs."""
    low, high = 10_000, _ephemeral_low() - 1
    for _ in range(10_000):
        port = random.randint(low, high)  # noqa: S311 - spreading picks, not a secret
        if port in _handed_out or port in _SERVICES or port in avoid:
            continue
        if _bindable(host, port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port on {host} between {low} and {high}")
