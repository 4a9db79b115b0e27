"""A DocSpace simulator that speaks the wire contract over real HTTP, for tests and the demo."""

from simulator.server import DEFAULT_API_KEY, DocSpaceSimulator

__all__ = ["DEFAULT_API_KEY", "DocSpaceSimulator"]
