"""The code before a change, checked out for one bench run: a temporary git worktree, removed afterwards."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The last commit before issue 22's changes (two DocSpace calls per invoice): its classifier reads each file.
BEFORE_CALLS = "6b2dc9c"
_SHARES = (
    "from consumers.classifier.settings import ClassifierSettings as C\n"
    "from consumers.mover.settings import MoverSettings as M\n"
    "f = 'docspace_rate_limit_per_minute'\n"
    "print(C.model_fields[f].default, M.model_fields[f].default)"
)


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def _python_in(tree: Path, code: str, failure: str) -> str:
    """What ``python -c code`` prints when run in ``tree`` with this interpreter; ``failure`` says what did not work."""
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{failure}: {done.stderr.strip()[-500:]}")
    return done.stdout


def imported_from(tree: Path, module: str) -> Path:
    """Where ``python -m`` started in ``tree`` finds ``module``, with this interpreter (and its installed packages)."""
    printed = _python_in(tree, f"import {module} as m; print(m.__file__)", f"{module} does not import in {tree}")
    return Path(printed.strip()).resolve()


def default_shares(tree: Path) -> tuple[int, int]:
    """The (classifier, mover) requests a minute that the code in ``tree`` gives each process by default."""
    classifier, mover = (int(word) for word in _python_in(tree, _SHARES, f"no default shares in {tree}").split())
    return classifier, mover


@contextmanager
def worktree(commit: str, repo: Path | None = None) -> Iterator[Path]:
    """A detached checkout of ``commit`` under the temporary directory, registered as a worktree and removed afterwards.

    Its processes are started with this interpreter and ``cwd`` set to it, so ``python -m consumers.classifier``
    runs that commit's code; this is checked before it is used, since an installed copy of the project that won
    the import would silently bench the current code twice.
    """
    repo = (repo or Path.cwd()).resolve()
    full = _git(repo, "rev-parse", "--verify", f"{commit}^{{commit}}")
    parent = Path(tempfile.mkdtemp(prefix=f"bench-{commit[:7]}-")).resolve()
    path = parent / "tree"
    try:
        _git(repo, "worktree", "add", "--detach", str(path), full)
        where = imported_from(path, "consumers.classifier")
        if not where.is_relative_to(path):
            raise RuntimeError(f"consumers.classifier imports from {where}, not from the checkout {path}")
        yield path
    finally:
        # Only this checkout is removed (never ``git worktree prune``: the repository's other worktrees are not ours).
        if path.exists():
            # A checkout git never registered (``add`` failed halfway) is just a directory: rmtree below.
            with contextlib.suppress(RuntimeError):
                _git(repo, "worktree", "remove", "--force", str(path))
        shutil.rmtree(parent, ignore_errors=True)
