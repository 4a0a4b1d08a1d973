"""Pruning of the batch ledger (``raw.ingest_batches``) without giving up replay safety.

A ledger row ``(source, query_id, batch_id)`` is read by one thing only: ``merge_batch`` under the
same three values, which skips the batch when it finds the row. So a row is needed exactly as long
as a merge under its own query id and batch id can still happen:

- A stream query's id is its checkpoint's. On restart Spark re-runs only the batches after the last
  one in the checkpoint's commit log, i.e. at most its newest batch, whose merge may have committed
  while Spark's commit did not. Batches before it are never run again. The newest ``keep_batches``
  rows of every query id are kept whatever their age (default 100, Spark's
  ``minBatchesToRetain``: as far back as a checkpoint keeps offsets at all).
- A backfill's id is ``backfill-<run id>``; only a rerun with the same ``--run-id`` (a Backfill
  Job's retry) reads its rows, within minutes or hours of the first attempt. ``horizon`` covers it.
- A replay under a *new* query id never reads old rows: a stream on a new checkpoint (Kafka from
  earliest, whatever the topic's retention still holds) or any Kafka or bronze backfill. Such a
  replay is exact without the ledger: ``raw.api_events`` is keyed by ``(source, external_id)`` and
  the merge writes a row only when it is newer, so re-merging what is stored changes nothing, and
  bronze appends are decided by the key ledger (``raw.bronze_keys``), which is never pruned.

Hence the rule: delete a row when it is older than ``horizon`` **and** not among the newest
``keep_batches`` of its query id. Nothing else is pruned: ``raw.bronze_keys`` is the set of keys bronze
holds (deleting one would let its record be appended twice) and ``raw.bronze_batches`` rows are
what marks those keys' claims as committed.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import timedelta

import psycopg
from pydantic import SecretStr

from restlake.postgres.connection import connection

log = logging.getLogger(__name__)

# Spark's spark.sql.streaming.minBatchesToRetain: the checkpoint keeps no offsets further back.
KEEP_BATCHES = 100

_PRUNE = """
WITH ranked AS (
    SELECT query_id, batch_id, committed_at,
           row_number() OVER (PARTITION BY query_id ORDER BY batch_id DESC) AS newest
    FROM raw.ingest_batches
    WHERE source = %(source)s
)
DELETE FROM raw.ingest_batches b
USING ranked r
WHERE b.source = %(source)s AND b.query_id = r.query_id AND b.batch_id = r.batch_id
  AND r.newest > %(keep)s AND r.committed_at < clock_timestamp() - %(horizon)s
"""


@dataclass(frozen=True)
class LedgerPruning:
    """What one pruning did for one source."""

    source: str
    deleted: int
    kept: int
    horizon_s: float
    keep_batches: int

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def prune_ledger(
    conn_or_dsn: psycopg.Connection | str | SecretStr,
    *,
    source: str,
    horizon: timedelta,
    keep_batches: int = KEEP_BATCHES,
) -> LedgerPruning:
    """Delete the ledger rows of ``source`` that no merge can read any more (the module's rule)."""
    if horizon < timedelta(0) or keep_batches < 1:
        raise ValueError(
            f"horizon must be 0 or more and keep_batches 1 or more, got {horizon}, {keep_batches}"
        )
    with (
        connection(conn_or_dsn, f"pruning the batch ledger of source {source}") as conn,
        conn.transaction(),
    ):
        exists = conn.execute("SELECT to_regclass('raw.ingest_batches') IS NOT NULL").fetchone()
        if exists is None or not exists[0]:
            # No stream has merged yet (the migrations create the ledger): nothing to prune.
            return LedgerPruning(source, 0, 0, horizon.total_seconds(), keep_batches)
        deleted = conn.execute(_PRUNE, {"source": source, "keep": keep_batches, "horizon": horizon}).rowcount
        kept_row = conn.execute(
            "SELECT count(*) FROM raw.ingest_batches WHERE source = %s", (source,)
        ).fetchone()
    kept = int(kept_row[0]) if kept_row is not None else 0
    log.info(
        "batch ledger pruned source=%s deleted=%s kept=%s horizon_s=%s keep_batches=%s",
        source,
        deleted,
        kept,
        horizon.total_seconds(),
        keep_batches,
    )
    return LedgerPruning(source, deleted, kept, horizon.total_seconds(), keep_batches)
