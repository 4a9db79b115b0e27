"""The console's pages: each reads through ``Sources`` (the functions the CLI calls) and renders a template."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import falcon

from console.app import AuthConfig, Pages, set_session_cookie
from console.auth import LoginLimiter, Sessions, User, check_password
from console.sources import Sources
from ops.dead_letters import LetterFilter, list_letters, purge_letters, replay_letters
from shared.broker.topology import STAGES

LOGIN_FORM_SECONDS = 900.0  # the anonymous session behind the login form's CSRF token


class Redirect:
    """``/``: to the first page."""

    def __init__(self, target: str) -> None:
        self._target = target

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        raise falcon.HTTPSeeOther(self._target)


class Alive:
    """``/healthz``: the process answers (for a container's health check; no login, nothing revealed)."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "ok\n"


def _form(req: falcon.Request, name: str, limit: int = 200) -> str:
    value = (req.context.get("form") or {}).get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


def _safe_next(target: str, home: str) -> str:
    """Only a path on this console: never ``//evil.example`` or an absolute URL (an open redirect)."""
    parts = urlsplit(target)
    if not target.startswith("/") or target.startswith("//") or parts.scheme or parts.netloc or "\\" in target:
        return home
    return target


def _client_address(req: falcon.Request) -> str:
    return req.remote_addr or "unknown"


class Login:
    """``/login``: a user name and password checked against the argon2 hashes; failures are rate-limited."""

    def __init__(
        self,
        page: Pages,
        sessions: Sessions,
        auth: AuthConfig,
        limiter: LoginLimiter,
        cookie: Callable[[falcon.Request], str],
        home: str,
    ) -> None:
        self._page = page
        self._sessions = sessions
        self._auth = auth
        self._limiter = limiter
        self._cookie = cookie
        self._home = home

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        target = _safe_next(req.get_param("next") or self._home, self._home)
        if req.context.user is not None:
            raise falcon.HTTPSeeOther(target)
        self._form(req, resp, target=target, error=None)

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        name, password = _form(req, "username"), req.context.form.get("password", "")
        target = _safe_next(_form(req, "next", 2000) or self._home, self._home)
        keys = (f"name:{name.lower()}", f"addr:{_client_address(req)}")
        wait = self._limiter.wait(*keys)
        if wait > 0:
            resp.status = falcon.HTTP_429
            resp.set_header("Retry-After", str(int(wait) + 1))
            error = f"Too many failed logins: try again in {int(wait) + 1} s."
            self._form(req, resp, target=target, error=error, name=name)
            return
        user = check_password(self._auth.users, name, password) if isinstance(password, str) else None
        if user is None:
            self._limiter.failed(*keys)
            resp.status = falcon.HTTP_401
            self._form(req, resp, target=target, error="Wrong user name or password.", name=name)
            return
        self._limiter.succeeded(keys[0])
        if req.context.session is not None:
            self._sessions.revoke(req.context.session)  # a fresh session id at login: no fixation
        session = self._sessions.new(user.name)
        set_session_cookie(req, resp, self._sessions, session, self._cookie(req), self._auth.public_url)
        _see_other(resp, target)

    def _form(
        self, req: falcon.Request, resp: falcon.Response, *, target: str, error: str | None, name: str = ""
    ) -> None:
        if req.context.session is None:
            session = self._sessions.new("", lifetime=LOGIN_FORM_SECONDS)
            req.context.session = session
            set_session_cookie(req, resp, self._sessions, session, self._cookie(req), self._auth.public_url)
        self._page.render(req, resp, "login.html", next=target, error=error, title="Log in", name=name)


def _see_other(resp: falcon.Response, target: str) -> None:
    # Not ``raise HTTPSeeOther``: the response carries a cookie set just now, and it must go out with the redirect.
    resp.status = falcon.HTTP_303
    resp.location = target


class Logout:
    """``POST /logout``: the session is revoked (a copied cookie stops working too) and the cookie cleared."""

    def __init__(self, sessions: Sessions, cookie: Callable[[falcon.Request], str]) -> None:
        self._sessions = sessions
        self._cookie = cookie

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.context.session is not None:
            self._sessions.revoke(req.context.session)
        resp.unset_cookie(self._cookie(req), path="/")
        _see_other(resp, "/login")


class Health:
    """``/health``: doctor's checks (refreshed in the background), the queues now, the reconciler's last run."""

    def __init__(self, page: Pages, sources: Sources) -> None:
        self._page = page
        self._sources = sources

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        snapshot = self._sources.checks.snapshot
        queues, queue_error = _attempt(self._sources.queues)
        last_run, run_error = _attempt(self._sources.last_run)
        deliveries = self._sources.deliveries.snapshot if self._sources.deliveries else None
        quota, quota_error = _attempt(self._sources.write_quota) if self._sources.write_quota else (None, None)
        self._page.render(
            req,
            resp,
            "health.html",
            deliveries=(deliveries.value or ([], deliveries.error or "")) if deliveries else ([], "not configured"),
            title="Health",
            checks=snapshot.value or [],
            checked_at=snapshot.taken_at,
            check_error=snapshot.error,
            queues=queues or [],
            queue_error=queue_error,
            last_run=last_run,
            run_error=run_error,
            quota=quota,
            quota_error=quota_error,
        )


class HealthRefresh:
    """``POST /health/refresh``: run the checks again now (any user: it changes nothing)."""

    def __init__(self, sources: Sources) -> None:
        self._sources = sources

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        self._sources.checks.refresh_now()
        if self._sources.deliveries is not None:
            self._sources.deliveries.refresh_now()
        raise falcon.HTTPSeeOther("/health")


class Clients:
    """``/clients``: the rules in force, with each room DocSpace refuses flagged (doctor, reconciler)."""

    def __init__(self, page: Pages, sources: Sources) -> None:
        self._page = page
        self._sources = sources

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        rules, rules_check = self._sources.rules()
        snapshot = self._sources.checks.snapshot
        problems: dict[str, list[str]] = {}
        for check in snapshot.value or []:
            kind, _, name = check.component.partition(" ")
            if kind in {"room", "incoming"} and check.status == "fail":
                problems.setdefault(name, []).append(f"{kind}: {check.detail}")
        last_run, _error = _attempt(self._sources.last_run)
        refused = [
            f
            for f in (last_run or {}).get("findings") or []
            if isinstance(f, dict) and f.get("kind") == "room" and f.get("ref")
        ]
        for finding in refused:
            for client in rules.clients if rules else []:
                if str(finding.get("ref")) == client.room_id:
                    problems.setdefault(client.name, []).append(f"reconciler: {finding.get('detail', 'refused')}")
        self._page.render(
            req,
            resp,
            "clients.html",
            title="Clients",
            rules=rules,
            rules_check=rules_check,
            problems=problems,
            checked_at=snapshot.taken_at,
        )


class DeadLetters:
    """``/dead-letters``: by stage and reason; replay one or by filter (after a count), purge with a typed word."""

    def __init__(self, page: Pages, sources: Sources) -> None:
        self._page = page
        self._sources = sources

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        stages, reason = _stages(req.get_param("stage")), _reason(req.get_param("reason"))
        letters, error = _attempt(lambda: list_letters(self._sources.sweep(), stages, LetterFilter(reason=reason)))
        letters = letters or []
        groups = Counter((d.stage, d.reason) for d in letters)
        self._page.render(
            req,
            resp,
            "dead_letters.html",
            title="Dead letters",
            letters=letters[:500],
            total=len(letters),
            groups=sorted(groups.items(), key=lambda item: (-item[1], item[0])),
            stage=req.get_param("stage") or "",
            reason=reason or "",
            stages=STAGES,
            error=error,
        )

    def on_get_replay(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The dry run: how many would be replayed, and a form to confirm exactly that many."""
        _operator(req)
        stage, reason = req.get_param("stage") or "", _reason(req.get_param("reason"))
        chosen = replay_letters(self._sources.sweep(), _stages(stage), LetterFilter(reason=reason), dry_run=True)
        self._page.render(
            req, resp, "replay_confirm.html", title="Replay dead letters", count=len(chosen), stage=stage,
            reason=reason or "", letters=chosen[:50],
        )  # fmt: skip

    def on_post_replay(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = _operator(req)
        stage, reason, ident = _form(req, "stage"), _reason(_form(req, "reason")), _form(req, "id", 64)
        if ident:
            letter_filter, limit = LetterFilter(ident=ident), 1
        else:
            letter_filter, limit = LetterFilter(reason=reason), _count(_form(req, "count"))
        replayed = replay_letters(self._sources.sweep(), _stages(stage), letter_filter, limit=limit)
        details: dict[str, Any] = {
            "stage": stage or "all",
            "reason": reason,
            "id": ident or None,
            "confirmed": None if ident else limit,
            "count": len(replayed),
            "ids": [d.id for d in replayed][:100],
        }
        journaled = self._sources.audit(user.name, "replay", details, replayed)
        self._page.render(
            req, resp, "done.html", title="Replayed", action="replay", count=len(replayed), letters=replayed,
            journaled=journaled,
        )  # fmt: skip

    def on_get_purge(self, req: falcon.Request, resp: falcon.Response) -> None:
        _operator(req)
        stage = _one_stage(req.get_param("stage"))
        count = self._sources.dead_letters.depth(stage)
        self._page.render(req, resp, "purge_confirm.html", title="Purge dead letters", stage=stage, count=count)

    def on_post_purge(self, req: falcon.Request, resp: falcon.Response) -> None:
        user = _operator(req)
        stage = _one_stage(_form(req, "stage"))
        if _form(req, "confirm") != stage:
            raise falcon.HTTPBadRequest(
                title="not confirmed", description=f"type the stage name, {stage}, to purge its dead letters"
            )
        count = _count(_form(req, "count"))
        with self._sources.sweep_lock:
            removed = purge_letters(self._sources.dead_letters, {stage: count}).get(stage, 0)
        journaled = self._sources.audit(user.name, "purge", {"stage": stage, "confirmed": count, "count": removed})
        self._page.render(
            req, resp, "done.html", title="Purged", action="purge", count=removed, letters=[], journaled=journaled
        )


def _operator(req: falcon.Request) -> User:
    user: User | None = req.context.user
    if user is None or not user.is_operator:
        raise falcon.HTTPForbidden(
            title="operators only", description="replaying and purging need the operator role; you are a viewer"
        )
    return user


def _stages(stage: str | None) -> list[str]:
    if not stage:
        return list(STAGES)
    return [_one_stage(stage)]


def _one_stage(stage: str | None) -> str:
    if stage not in STAGES:
        raise falcon.HTTPBadRequest(title="unknown stage", description=f"stages are {', '.join(STAGES)}")
    return stage


def _reason(reason: str | None) -> str | None:
    return reason.strip()[:100] or None if reason else None


def _count(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise falcon.HTTPBadRequest(title="no count", description="confirm the number shown by the dry run")
    return int(value)


def _attempt(read: Callable[[], Any]) -> tuple[Any, str | None]:
    """A read that may fail (the broker or the store is away): its value, or None and why, for the page to show."""
    try:
        return read(), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"[:300]
