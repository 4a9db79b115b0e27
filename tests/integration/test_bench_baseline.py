"""The bench's checkout of older code: it runs that code, with that code's defaults, and leaves nothing behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bench.baseline import BEFORE_CALLS, default_shares, imported_from, worktree

REPO = Path(__file__).resolve().parents[2]


def _registered(path: Path) -> bool:
    listing = subprocess.run(
        ["git", "-C", str(REPO), "worktree", "list", "--porcelain"], capture_output=True, text=True, check=True
    ).stdout
    return f"worktree {path}" in listing


def test_the_old_commit_is_checked_out_imported_from_there_and_removed_afterwards() -> None:
    with worktree(BEFORE_CALLS, REPO) as tree:
        head = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True)
        assert head.stdout.startswith(BEFORE_CALLS)
        assert imported_from(tree, "consumers.mover").is_relative_to(tree)
        assert _registered(tree)
        # Its own defaults, not this checkout's: the key split before issue 22.
        assert default_shares(tree) == (480, 940)
    assert not tree.exists()
    assert not tree.parent.exists()
    assert not _registered(tree)


def test_a_failure_inside_still_removes_the_checkout() -> None:
    with pytest.raises(RuntimeError, match="bench died"), worktree("HEAD", REPO) as tree:
        raise RuntimeError("bench died")
    assert not tree.parent.exists()
    assert not _registered(tree)


def test_an_unknown_commit_is_refused_before_anything_is_made() -> None:
    with pytest.raises(RuntimeError, match="rev-parse"), worktree("0" * 40, REPO):
        pass


def test_this_checkout_gives_the_classifier_a_small_share_and_the_mover_the_rest() -> None:
    assert default_shares(REPO) == (60, 1360)
