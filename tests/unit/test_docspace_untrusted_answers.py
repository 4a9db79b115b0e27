"""DocSpace answers that cannot be trusted: a body the JSON parser cannot read is a typed failure, never a crash;
a listing whose ``total`` is never reached stops at its page cap, loudly."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from shared.docspace.errors import DocSpaceUnavailable
from shared.docspace.files import FileOperations
from shared.docspace.paging import MAX_FOLDER_PAGES
from shared.docspace.transport import DocSpaceTransport, HttpOptions

DEPTH = 100_000  # far beyond the json module's recursion limit


class _Nested:
    """A real HTTP server answering every GET with ``status`` and a body nested ``DEPTH`` arrays deep."""

    def __init__(self) -> None:
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:  # quiet test output
                pass

            def do_GET(self) -> None:
                body = b'{"response":' + b"[" * DEPTH + b"]" * DEPTH + b"}"
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def nested() -> Iterator[_Nested]:
    server = _Nested()
    yield server
    server.close()


@pytest.mark.parametrize("status", [200, 500])
def test_a_deeply_nested_answer_is_a_typed_docspace_error_not_a_recursion_error(nested: _Nested, status: int) -> None:
    nested.status = status
    transport = DocSpaceTransport(nested.url, "sk-test", HttpOptions(timeout=(2.0, 5.0)))
    try:
        with pytest.raises(DocSpaceUnavailable) as err:
            transport.request("GET", "settings/webhooks")
    finally:
        transport.close()
    assert "settings/webhooks" in str(err.value)


class _EndlessFolders:
    """A transport whose folder listing claims a ``total`` it never reaches: every page is full, for ever."""

    def __init__(self) -> None:
        self.calls = 0

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, json: Any = None) -> Any:
        self.calls += 1
        if self.calls > 10 * MAX_FOLDER_PAGES:
            raise AssertionError("still paging: the listing has no cap")  # ends the test rather than hang it
        start = (params or {}).get("startIndex", 0)
        folders = [{"id": 9000 + start + i, "title": "Incoming-old", "parentId": 86193} for i in range(100)]
        return {"folders": folders, "total": 10**12}


def test_a_folder_listing_that_never_ends_stops_at_its_page_cap_loudly() -> None:
    transport = _EndlessFolders()
    files = FileOperations(transport)  # type: ignore[arg-type]  # the transport's one method, scripted
    before = REGISTRY.get_sample_value("docspace_listing_page_cap_hits_total", {"listing": "folder_subfolders"})
    with capture_logs() as logs:
        assert files.find_subfolder("86193", "Incoming") is None
    assert transport.calls == MAX_FOLDER_PAGES
    assert [e["room_id"] for e in logs if e["event"] == "docspace_listing_page_cap_hit"] == ["86193"]
    after = REGISTRY.get_sample_value("docspace_listing_page_cap_hits_total", {"listing": "folder_subfolders"})
    assert after == (before or 0.0) + 1
