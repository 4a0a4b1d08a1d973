"""The bronze key ledger (``raw.bronze_keys``): which idempotency keys a bronze Delta table holds.

Bronze keeps one row per record version. A micro-batch used to learn which of its keys were new
by an anti-join against the source's whole bronze history, so every batch got slower as the table
grew. Here it asks Postgres instead, one index probe per key of the batch.

The protocol, per micro-batch ``(query_id, batch_id)`` of a stream query writing table ``table_id``:

1. ``claim``: insert the batch's keys; the ones inserted now, plus the ones this same batch
   claimed on an earlier attempt, are *fresh*: this batch appends them. Claims commit before the
   Delta write, so two writers never both take a key.
2. The Delta append of the fresh rows: a blind append, with no ``txnAppId`` (below).
3. ``confirm``: record that the batch's append committed (``raw.bronze_batches``).

A crash between 1 and 3 leaves claims without a confirmation. A replay of the same batch (same
checkpoint) finds the keys already claimed by itself (``Claim.retried``): the earlier attempt may
or may not have committed its append, and only bronze can say, so the caller looks those keys up in
the rows of that batch id and appends the ones absent. Delta's ``txnAppId`` would answer the same
question on every batch instead of only on replays, at the price of a Delta state reconstruction
per append (three Spark jobs, measured 1.5-2 s a batch on 2 cores, growing with the table's file
count). One attempt of a batch runs at a time: Spark's checkpoint admits one driver, and the
operator's driver Deployment is ``Recreate``. Keys claimed by *another* query whose batch was never
confirmed (its checkpoint was replaced after a crash) are returned as ``unconfirmed``: the caller
looks them up in bronze itself, the only slow path, and ``settle``s them as present or as claimed
by the current batch.

Keys are ``md5(idempotency_key)`` as 32 hex digits, stored as uuid. Rows a table held before the
ledger existed are copied in once per (table, source) by ``seed``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg
from pydantic import SecretStr

from restlake.postgres.connection import connection

log = logging.getLogger(__name__)

# The pseudo batch that owns keys found in the table itself (seeded, or settled as present).
TABLE_QUERY_ID = "(bronze table)"
TABLE_BATCH_ID = -1

_CREATE_KEYS = "CREATE TEMP TABLE restlake_batch_keys (key uuid NOT NULL) ON COMMIT DROP"
_COPY_KEYS = "COPY restlake_batch_keys (key) FROM STDIN"

# Only keys the INSERT did not take are looked up: usually none, so a batch descends the ledger's
# index once per key (the insert), not twice, which is what kept its cost growing with history.
# Keys go in in key order: hashes land all over the index, and in order each leaf page is visited
# once per batch while it is hot, not at random (measured at 5M keys: 1.5 s a batch of 100k
# instead of 2.2 s, as fast as into an empty ledger).
# The CTE's INSERT is invisible to the outer SELECT (one snapshot per statement): a key inserted
# by a transaction that committed after this statement began conflicts, yet shows no row here.
_CLAIM = """
WITH inserted AS (
    INSERT INTO raw.bronze_keys (table_id, key, query_id, batch_id)
    SELECT %(table_id)s::uuid, key, %(query_id)s, %(batch_id)s
    FROM (SELECT DISTINCT key FROM restlake_batch_keys ORDER BY key) AS batch
    ON CONFLICT (table_id, key) DO NOTHING
    RETURNING key
), conflicted AS (
    SELECT DISTINCT b.key FROM restlake_batch_keys b
    WHERE NOT EXISTS (SELECT 1 FROM inserted i WHERE i.key = b.key)
)
SELECT replace(f.key::text, '-', ''), k.query_id, k.batch_id, c.batch_id IS NOT NULL
FROM conflicted f
LEFT JOIN raw.bronze_keys k ON k.table_id = %(table_id)s::uuid AND k.key = f.key
LEFT JOIN raw.bronze_batches c
       ON c.table_id = k.table_id AND c.query_id = k.query_id AND c.batch_id = k.batch_id
"""


@dataclass(frozen=True)
class Claim:
    """What ``claim`` found for a batch's keys; ``committed``: this batch's append already committed
    (a replay), so there is nothing to write."""

    fresh: frozenset[str]
    unconfirmed: frozenset[str]
    committed: bool = False
    # The fresh keys an earlier attempt of this same batch claimed: a replay after a crash, whose
    # append may have committed before the crash (the caller checks bronze for them).
    retried: frozenset[str] = frozenset()


def _copy_keys(conn: psycopg.Connection, keys: Iterable[str]) -> None:
    conn.execute(_CREATE_KEYS)
    with conn.cursor() as cur, cur.copy(_COPY_KEYS) as copy:
        chunk: list[str] = []
        for key in keys:
            chunk.append(key)
            if len(chunk) == 65536:
                copy.write("\n".join(chunk) + "\n")
                chunk.clear()
        if chunk:
            copy.write("\n".join(chunk) + "\n")


def claim(
    conn_or_dsn: psycopg.Connection | str | SecretStr,
    *,
    table_id: str,
    query_id: str,
    batch_id: int,
    keys: Sequence[str],
) -> Claim:
    """Claim ``keys`` (md5 hex digests) for batch ``(query_id, batch_id)`` of table ``table_id``."""
    if not keys:
        return Claim(frozenset(), frozenset())
    with connection(conn_or_dsn, f"claiming bronze keys of batch {batch_id}") as conn, conn.transaction():
        committed = conn.execute(
            "SELECT 1 FROM raw.bronze_batches WHERE table_id = %s::uuid AND query_id = %s AND batch_id = %s",
            (table_id, query_id, batch_id),
        ).fetchone()
        if committed is not None:
            return Claim(frozenset(), frozenset(), committed=True)
        _copy_keys(conn, keys)
        conflicted = conn.execute(
            _CLAIM, {"table_id": table_id, "query_id": query_id, "batch_id": batch_id}
        ).fetchall()
    # A conflicting key is this batch's own (an earlier attempt claimed it), another batch's
    # committed one, another batch's unconfirmed one, or claimed concurrently and not visible yet:
    # that last one is left to its claimer, never appended twice.
    unconfirmed = frozenset(
        key
        for key, q, b, confirmed in conflicted
        if q is not None and (q, b) != (query_id, batch_id) and not confirmed
    )
    not_ours = {key for key, q, b, _ in conflicted if (q, b) != (query_id, batch_id)}
    retried = frozenset(key for key, q, b, _ in conflicted if (q, b) == (query_id, batch_id))
    return Claim(frozenset(k for k in keys if k not in not_ours), unconfirmed, retried=retried)


def settle(
    conn_or_dsn: psycopg.Connection | str | SecretStr,
    *,
    table_id: str,
    query_id: str,
    batch_id: int,
    present: Iterable[str],
    absent: Iterable[str],
) -> None:
    """Resolve unconfirmed claims after looking them up in the table: ``present`` ones are owned by
    the table itself from now on, ``absent`` ones are claimed by ``(query_id, batch_id)``."""
    with connection(conn_or_dsn, f"settling bronze keys of batch {batch_id}") as conn, conn.transaction():
        _confirm(conn, table_id, TABLE_QUERY_ID, TABLE_BATCH_ID)
        for owner, owned in (((TABLE_QUERY_ID, TABLE_BATCH_ID), present), ((query_id, batch_id), absent)):
            keys = list(owned)
            if keys:
                conn.execute(
                    "UPDATE raw.bronze_keys SET query_id = %s, batch_id = %s"
                    " WHERE table_id = %s::uuid AND key = ANY(%s::uuid[])",
                    (owner[0], owner[1], table_id, keys),
                )


def _confirm(conn: psycopg.Connection, table_id: str, query_id: str, batch_id: int) -> None:
    conn.execute(
        "INSERT INTO raw.bronze_batches (table_id, query_id, batch_id) VALUES (%s::uuid, %s, %s)"
        " ON CONFLICT DO NOTHING",
        (table_id, query_id, batch_id),
    )


def confirm(
    conn_or_dsn: psycopg.Connection | str | SecretStr, *, table_id: str, query_id: str, batch_id: int
) -> None:
    """Record that batch ``(query_id, batch_id)``'s bronze append committed."""
    with connection(conn_or_dsn, f"confirming bronze batch {batch_id}") as conn, conn.transaction():
        _confirm(conn, table_id, query_id, batch_id)


def is_seeded(conn_or_dsn: psycopg.Connection | str | SecretStr, *, table_id: str, source: str) -> bool:
    """Whether the table's rows of ``source`` from before the ledger have been copied into it."""
    with connection(conn_or_dsn, f"reading the bronze key ledger of source {source}") as conn:
        row = conn.execute(
            "SELECT 1 FROM raw.bronze_key_sources WHERE table_id = %s::uuid AND source = %s",
            (table_id, source),
        ).fetchone()
    return row is not None


def seed(
    conn_or_dsn: psycopg.Connection | str | SecretStr, *, table_id: str, source: str, keys: Iterable[str]
) -> int:
    """Copy the keys the table already holds for ``source`` into the ledger, once; returns how many."""
    with (
        connection(conn_or_dsn, f"seeding the bronze key ledger of source {source}") as conn,
        conn.transaction(),
    ):
        _copy_keys(conn, keys)
        inserted = conn.execute(
            "INSERT INTO raw.bronze_keys (table_id, key, query_id, batch_id)"
            " SELECT %s::uuid, key, %s, %s FROM (SELECT DISTINCT key FROM restlake_batch_keys ORDER BY key) k"
            " ON CONFLICT DO NOTHING",
            (table_id, TABLE_QUERY_ID, TABLE_BATCH_ID),
        ).rowcount
        _confirm(conn, table_id, TABLE_QUERY_ID, TABLE_BATCH_ID)
        conn.execute(
            "INSERT INTO raw.bronze_key_sources (table_id, source, seeded_keys) VALUES (%s::uuid, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (table_id, source, inserted),
        )
    log.info("bronze key ledger seeded source=%s table_id=%s keys=%s", source, table_id, inserted)
    return inserted
