"""The console's HTTP side: ``create_app`` wires the pages, the login, the session and CSRF checks, the headers.

Every page is plain HTML from Jinja2 with autoescaping on: a title from DocSpace is attacker-controlled and must
show as text. No script runs on any page (the CSP says ``script-src 'none'``); forms do everything.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import falcon
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from console.auth import LoginLimiter, Session, Sessions, User
from console.sources import Sources
from ops.trace import details

STATIC = Path(__file__).resolve().parent / "static"
MAX_FORM_BYTES = 16 * 1024
PUBLIC = frozenset({"/login", "/healthz"})
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; script-src 'none'"
)


@dataclass(frozen=True)
class AuthConfig:
    """How people log in: users with password hashes, and/or a trusted proxy's header."""

    users: Mapping[str, User]
    proxy_header: str | None = None
    proxy_addresses: frozenset[str] = frozenset({"127.0.0.1", "::1"})
    operators: frozenset[str] = frozenset()
    public_url: str | None = None

    def user(self, name: str) -> User | None:
        if name in self.users:
            return self.users[name]
        if self.proxy_header:
            return User(name, "operator" if name in self.operators else "viewer")
        return None


def templates() -> Environment:
    env = Environment(
        loader=PackageLoader("console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["details"] = lambda d: details(d, datetime.now(UTC))
    env.filters["file_url"] = file_url
    return env


def file_url(docspace: str | None, file_id: str | None) -> str | None:
    """The file in DocSpace's editor (opened without a referrer: the console's address is nobody's business)."""
    if not docspace or not file_id or not file_id.isdigit():
        return None
    return f"{docspace}/doceditor?fileid={file_id}"


def _when(value: datetime | None) -> str:
    if value is None:
        return "-"
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


class Pages:
    """Renders a template with what every page needs: the user, the CSRF token, the navigation."""

    def __init__(self, env: Environment, sessions: Sessions, *, nav: list[tuple[str, str]]) -> None:
        self._env = env
        self._sessions = sessions
        self._nav = nav

    def render(self, req: falcon.Request, resp: falcon.Response, template: str, **context: Any) -> None:
        session: Session | None = req.context.get("session")
        resp.content_type = falcon.MEDIA_HTML
        resp.text = self._env.get_template(template).render(
            user=req.context.get("user"),
            csrf=self._sessions.csrf_token(session) if session else "",
            nav=self._nav,
            has_find=any(href == "/find" for href, _ in self._nav),
            path=req.path,
            **context,
        )


class Guard:
    """Middleware: who is asking (session cookie or trusted proxy header), login required, CSRF on every POST."""

    def __init__(self, sessions: Sessions, auth: AuthConfig, cookie: Callable[[falcon.Request], str]) -> None:
        self._sessions = sessions
        self._auth = auth
        self._cookie = cookie

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = self._sessions.decode(req.cookies.get(self._cookie(req)))
        user = self._auth.user(session.user) if session and session.logged_in else None
        proxied = self._proxy_user(req)
        if proxied is not None and (user is None or user.name != proxied.name):
            # Behind the auth proxy the proxy's word is the login; the session only carries the CSRF seed.
            session, user = self._sessions.new(proxied.name), proxied
            resp.context.new_session = session
        req.context.session = session
        req.context.user = user
        if req.path.startswith("/static/") or req.path in PUBLIC:
            pass
        elif user is None:
            target = req.relative_uri if req.method == "GET" else "/"
            raise falcon.HTTPSeeOther(f"/login?next={quote(target, safe='')}")
        if req.method == "POST":
            if (req.content_length or 0) > MAX_FORM_BYTES:
                raise falcon.HTTPContentTooLarge(title="form too large")
            form = req.get_media(default_when_empty={})
            req.context.form = form if isinstance(form, dict) else {}
            if not self._sessions.csrf_ok(session, req.context.form.get("csrf")):
                raise falcon.HTTPForbidden(
                    title="CSRF token missing or wrong", description="reload the page and submit the form again"
                )

    def process_response(
        self, req: falcon.Request, resp: falcon.Response, resource: object, req_succeeded: bool
    ) -> None:
        new_session = resp.context.get("new_session")
        if new_session is not None:
            set_session_cookie(req, resp, self._sessions, new_session, self._cookie(req), self._auth.public_url)
        resp.set_header("Content-Security-Policy", CSP)
        resp.set_header("X-Frame-Options", "DENY")
        resp.set_header("Referrer-Policy", "no-referrer")
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.set_header("Cross-Origin-Opener-Policy", "same-origin")
        resp.set_header("Cross-Origin-Resource-Policy", "same-origin")
        if is_tls(req, self._auth.public_url):
            resp.set_header("Strict-Transport-Security", "max-age=31536000")
        if not req.path.startswith("/static/"):
            resp.set_header("Cache-Control", "no-store")

    def _proxy_user(self, req: falcon.Request) -> User | None:
        if not self._auth.proxy_header:
            return None
        name = (req.get_header(self._auth.proxy_header) or "").strip()
        if not name or not _trusted(req.remote_addr, self._auth.proxy_addresses):
            return None
        return self._auth.user(name[:200])


def _trusted(address: str | None, allowed: frozenset[str]) -> bool:
    if not address:
        return False
    try:
        peer = ipaddress.ip_address(address)
    except ValueError:
        return False
    for entry in allowed:
        try:
            if peer in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def is_tls(req: falcon.Request, public_url: str | None) -> bool:
    return req.scheme == "https" or bool(public_url and public_url.startswith("https://"))


def cookie_namer(public_url: str | None) -> Callable[[falcon.Request], str]:
    """``__Host-`` cookies (Secure, host-only, path /) under TLS; a plain name over loopback HTTP."""
    return lambda req: "__Host-console" if is_tls(req, public_url) else "console_session"


def set_session_cookie(
    req: falcon.Request,
    resp: falcon.Response,
    sessions: Sessions,
    session: Session,
    name: str,
    public_url: str | None,
) -> None:
    resp.set_cookie(
        name,
        sessions.encode(session),
        max_age=max(int(session.expires - datetime.now(UTC).timestamp()), 1),
        secure=is_tls(req, public_url),
        http_only=True,
        same_site="Strict",
        path="/",
    )


def html_errors(env: Environment) -> Callable[[falcon.Request, falcon.Response, falcon.HTTPError], None]:
    """Errors as a small page (never a traceback): the status, a title and what to do."""

    def serialize(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = env.get_template("error.html").render(
            status=exc.status, title=exc.title or "", description=exc.description or "", user=None, nav=[], path=""
        )

    return serialize


def create_app(
    sources: Sources,
    *,
    auth: AuthConfig,
    sessions: Sessions,
    limiter: LoginLimiter,
) -> falcon.App[falcon.Request, falcon.Response]:
    """The console's WSGI app: pages, login, static files; Today and Find when there is a journal."""
    from console import journal_pages  # the page resources, which need Pages defined above
    from console import pages as views

    env = templates()
    cookie = cookie_namer(auth.public_url)
    app = falcon.App(middleware=[Guard(sessions, auth, cookie)])
    app.set_error_serializer(html_errors(env))
    app.req_options.strip_url_path_trailing_slash = True
    nav: list[tuple[str, str]] = []
    page = Pages(env, sessions, nav=nav)
    if sources.journal is not None:
        nav += [("/today", "Today"), ("/find", "Find an invoice")]
        app.add_route("/today", journal_pages.TodayPage(page, sources))
        app.add_route("/today/list", journal_pages.DecisionList(page, sources))
        app.add_route("/find", journal_pages.Find(page, sources))
    nav += [("/dead-letters", "Dead letters"), ("/health", "Health"), ("/clients", "Clients")]
    home = nav[0][0]
    app.add_route("/", views.Redirect(home))
    app.add_route("/healthz", views.Alive())
    app.add_route("/login", views.Login(page, sessions, auth, limiter, cookie, home))
    app.add_route("/logout", views.Logout(sessions, cookie))
    app.add_route("/health", views.Health(page, sources))
    app.add_route("/health/refresh", views.HealthRefresh(sources))
    app.add_route("/clients", views.Clients(page, sources))
    letters = views.DeadLetters(page, sources)
    app.add_route("/dead-letters", letters)
    app.add_route("/dead-letters/replay", letters, suffix="replay")
    app.add_route("/dead-letters/purge", letters, suffix="purge")
    app.add_static_route("/static", str(STATIC))
    return app
