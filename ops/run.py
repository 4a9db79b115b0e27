"""``make run``: the whole pipeline on the local broker, supervised; a self-contained demo when no portal is set.

Without ``DOCSPACE_API_HOST`` it runs the demo (``standins/demo.py``, in the source tree only). With
``DOCSPACE_API_HOST`` (and the other settings, see README) the same command serves a real portal.
"""

from __future__ import annotations

import os
import sys

from ops.console import echo, say
from ops.supervisor import ChildSpec, Supervisor, pipeline_children, python_module, supervise
from shared.config.redact import safe_url


def main() -> int:
    if os.environ.get("DOCSPACE_API_HOST"):
        return serve_real_portal()
    # Imported here: the demo needs the simulator and the stand-ins, which the production image does not have.
    from standins.demo import run_demo

    return run_demo()


def serve_real_portal() -> int:
    portal = safe_url(os.environ["DOCSPACE_API_HOST"])
    console = f"http://127.0.0.1:{os.environ.get('CONSOLE_PORT', '8088')}/"
    say(
        f"Serving {portal}: ingress on port {os.environ.get('PORT', '3000')}, operator console {console}. Ctrl-C stops."
    )
    # Without CONSOLE_USERS_FILE the console prints a login for this run (its first line below).
    children = [*pipeline_children(), ChildSpec("console", python_module("console"))]
    supervisor = Supervisor(children, on_line=echo).start()
    return supervise(supervisor)


if __name__ == "__main__":
    sys.exit(main())
