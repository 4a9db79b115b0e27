"""A TCP proxy the tests put between a process and the broker, to cut its connections or refuse new ones."""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``down()`` cuts every connection and refuses new ones."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._accepting = True
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.accepted = 0  # connections forwarded so far: which "node" a client chose
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @classmethod
    def in_front_of(cls, url: str) -> TcpProxy:
        target = urlsplit(url)
        return cls(target.hostname or "localhost", target.port or 5672)

    def proxied(self, url: str) -> str:
        """``url`` with its host and port replaced by this proxy's."""
        target = urlsplit(url)
        return url.replace(f"{target.hostname}:{target.port or 5672}", f"127.0.0.1:{self.port}", 1)

    def down(self) -> None:
        """Like a broker that died: open connections drop, new ones are refused at once."""
        self._accepting = False
        self.cut()

    def up(self) -> None:
        self._accepting = True

    def cut(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._accepting:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, upstream))
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
