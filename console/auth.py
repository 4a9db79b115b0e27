"""Who may use the console: users with argon2 password hashes, signed session cookies, CSRF tokens, login limits.

Nothing here knows HTTP: ``console/app.py`` reads cookies and forms and asks these classes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")

# OWASP's argon2id profile (19 MiB, 2 passes): the library's default takes 64 MiB per login, most of the
# console's memory budget. A hash carries its own parameters, so older hashes still verify.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified when the user name is unknown, so that a wrong name takes as long as a wrong password.
_DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))
# At most two hashes at once: each takes 19 MiB, and a burst of logins must not take the console's memory.
_HASHING = threading.BoundedSemaphore(2)


class UsersFileError(ValueError):
    """The users file cannot be read or has a line that is not ``name:role:hash``."""


@dataclass(frozen=True)
class User:
    """Someone the console knows: a name, a role and (for password logins) an argon2 hash."""

    name: str
    role: Role
    password_hash: str = ""

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def user_line(name: str, role: Role, password: str) -> str:
    """The users file's line for a new user: ``name:role:$argon2id$...``."""
    if not name or ":" in name or name != name.strip():
        raise ValueError("a user name must be non-empty, without ':' or surrounding spaces")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    return f"{name}:{role}:{hash_password(password)}"


def read_users(path: Path) -> dict[str, User]:
    """Parse the users file; blank lines and ``#`` comments are skipped. The error never shows a hash."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise UsersFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    users: dict[str, User] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        role, _, password_hash = rest.partition(":")
        if not name or role not in ROLES or not password_hash.startswith("$argon2"):
            raise UsersFileError(f"{path} line {number}: expected name:role:$argon2id$... with role viewer/operator")
        users[name] = User(name, role, password_hash)
    return users


def check_password(users: Mapping[str, User], name: str, password: str) -> User | None:
    """The user when ``password`` is theirs; None otherwise (after the same work either way)."""
    user = users.get(name)
    with _HASHING:
        try:
            HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
    return user


@dataclass(frozen=True)
class Session:
    """What the session cookie says: who (empty before login), until when, and the seed of its CSRF token."""

    user: str
    expires: float
    nonce: str

    @property
    def logged_in(self) -> bool:
        return bool(self.user)


class Sessions:
    """Signs and checks session cookies (HMAC-SHA256); a logged-out session's nonce is refused until it expires."""

    def __init__(self, key: bytes, *, lifetime: float, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 32:
            raise ValueError("the session key must be at least 32 bytes")
        self._key = key
        self._lifetime = lifetime
        self._clock = clock
        self._revoked: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def lifetime(self) -> float:
        return self._lifetime

    def new(self, user: str = "", *, lifetime: float | None = None) -> Session:
        expires = self._clock() + (self._lifetime if lifetime is None else lifetime)
        return Session(user, expires, secrets.token_urlsafe(18))

    def encode(self, session: Session) -> str:
        payload = _b64(orjson.dumps({"u": session.user, "e": int(session.expires), "n": session.nonce}))
        return f"{payload}.{self._sign(payload)}"

    def decode(self, cookie: str | None) -> Session | None:
        """The session a cookie holds, or None when it is missing, forged, expired or logged out."""
        if not cookie or cookie.count(".") != 1 or len(cookie) > 1024:
            return None
        payload, signature = cookie.split(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            data = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            session = Session(str(data["u"]), float(data["e"]), str(data["n"]))
        except (ValueError, KeyError, TypeError):
            return None
        now = self._clock()
        if session.expires <= now:
            return None
        with self._lock:
            if session.nonce in self._revoked:
                return None
        return session

    def revoke(self, session: Session) -> None:
        """Log out: the cookie is refused from now on, even if someone kept a copy."""
        now = self._clock()
        with self._lock:
            self._revoked = {nonce: until for nonce, until in self._revoked.items() if until > now}
            self._revoked[session.nonce] = session.expires

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._key, f"csrf\0{session.nonce}".encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session | None, token: object) -> bool:
        if session is None or not isinstance(token, str) or not token:
            return False
        return hmac.compare_digest(token, self.csrf_token(session))

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class LoginLimiter:
    """Failed logins per key (a user name, an address) in a sliding window; over the limit, wait it out."""

    def __init__(self, attempts: int, window: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._attempts = attempts
        self._window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def wait(self, *keys: str) -> float:
        """Seconds until another attempt is allowed for all of ``keys`` (0: go ahead)."""
        now = self._clock()
        longest = 0.0
        with self._lock:
            for key in keys:
                failures = self._prune(key, now)
                if len(failures) >= self._attempts:
                    longest = max(longest, failures[0] + self._window - now)
        return longest

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                self._prune(key, now).append(now)
            if len(self._failures) > 10_000:  # a scan of many names must not grow this without bound
                self._failures = {k: v for k, v in self._failures.items() if v and v[-1] > now - self._window}

    def succeeded(self, name_key: str) -> None:
        with self._lock:
            self._failures.pop(name_key, None)

    def _prune(self, key: str, now: float) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        return failures
