"""No production function takes more than 8 parameters; today's offenders are listed, and the list may only shrink.

A function with a dozen parameters is a context object waiting to be named (issue 19 cuts the reconciler by data).
An offender listed below may not gain a parameter; one that gets down to 8 must leave the list, so it shrinks.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("shared", "consumers", "ingress", "ops")
MAX_PARAMETERS = 8
# module:qualified name -> its parameter count today (``self`` and ``cls`` not counted).
ALLOWED = {
    "consumers.reconciler.handler:_cycle": 12,
    "consumers.reconciler.handler:reconcile": 12,
    "consumers.reconciler.recovery:recover_failed_deliveries": 13,
    "consumers.reconciler.scan:_consider": 9,
    "consumers.reconciler.scan:_scan_room": 14,
    "consumers.reconciler.scan:scan_rooms": 15,
    "ingress.app:create_app": 10,
    # A Typer command's parameters are its options (Typer has no option groups): filters, dry run, rate, actor.
    "ops.cli_dlq:replay": 10,
    "shared.docspace.client:DocSpaceClient.__init__": 13,
    "shared.docspace.transport:DocSpaceTransport.__init__": 9,
    "shared.limits.rate_limit:RateLimiter.__init__": 10,
    "shared.limits.redis_limiter:RedisRateLimiter.__init__": 12,
}


def _functions(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + child.name, child
            yield from _functions(child, f"{prefix}{child.name}.")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, f"{prefix}{child.name}.")
        else:
            yield from _functions(child, prefix)


def _count(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = function.args
    named = [*args.posonlyargs, *args.args, *args.kwonlyargs, *filter(None, (args.vararg, args.kwarg))]
    return sum(1 for arg in named if arg.arg not in ("self", "cls"))


def parameter_counts() -> dict[str, int]:
    counts = {}
    for top in PRODUCTION:
        for path in sorted((ROOT / top).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for name, function in _functions(ast.parse(path.read_text("utf-8")), ""):
                counts[f"{module}:{name}"] = _count(function)
    return counts


def test_no_function_takes_more_than_eight_parameters_but_the_listed_ones() -> None:
    counts = parameter_counts()
    new = {name: n for name, n in counts.items() if n > MAX_PARAMETERS and name not in ALLOWED}
    assert new == {}, f"more than {MAX_PARAMETERS} parameters: {new}; pass a frozen dataclass of what belongs together"


def test_a_listed_offender_never_gains_a_parameter() -> None:
    counts = parameter_counts()
    grown = {name: counts[name] for name, allowed in ALLOWED.items() if counts.get(name, 0) > allowed}
    assert grown == {}, f"listed offenders that grew: {grown}"


def test_the_list_only_shrinks() -> None:
    counts = parameter_counts()
    cured = sorted(name for name in ALLOWED if counts.get(name, 0) <= MAX_PARAMETERS)
    assert cured == [], f"now within {MAX_PARAMETERS} parameters (or gone): remove {cured} from ALLOWED"
