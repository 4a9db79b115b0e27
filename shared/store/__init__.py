"""Idempotency and checkpoint ports, and their SQLite and Redis adapters."""
