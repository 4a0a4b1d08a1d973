"""restlake.postgres.bronze_keys, the bronze key ledger, against the stack's real Postgres."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from restlake.postgres import bronze_keys as ledger

pytestmark = pytest.mark.integration


@pytest.fixture
def table() -> str:
    """A Delta table id of the test's own."""
    return uuid.uuid4().hex


def key(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()


def test_a_key_is_fresh_once_then_only_for_its_own_batch(dsn: str, table: str) -> None:
    a, b = key("a"), key("b")
    first = ledger.claim(dsn, table_id=table, query_id="q1", batch_id=0, keys=[a, b, a])
    assert (first.fresh, first.unconfirmed, first.retried) == ({a, b}, frozenset(), frozenset())
    # The same batch again (a replay after a crash before its confirmation): still its keys, marked
    # as claimed before, since its append may have committed and only bronze can say.
    again = ledger.claim(dsn, table_id=table, query_id="q1", batch_id=0, keys=[a, b])
    assert (again.fresh, again.unconfirmed, again.retried) == ({a, b}, frozenset(), {a, b})
    ledger.confirm(dsn, table_id=table, query_id="q1", batch_id=0)
    # After its confirmation, a replay of that batch has nothing left to write.
    done = ledger.claim(dsn, table_id=table, query_id="q1", batch_id=0, keys=[a, b])
    assert (done.committed, done.fresh) == (True, frozenset())
    c = key("c")
    later = ledger.claim(dsn, table_id=table, query_id="q1", batch_id=1, keys=[a, c])
    assert (later.fresh, later.unconfirmed, later.retried) == ({c}, frozenset(), frozenset())
    # Another table knows none of them.
    other = ledger.claim(dsn, table_id=uuid.uuid4().hex, query_id="q1", batch_id=1, keys=[a])
    assert other.fresh == {a}


def test_claims_of_a_batch_that_never_confirmed_are_unconfirmed_until_settled(dsn: str, table: str) -> None:
    written, lost = key("written"), key("lost")
    ledger.claim(dsn, table_id=table, query_id="dead", batch_id=4, keys=[written, lost])
    # A new checkpoint (new query id) meets the dead query's claims: they may or may not be in bronze.
    claim = ledger.claim(dsn, table_id=table, query_id="q2", batch_id=0, keys=[written, lost])
    assert (claim.fresh, claim.unconfirmed) == (frozenset(), {written, lost})
    ledger.settle(dsn, table_id=table, query_id="q2", batch_id=0, present=[written], absent=[lost])
    # lost now belongs to q2's batch 0, which appends it; written belongs to the table.
    replay = ledger.claim(dsn, table_id=table, query_id="q2", batch_id=0, keys=[written, lost])
    assert (replay.fresh, replay.unconfirmed) == ({lost}, frozenset())
    ledger.confirm(dsn, table_id=table, query_id="q2", batch_id=0)
    third = ledger.claim(dsn, table_id=table, query_id="q3", batch_id=0, keys=[written, lost])
    assert (third.fresh, third.unconfirmed) == (frozenset(), frozenset())


def test_seed_copies_existing_keys_once_per_table_and_source(dsn: str, table: str) -> None:
    old = [key(f"old-{i}") for i in range(1000)]
    assert not ledger.is_seeded(dsn, table_id=table, source="s")
    assert ledger.seed(dsn, table_id=table, source="s", keys=iter(old + old[:10])) == 1000
    assert ledger.is_seeded(dsn, table_id=table, source="s")
    assert not ledger.is_seeded(dsn, table_id=table, source="t")
    new = key("new")
    claim = ledger.claim(dsn, table_id=table, query_id="q", batch_id=0, keys=[*old[:5], new])
    assert (claim.fresh, claim.unconfirmed) == ({new}, frozenset())


def test_an_empty_batch_claims_nothing_without_connecting(table: str) -> None:
    claim = ledger.claim(
        "postgresql://nobody@127.0.0.1:1/none", table_id=table, query_id="q", batch_id=0, keys=[]
    )
    assert (claim.fresh, claim.unconfirmed) == (frozenset(), frozenset())
