"""An adapter's edge: a method decorator that turns its driver's exceptions into the port's own failure."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def reraise_as(
    errors: type[Exception] | tuple[type[Exception], ...],
    failure: Callable[[Exception], Exception],
    before: Callable[[Any], None] | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A decorator: ``errors`` raised by the method leave as ``failure(exc)``, chained to the original.

    ``before(self)`` runs first, e.g. to drop a connection the failure has broken.
    """

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(*args, **kwargs)
            except errors as exc:
                if before is not None:
                    before(args[0])
                raise failure(exc) from exc

        return guarded

    return decorate
