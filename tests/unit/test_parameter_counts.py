"""No production function takes more than 8 parameters.

A function with a dozen parameters is a context object waiting to be named: issue 19 cut the reconciler by data
(one frozen ``Cycle``) and grouped what belongs together elsewhere (``KeyLimits``, ``HttpOptions``,
``EndpointLimits``), so there is no list of exceptions any more.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("shared", "consumers", "ingress", "ops")
MAX_PARAMETERS = 8


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
    """``module:qualified name`` -> its parameter count (``self`` and ``cls`` not counted)."""
    counts = {}
    for top in PRODUCTION:
        for path in sorted((ROOT / top).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for name, function in _functions(ast.parse(path.read_text("utf-8")), ""):
                counts[f"{module}:{name}"] = _count(function)
    return counts


def test_no_function_takes_more_than_eight_parameters() -> None:
    counts = parameter_counts()
    assert counts, "no production function found: the walk is broken"
    over = {name: n for name, n in counts.items() if n > MAX_PARAMETERS}
    assert over == {}, (
        f"more than {MAX_PARAMETERS} parameters: {over}; pass a frozen dataclass of what belongs together"
    )
