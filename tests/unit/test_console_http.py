"""The console's HTTP rules through Falcon's test client: headers, redirects, CSRF, the trusted proxy header."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import falcon.testing
import pytest

from console.app import AuthConfig, create_app
from console.auth import LoginLimiter, Sessions, User, hash_password
from tests.support.console_sources import offline_sources

PASSWORD = "a long password"


def _client(**auth: Any) -> falcon.testing.TestClient:
    users = {"olga": User("olga", "operator", hash_password(PASSWORD))}
    app = create_app(
        offline_sources(),
        auth=AuthConfig(users=users, **auth),
        sessions=Sessions(b"k" * 32, lifetime=600),
        limiter=LoginLimiter(5, 300),
    )
    return falcon.testing.TestClient(app)


@pytest.fixture
def client() -> Iterator[falcon.testing.TestClient]:
    yield _client()


def _login(client: falcon.testing.TestClient, target: str = "/health") -> falcon.testing.Result:
    form = client.simulate_get("/login")
    token = form.text.split('name="csrf" value="')[1].split('"')[0]
    cookie = form.cookies["console_session"].value
    return client.simulate_post(
        "/login",
        body=urlencode({"csrf": token, "username": "olga", "password": PASSWORD, "next": target}),
        headers={"Cookie": f"console_session={cookie}", "Content-Type": "application/x-www-form-urlencoded"},
    )


def test_every_answer_carries_the_security_headers(client: falcon.testing.TestClient) -> None:
    for path in ("/login", "/health", "/static/console.css", "/nowhere"):
        headers = client.simulate_get(path).headers
        csp = headers["content-security-policy"]
        assert "default-src 'none'" in csp and "unsafe-inline" not in csp and "script-src 'none'" in csp
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-content-type-options"] == "nosniff"


def test_after_login_only_a_path_on_the_console_is_followed(client: falcon.testing.TestClient) -> None:
    assert _login(client, "/clients").headers["location"] == "/clients"
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        assert _login(client, target).headers["location"] in {"/dead-letters", "/today"}


def test_a_post_to_login_without_its_csrf_token_is_refused(client: falcon.testing.TestClient) -> None:
    answer = client.simulate_post(
        "/login",
        body="username=olga&password=a+long+password",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 403
    assert "set-cookie" not in {k.lower() for k in answer.headers} or "console_session" not in answer.headers.get(
        "set-cookie", ""
    )


def test_the_proxy_header_counts_only_from_the_proxy_s_address() -> None:
    client = _client(proxy_header="Remote-User", proxy_addresses=frozenset({"10.0.0.5"}), operators=frozenset())
    trusted = client.simulate_get("/health", headers={"Remote-User": "anna"}, remote_addr="10.0.0.5")
    assert trusted.status_code == 200 and "anna" in trusted.text and "(viewer)" in trusted.text
    forged = client.simulate_get("/health", headers={"Remote-User": "anna"}, remote_addr="10.0.0.9")
    assert forged.status_code == 303 and forged.headers["location"].startswith("/login")


def test_the_session_cookie_is_secure_under_tls() -> None:
    client = _client(public_url="https://console.example.com")
    form = client.simulate_get("/login", protocol="https")
    cookie = form.cookies["__Host-console"]
    assert cookie.secure and cookie.http_only and cookie.same_site == "Strict"
    assert form.headers["strict-transport-security"].startswith("max-age=")
