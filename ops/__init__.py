"""Operator tooling: the supervisor behind ``make run``, the demo, and the ``invoice-pipeline`` command."""
