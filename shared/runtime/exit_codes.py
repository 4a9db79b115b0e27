"""The exit codes every process and the CLI share, and which of them a restart cannot fix."""

from __future__ import annotations

EXIT_OK = 0
# A thread the process cannot work without died, a consumer crashed, a CLI command met a problem: restart or retry.
EXIT_FAILED = 1
# The settings are wrong: the same start fails the same way until someone changes them.
EXIT_CONFIG = 2
# The broker holds a queue or exchange with other arguments: a deployment bug (docs/architecture.md).
EXIT_TOPOLOGY = 3

# What a supervisor must not restart: it would only fail again, and hide the line that says why.
RESTART_CANNOT_HELP = frozenset({EXIT_CONFIG, EXIT_TOPOLOGY})
