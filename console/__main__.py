"""Composition root of the operator console: ``python -m console`` serves it; ``add-user`` writes a login.

Without ``CONSOLE_USERS_FILE`` or ``CONSOLE_AUTH_PROXY_HEADER`` the console listens on loopback only and prints a
one-time operator login for this run on stderr (never into the log).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import getpass
import secrets
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import structlog
import waitress.server
from pydantic import ValidationError

from console.app import AuthConfig, create_app
from console.auth import ROLES, LoginLimiter, Sessions, User, UsersFileError, hash_password, read_users, user_line
from console.refresh import Cached, Refreshing
from console.settings import ConsoleSettings
from console.sources import Audit, Sources
from consumers.classifier.settings import ClassifierSettings
from consumers.reconciler.settings import ReconcilerSettings
from ops.broker_access import broker_parameters, topology
from ops.checkup import (
    WriteQuota,
    configured_rules,
    reconciler_last_run,
    run_checks,
    settings_or_problem,
    webhook_deliveries,
    write_quota,
)
from ops.dead_letters import DeadLetterQueues
from ops.doctor import Check
from ops.queues import stage_queues
from ops.today import Arrivals, Today, arrivals, today, window
from shared.broker.publisher import Publisher
from shared.broker.topology import Topology
from shared.config.settings import DocSpaceSettings, explain
from shared.core.outgoing import OutgoingMessage
from shared.core.rules import Rules
from shared.journal.broker import RECORD_TYPE
from shared.journal.record import Decision
from shared.journal.store import JournalStore, JournalUnavailable
from shared.journal.wiring import journal_store
from shared.runtime.exit_codes import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from shared.runtime.runner import ConfigError, Runtime, run_process
from shared.runtime.wiring import shared_rate_limiter

log = structlog.get_logger("console")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    add = commands.add_parser("add-user", help="add a user (or change a password) in the users file")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, default="viewer")
    add.add_argument("--file", type=Path, help="the users file (default: CONSOLE_USERS_FILE)")
    args = parser.parse_args(argv)
    if args.command == "add-user":
        try:
            users_file = args.file or ConsoleSettings().console_users_file
        except ValidationError as exc:
            print(f"console: invalid configuration:\n{explain(exc)}", file=sys.stderr)
            return EXIT_CONFIG
        return add_user(args.name, args.role, users_file)
    bound_malloc()  # before any thread starts
    return run_process("console", _settings, _serve)


def _settings() -> ConsoleSettings:
    settings = ConsoleSettings()
    problem = settings.listen_problem()
    if problem:
        raise ConfigError(problem)
    return settings


def add_user(name: str, role: str, path: Path | None) -> int:
    if path is None:
        print("console: name the users file with --file or CONSOLE_USERS_FILE", file=sys.stderr)
        return EXIT_CONFIG
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {name}: ")
        if password != getpass.getpass("again: "):
            print("console: the two passwords differ", file=sys.stderr)
            return EXIT_CONFIG
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 12:
        print("console: a password needs at least 12 characters", file=sys.stderr)
        return EXIT_CONFIG
    line = user_line(name, role, password)  # type: ignore[arg-type]  # argparse choices are ROLES
    existing = path.read_text("utf-8").splitlines() if path.exists() else []
    kept = [ln for ln in existing if ln.split(":", 1)[0] != name]
    path.write_text("\n".join([*kept, line]) + "\n", "utf-8")
    path.chmod(0o600)
    print(f"console: {name} ({role}) written to {path}", file=sys.stderr)
    return 0


def _stop_serving() -> None:
    raise KeyboardInterrupt  # waitress closes its server on this and returns from run()


# glibc's mallopt parameters (malloc.h): M_MMAP_THRESHOLD and M_ARENA_MAX.
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8


def bound_malloc() -> None:
    """Keep the console's memory near what it uses (measured: 99 MiB without this, 73 MiB with it).

    glibc gives every thread that allocates an arena of its own (waitress's threads, the refreshers, the publisher)
    and, once a large block (argon2's 19 MiB) is freed, raises its mmap threshold so that the next ones stay in an
    arena for good. Two arenas and a fixed threshold return such blocks to the system. Not glibc: nothing to do.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
        libc.mallopt(_M_ARENA_MAX, 2)
    except (OSError, AttributeError):
        return


def _serve(runtime: Runtime, settings: ConsoleSettings) -> int:
    try:
        users = read_users(settings.console_users_file) if settings.console_users_file else {}
    except UsersFileError as exc:
        raise ConfigError(str(exc)) from exc
    if not settings.has_credentials():
        password = secrets.token_urlsafe(12)
        users = {"admin": User("admin", "operator", hash_password(password))}
        url = f"http://{settings.console_host}:{settings.console_port}/"
        print(f"console: one-time login for this run at {url}: admin / {password}", file=sys.stderr, flush=True)
    key = (
        settings.console_session_secret.get_secret_value().encode()
        if settings.console_session_secret
        else secrets.token_bytes(32)
    )
    try:
        journal = runtime.closing(journal_store(settings))
        # A second connection for the background counts: a store serialises its callers on one connection, and a
        # page must not wait behind a count that reads a whole day of decisions.
        background = runtime.closing(journal_store(settings))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    except JournalUnavailable as exc:
        log.critical("journal_store_unavailable", error=str(exc)[:300])  # restarted until the journal answers
        return EXIT_FAILED
    publisher = Publisher(broker_parameters(settings, name="console"), topology=topology(settings)).start()
    runtime.on_exit(publisher.stop)
    sources = build_sources(settings, publisher, journal)
    sources.arrivals = Refreshing("arrivals", lambda: arrivals_today(background), ARRIVALS_INTERVAL)
    sources.counted_windows = {
        name: Refreshing(f"today-{name}", functools.partial(window_today, background, name), ARRIVALS_INTERVAL)
        for name in BACKGROUND_WINDOWS
    }
    app = create_app(
        sources,
        auth=AuthConfig(
            users=users,
            proxy_header=settings.console_auth_proxy_header,
            proxy_addresses=frozenset(settings.console_auth_proxy_addresses),
            operators=frozenset(settings.console_operators),
            public_url=settings.console_public_url,
        ),
        sessions=Sessions(key, lifetime=settings.console_session_minutes * 60),
        limiter=LoginLimiter(settings.console_login_attempts, settings.console_login_window_seconds),
    )
    server = waitress.server.create_server(
        app, host=settings.console_host, port=settings.console_port, threads=4, ident="console"
    )
    for refreshing in (sources.checks, sources.deliveries, sources.arrivals, *sources.counted_windows.values()):
        if refreshing is not None:
            refreshing.start()
            runtime.on_exit(refreshing.stop)
    runtime.on_stop(_stop_serving)
    log.info("console_listening", host=settings.console_host, port=settings.console_port, users=len(users))
    with contextlib.suppress(KeyboardInterrupt):  # how a stop signal ends waitress's loop (_stop_serving)
        server.run()
    return EXIT_OK


ARRIVALS_INTERVAL = 30.0  # seconds between two background counts (per client today, the 7-day window)
BACKGROUND_WINDOWS = ("7d",)


def arrivals_today(store: JournalStore) -> Arrivals:
    """``invoice-pipeline today``'s per-client table for today (since midnight UTC), as the page shows it."""
    since, until, _name = window("today", datetime.now(UTC))
    return arrivals(store, since, until)


def window_today(store: JournalStore, name: str) -> Today:
    """The Today numbers of the window ``name`` ending now, as ``invoice-pipeline today --window NAME`` prints them."""
    since, until, _name = window(name, datetime.now(UTC))
    return today(store, since, until)


def journal_publisher(publisher: Publisher, names: Topology) -> Callable[[Decision], None]:
    """An operator's action to the journal's exchange, confirmed before the page says it is recorded."""

    def publish(decision: Decision) -> None:
        publisher.publish_and_wait(
            OutgoingMessage(
                exchange=names.journal_exchange,
                routing_key=decision.stage,
                body=decision.to_bytes(),
                message_id=decision.decision_id,
                type=RECORD_TYPE,
                timestamp=int(decision.at.timestamp()),
            ),
            timeout=10.0,
        )

    return publish


def build_sources(settings: ConsoleSettings, publisher: Publisher, journal: JournalStore) -> Sources:
    params, names = broker_parameters(settings, name="console"), topology(settings)
    docspace, _ = settings_or_problem(DocSpaceSettings)
    return Sources(
        checks=Refreshing("checks", lambda: list(run_checks()), settings.console_health_interval),
        deliveries=Refreshing("deliveries", webhook_deliveries, settings.console_health_interval),
        # Two seconds old at most: the queues' depths as "now" as a person reads them, at one broker visit.
        queues=Cached(lambda: stage_queues(params, names), 2.0),
        last_run=_last_run,
        rules=_rules,
        dead_letters=DeadLetterQueues(params, names),
        audit=Audit(journal_publisher(publisher, names)),
        journal=journal,
        docspace_url=docspace.docspace_api_host if docspace else None,
        write_quota=_write_quota(docspace),
    )


def _write_quota(docspace: DocSpaceSettings | None) -> Callable[[], WriteQuota] | None:
    if docspace is None:
        return None
    # One Redis client for the console's life; two seconds at most, so a Redis that hangs cannot hold a page long.
    shared = shared_rate_limiter(docspace, timeout=2.0)
    return lambda: write_quota(docspace, shared)


def _last_run() -> dict[str, object] | None:
    settings, error = settings_or_problem(ReconcilerSettings)
    if settings is None:
        raise ValueError(error)
    return reconciler_last_run(settings)


def _rules() -> tuple[Rules | None, Check]:
    settings, error = settings_or_problem(ClassifierSettings)
    if settings is None:
        return None, Check("rules", "fail", error, "fix the classifier settings")
    return configured_rules(settings)


if __name__ == "__main__":
    sys.exit(main())
