"""A private virtual host with the pipeline's least-privilege users, made by deploy/rabbitmq/users.sh itself."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest

from shared.broker.permissions import KINDS
from shared.broker.topology import Topology
from tests.support.real_broker import BrokerKit

ROOT = Path(__file__).resolve().parents[2]
USERS_SCRIPT = ROOT / "deploy" / "rabbitmq" / "users.sh"


@dataclass(frozen=True)
class BrokerUsers:
    """The vhost, its administrator's kit (topology without prefix: the vhost is the test's own) and each user."""

    admin: BrokerKit
    urls: dict[str, str]  # process kind -> AMQP URL of its own user

    def kit(self, kind: str) -> BrokerKit:
        return BrokerKit(self.urls[kind], self.admin.topology)


def _ctl(*args: str, stdin: str | None = None) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], input=stdin, text=True, check=True, capture_output=True, timeout=60)


@contextmanager
def broker_users(amqp_url: str, topology: Topology) -> Iterator[BrokerUsers]:
    """A fresh vhost, an administrator declaring ``topology`` there with ``invoice-pipeline topology``, users.sh.

    Everything made is deleted afterwards; the default vhost and its users are never touched.
    """
    if shutil.which("rabbitmqctl") is None:
        reason = "needs rabbitmqctl on the broker's host to create a private vhost and users"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    tag = "bu" + secrets.token_hex(4)
    vhost, admin = tag, f"{tag}-admin"
    host = urlsplit(amqp_url.split(",")[0]).netloc.rsplit("@", 1)[-1]
    passwords = {kind: secrets.token_hex(16) for kind in KINDS}
    admin_password = secrets.token_hex(16)
    _ctl("add_vhost", vhost)
    try:
        _ctl("add_user", admin, stdin=admin_password)
        _ctl("set_permissions", "-p", vhost, admin, ".*", ".*", ".*")
        admin_url = f"amqp://{admin}:{admin_password}@{host}/{quote(vhost, safe='')}"
        env = {
            **os.environ,
            "AMQP_URL": admin_url,
            "TOPOLOGY_PREFIX": topology.prefix,
            "RETRY_DELAYS": ",".join(str(d) for d in topology.retry_delays),
            "DELIVERY_LIMIT": str(topology.delivery_limit),
        }
        cli = [sys.executable, "-c", "import sys; from ops.cli import main; sys.exit(main())", "topology"]
        subprocess.run(cli, env=env, cwd=ROOT, check=True, capture_output=True, timeout=60)
        script_env = {
            **os.environ,
            "RABBITMQ_VHOST": vhost,
            "RABBITMQ_USER_PREFIX": f"{tag}-",
            **{f"RABBITMQ_{kind.upper()}_PASSWORD": password for kind, password in passwords.items()},
        }
        subprocess.run(["sh", str(USERS_SCRIPT)], env=script_env, check=True, capture_output=True, timeout=120)
        urls = {
            kind: f"amqp://{tag}-{kind}:{password}@{host}/{quote(vhost, safe='')}"
            for kind, password in passwords.items()
        }
        yield BrokerUsers(BrokerKit(admin_url, topology), urls)
    finally:
        _ctl("delete_vhost", vhost)
        for user in (admin, *(f"{tag}-{kind}" for kind in KINDS)):
            subprocess.run(["rabbitmqctl", "-q", "delete_user", user], capture_output=True, timeout=60, check=False)
