"""PostgreSQL's title search asks its trigram index for the fragment's rarest word and still finds exactly what
the fragment matches; a journal made before the trigram statistics gains them when a store opens it."""

from __future__ import annotations

import psycopg
from psycopg import sql

from shared.journal.postgres_store import PostgresJournalStore, rarest_word
from tests.support.journal_support import decision, new_schema, postgres_url


def test_a_fragment_of_common_and_rare_words_finds_exactly_its_titles_by_the_rare_word() -> None:
    url, schema = postgres_url(), new_schema()
    store = PostgresJournalStore(url, schema=schema)
    try:
        # 400 titles share "invoice", "2026" and "pdf"; the digits tell them apart.
        store.insert(
            [
                decision("ingress", "accepted", minutes=n, file_id=str(n), title=f"Invoice-2026-{n:04d}.pdf")
                for n in range(400)
            ]
        )
        store.insert([decision("ingress", "accepted", minutes=500, file_id="x", title="invoice_2026-0042 copy.PDF")])
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("ANALYZE {}.files").format(sql.Identifier(schema)))
            listed = conn.execute(
                "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats_ext_exprs"
                " WHERE statistics_schemaname = %s AND statistics_name = 'files_title_trigrams'",
                (schema,),
            ).fetchone()
        assert store.trigram_statistics and listed is not None
        assert rarest_word("2026-0042", dict(zip(*listed, strict=False))) == "0042"  # what the search asks for
        assert [m.file_id for m in store.find("2026-0042")] == ["x", "42"]  # newest first
        assert [m.file_id for m in store.find("INVOICE-2026-0042.pdf")] == ["42"]
        assert [m.file_id for m in store.find("26-004")] == ["x", *(str(n) for n in range(49, 39, -1))][:20]
        assert len(store.find("invoice")) == 20  # no rare word: the newest twenty, by the plain search
        assert store.find("2026-0042.jpg") == []
    finally:
        store.drop()
        store.close()


def test_a_journal_without_the_trigram_statistics_gains_them_when_opened() -> None:
    url = postgres_url()
    schema = new_schema()
    PostgresJournalStore(url, schema=schema).close()
    with psycopg.connect(url, autocommit=True) as conn:  # as a journal made before them looks
        conn.execute(sql.SQL("DROP STATISTICS {}.files_title_trigrams").format(sql.Identifier(schema)))
    store = PostgresJournalStore(url, schema=schema)
    try:
        named = "SELECT count(*) FROM pg_statistic_ext WHERE stxnamespace = %s::regnamespace AND stxname = %s"
        with psycopg.connect(url) as conn:
            assert conn.execute(named, (schema, "files_title_trigrams")).fetchone() == (1,)
        assert store.trigram_statistics
    finally:
        store.drop()
        store.close()
