"""Loopback ports for tests: one free right now, to listen on or to be refused on (nothing listens there)."""

from __future__ import annotations

import socket
from collections.abc import Container


def free_port(host: str = "127.0.0.1", *, avoid: Container[int] = ()) -> int:
    """A port the kernel just handed out and took back; ``avoid`` skips ports another tool needs."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in avoid:
            return port
