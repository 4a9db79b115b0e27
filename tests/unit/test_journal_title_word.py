"""Which word of a title fragment PostgreSQL's trigram index is asked for: the one the fewest titles share."""

from __future__ import annotations

from shared.journal.postgres_store import rarest_word

# Trigram frequencies as PostgreSQL's statistics list them: what most titles share.
COMMON = {"inv": 1.0, "nvo": 1.0, "voi": 1.0, "oic": 1.0, "ice": 1.0, "202": 1.0, "026": 1.0, "pdf": 1.0, "012": 0.01}


def test_the_word_whose_trigrams_are_rarest_is_asked_for() -> None:
    assert rarest_word("Invoice-2026-0123456.pdf", COMMON) == "0123456"
    assert rarest_word("2026-0123456", COMMON) == "0123456"


def test_words_shorter_than_a_trigram_are_never_asked_for() -> None:
    assert rarest_word("2026-42", COMMON) is None


def test_a_fragment_of_common_words_only_takes_the_plain_search() -> None:
    assert rarest_word("Invoice-2026", COMMON) is None


def test_a_fragment_that_is_one_word_takes_the_plain_search() -> None:
    assert rarest_word("0123456", COMMON) is None
    assert rarest_word("ACME", {}) is None


def test_of_two_rare_words_the_longer_narrows_more() -> None:
    assert rarest_word("acme march", {}) == "march"
