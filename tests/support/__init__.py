"""Helpers and fixtures the tests share: the real broker, fakes, builders, contracts, processes."""
