"""The console's login pieces: users file, argon2 check, signed sessions, CSRF tokens, the login limit, listening."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from console.auth import LoginLimiter, Sessions, UsersFileError, check_password, read_users, user_line
from console.settings import ConsoleSettings

KEY = b"k" * 32


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_users_file_holds_only_hashes_and_checks_passwords(tmp_path: Path) -> None:
    users_file = tmp_path / "users"
    users_file.write_text("# the console's users\n" + user_line("olga", "operator", "a long password") + "\n")
    assert "a long password" not in users_file.read_text()
    users = read_users(users_file)
    assert users["olga"].is_operator
    assert check_password(users, "olga", "a long password") == users["olga"]
    assert check_password(users, "olga", "wrong") is None
    assert check_password(users, "nobody", "a long password") is None


@pytest.mark.parametrize("line", ["olga:admin:$argon2id$x", "olga:viewer:plaintext", "olga"])
def test_a_bad_users_line_is_refused_without_echoing_it(tmp_path: Path, line: str) -> None:
    users_file = tmp_path / "users"
    users_file.write_text(line + "\n")
    with pytest.raises(UsersFileError, match="line 1") as caught:
        read_users(users_file)
    assert "plaintext" not in str(caught.value)


def test_a_session_cookie_is_signed_expires_and_can_be_revoked() -> None:
    clock = Clock()
    sessions = Sessions(KEY, lifetime=60, clock=clock)
    session = sessions.new("olga")
    cookie = sessions.encode(session)
    assert sessions.decode(cookie) == session
    payload, signature = cookie.split(".")
    other = "B" if signature.endswith("A") else "A"  # a random signature may already end in "A"
    assert sessions.decode(f"{payload}.{signature[:-1]}{other}") is None  # tampered
    assert Sessions(b"x" * 32, lifetime=60, clock=clock).decode(cookie) is None  # another key
    clock.now += 61
    assert sessions.decode(cookie) is None  # expired
    clock.now -= 61
    sessions.revoke(session)
    assert sessions.decode(cookie) is None  # logged out, even with a kept copy


def test_a_csrf_token_belongs_to_one_session() -> None:
    sessions = Sessions(KEY, lifetime=60)
    one, other = sessions.new("olga"), sessions.new("olga")
    assert sessions.csrf_ok(one, sessions.csrf_token(one))
    assert not sessions.csrf_ok(one, sessions.csrf_token(other))
    assert not sessions.csrf_ok(one, "")
    assert not sessions.csrf_ok(None, sessions.csrf_token(one))


def test_failed_logins_wait_out_the_window_per_name_and_per_address() -> None:
    clock = Clock()
    limiter = LoginLimiter(2, 300, clock=clock)
    limiter.failed("name:olga", "addr:1.2.3.4")
    assert limiter.wait("name:olga", "addr:1.2.3.4") == 0
    limiter.failed("name:olga", "addr:1.2.3.4")
    assert limiter.wait("name:olga", "addr:5.6.7.8") == 300  # the name is limited from any address
    assert limiter.wait("name:victor", "addr:1.2.3.4") == 300  # and the address for any name
    clock.now += 301
    assert limiter.wait("name:olga", "addr:1.2.3.4") == 0


def test_the_console_refuses_another_address_than_loopback_without_credentials(tmp_path: Path) -> None:
    everywhere = "0.0.0.0"  # noqa: S104  # the address this test is about
    assert ConsoleSettings(console_host="127.0.0.1").listen_problem() is None
    assert "not a loopback address" in (ConsoleSettings(console_host=everywhere).listen_problem() or "")
    assert ConsoleSettings(console_host=everywhere, console_users_file=tmp_path / "u").listen_problem() is None
    assert ConsoleSettings(console_host="::", console_auth_proxy_header="Remote-User").listen_problem() is None


def test_a_short_session_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        ConsoleSettings(console_session_secret=SecretStr("short"))
