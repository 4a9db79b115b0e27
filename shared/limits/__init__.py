"""Keeping under DocSpace's limits: the rate limiter, its Redis twin, Retry-After."""
