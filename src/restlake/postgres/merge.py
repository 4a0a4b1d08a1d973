"""Merge one micro-batch of records into a Postgres table, exactly once.

One transaction per batch: look the batch up in the ledger (``raw.ingest_batches``), COPY the
rows into a temporary staging table, keep the newest row per ``(source, external_id)``, upsert
them with one ``INSERT … ON CONFLICT … DO UPDATE … WHERE <incoming is newer>``, record the batch
in the ledger, commit. A replayed ``(source, query_id, batch_id)`` finds its ledger row and
changes nothing. Usable from Spark's ``foreachBatch`` (driver side) and from a backfill.

The "newer" rule, applied per key between the stored row and the incoming one:

1. the same ``content_hash`` is never newer: an unchanged record is never rewritten;
2. when both versions parse as timestamps (ISO 8601 or RFC 2822; no zone means UTC) and differ,
   the later timestamp wins;
3. else when both parse as numbers (an epoch, a revision counter) and differ, the larger wins;
4. else (opaque strings, no version, equal versions, one timestamp and one number) the later
   ``fetched_at`` wins; a stored row without ``fetched_at`` (written before this module) loses.

Inside one batch the survivor per key is the first by (timestamp version desc, numeric version
desc, fetched_at desc, content_hash): the same rule whenever a source's versions are of one kind,
which they are, since they come from one ``versionPath``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime

import psycopg
from psycopg import sql
from pydantic import SecretStr

from restlake.errors import PermanentError
from restlake.postgres.connection import connection
from restlake.postgres.identifiers import TableName

log = logging.getLogger(__name__)

_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
# Postgres numeric allows far more, but a version of 10**1000 is not a version: treat it as opaque
# rather than let one absurd value fail the batch's COPY.
_MAX_NUMERIC_EXPONENT = 1000


@dataclass(frozen=True, slots=True)
class ParsedVersion:
    """A raw version string read as a timestamp or a number, or as neither (opaque)."""

    ts: datetime | None = None
    num: Decimal | None = None


def parse_version(raw: str | None) -> ParsedVersion:
    """Read a versionPath value: a number first (so ``20240101`` is a number), then a timestamp."""
    if raw is None:
        return ParsedVersion()
    text = raw.strip()
    if _NUMBER.fullmatch(text):
        try:
            num = Decimal(text)
        except InvalidOperation:
            return ParsedVersion()
        if abs(num.adjusted()) > _MAX_NUMERIC_EXPONENT:
            return ParsedVersion()
        return ParsedVersion(num=num)
    ts: datetime | None
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        try:
            ts = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return ParsedVersion()
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ParsedVersion(ts=ts)


@dataclass(frozen=True, slots=True)
class VersionState:
    """What the newer rule looks at, for the stored row or the incoming one."""

    content_hash: str | None
    version: str | None
    fetched_at: datetime | None


def is_newer(incoming: VersionState, current: VersionState) -> bool:
    """The module docstring's rule in Python; the upsert's WHERE clause is the same rule in SQL."""
    if incoming.content_hash is not None and incoming.content_hash == current.content_hash:
        return False
    new, old = parse_version(incoming.version), parse_version(current.version)
    if new.ts is not None and old.ts is not None and new.ts != old.ts:
        return new.ts > old.ts
    if new.num is not None and old.num is not None and new.num != old.num:
        return new.num > old.num
    if current.fetched_at is None:
        return True
    if incoming.fetched_at is None:
        return False
    return incoming.fetched_at > current.fetched_at


@dataclass(frozen=True, slots=True)
class MergeRow:
    """One record to merge; ``payload`` is its JSON text."""

    source: str
    external_id: str
    idempotency_key: str
    content_hash: str
    version: str | None
    fetched_at: datetime
    payload: str
    kafka_topic: str | None = None
    kafka_partition: int | None = None
    kafka_offset: int | None = None


@dataclass(frozen=True, slots=True)
class MergeResult:
    """What one ``merge_batch`` call did; all zero but ``rows_in`` when the batch was a replay."""

    source: str
    query_id: str
    batch_id: int
    rows_in: int
    rows_distinct: int
    inserted: int
    updated: int
    replayed: bool
    duration_s: float

    @property
    def merged(self) -> int:
        return self.inserted + self.updated

    @property
    def unchanged(self) -> int:
        """Keys whose stored row was as new or newer (or had the same content)."""
        return self.rows_distinct - self.merged


STAGE_COLUMNS = (
    "source",
    "external_id",
    "idempotency_key",
    "content_hash",
    "version",
    "version_ts",
    "version_num",
    "fetched_at",
    "payload",
    "kafka_topic",
    "kafka_partition",
    "kafka_offset",
)

_CREATE_STAGE = sql.SQL(
    "CREATE TEMP TABLE restlake_stage ("
    " source text NOT NULL, external_id text NOT NULL, idempotency_key text NOT NULL,"
    " content_hash text NOT NULL, version text, version_ts timestamptz, version_num numeric,"
    " fetched_at timestamptz NOT NULL, payload jsonb NOT NULL,"
    " kafka_topic text, kafka_partition integer, kafka_offset bigint"
    ") ON COMMIT DROP"
)

COPY_STAGE = sql.SQL("COPY restlake_stage ({}) FROM STDIN").format(
    sql.SQL(", ").join(sql.Identifier(c) for c in STAGE_COLUMNS)
)

# The survivor per key when the batch holds several versions of one record (the rule above).
_NEWEST_PER_KEY = sql.SQL(
    """SELECT DISTINCT ON (source, external_id) *
    FROM {staged} AS staged
    ORDER BY source, external_id,
             version_ts DESC NULLS LAST, version_num DESC NULLS LAST, fetched_at DESC, content_hash"""
)
# Every staged row, when the stager saw each key once: the usual batch, and then the sort above (a
# spill to disk for a batch of wide payloads at the default work_mem) would decide nothing.
_EVERY_ROW = sql.SQL("SELECT * FROM {staged} AS staged")
# What a stager fills by default: the temporary table of _CREATE_STAGE.
_STAGE_TABLE = sql.Identifier("restlake_stage")
# {target} is a validated, quoted identifier and {newest} one of the two selections above. The
# selection is a subquery, not a CTE: read once, it streams into the insert instead of being
# materialised first.
_UPSERT = sql.SQL(
    """
WITH upserted AS (
    INSERT INTO {target} AS t (
        source, external_id, payload, pulled_at, content_hash, version, version_ts, version_num,
        fetched_at, updated_at, idempotency_key, kafka_topic, kafka_partition, kafka_offset,
        ingest_query_id, ingest_batch_id)
    SELECT source, external_id, payload, fetched_at, content_hash, version, version_ts, version_num,
           fetched_at, now(), idempotency_key, kafka_topic, kafka_partition, kafka_offset,
           %(query_id)s, %(batch_id)s
    FROM ({newest}) AS newest
    ON CONFLICT (source, external_id) DO UPDATE SET
        payload = EXCLUDED.payload,
        pulled_at = EXCLUDED.pulled_at,
        content_hash = EXCLUDED.content_hash,
        version = EXCLUDED.version,
        version_ts = EXCLUDED.version_ts,
        version_num = EXCLUDED.version_num,
        fetched_at = EXCLUDED.fetched_at,
        updated_at = now(),
        idempotency_key = EXCLUDED.idempotency_key,
        kafka_topic = EXCLUDED.kafka_topic,
        kafka_partition = EXCLUDED.kafka_partition,
        kafka_offset = EXCLUDED.kafka_offset,
        ingest_query_id = EXCLUDED.ingest_query_id,
        ingest_batch_id = EXCLUDED.ingest_batch_id
    WHERE t.content_hash IS DISTINCT FROM EXCLUDED.content_hash
      AND CASE
            WHEN EXCLUDED.version_ts IS NOT NULL AND t.version_ts IS NOT NULL
                 AND EXCLUDED.version_ts <> t.version_ts
                THEN EXCLUDED.version_ts > t.version_ts
            WHEN EXCLUDED.version_num IS NOT NULL AND t.version_num IS NOT NULL
                 AND EXCLUDED.version_num <> t.version_num
                THEN EXCLUDED.version_num > t.version_num
            ELSE t.fetched_at IS NULL OR EXCLUDED.fetched_at > t.fetched_at
          END
    RETURNING (t.xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)
FROM upserted
"""
)


@dataclass(frozen=True, slots=True)
class Staged:
    """What a stager wrote: ``rows`` rows holding ``keys`` distinct ``external_id`` values (a batch
    is one source, so that is its distinct keys).

    ``relation`` is where the upsert reads them, ``STAGE_COLUMNS`` by name: the temporary
    ``restlake_stage`` unless the stager filled something else (a table or a parenthesised
    SELECT). ``finish`` runs after the ledger row, inside the transaction (dropping a staging
    table that outlives the transaction, so it goes exactly when the merge commits)."""

    rows: int
    keys: int
    relation: sql.Composable = field(default_factory=lambda: _STAGE_TABLE)
    finish: sql.Composed | None = None

    @property
    def one_version_per_key(self) -> bool:
        return self.rows == self.keys


# Writes one batch's rows into the temporary ``restlake_stage`` table (or elsewhere, see Staged) and
# says what it wrote.
Stager = Callable[[psycopg.Connection], Staged]


def merge_batch(
    conn_or_dsn: psycopg.Connection | str | SecretStr,
    *,
    table: str | TableName,
    source: str,
    query_id: str,
    batch_id: int,
    rows: Iterable[MergeRow],
) -> MergeResult:
    """Merge ``rows`` into ``table`` in one transaction, recorded in the ledger; a replay is a no-op.

    ``rows`` is consumed once and streamed into COPY, so it may be a lazy iterator over a batch
    larger than memory. A connection passed in must not be inside a transaction of its own.
    Raises TransientError (retry the batch) or PermanentError; neither carries the DSN.
    """
    return merge_staged(
        conn_or_dsn,
        table=table,
        source=source,
        query_id=query_id,
        batch_id=batch_id,
        stage=lambda conn: _stage_rows(conn, source, batch_id, rows),
    )


def merge_staged(
    conn_or_dsn: psycopg.Connection | str | SecretStr,
    *,
    table: str | TableName,
    source: str,
    query_id: str,
    batch_id: int,
    stage: Stager,
    before_commit: Callable[[], None] | None = None,
) -> MergeResult:
    """``merge_batch`` with the rows written into ``restlake_stage`` by ``stage`` (COPY of any format).

    ``stage`` runs inside the batch's transaction, after the ledger said the batch is new, so a
    replay never pays for staging. It must reject a row of another source (PermanentError).
    ``before_commit`` runs after the upsert, before the ledger row and the commit: the stream job
    waits there for its bronze append, so the merge overlaps the Delta write yet commits after it.
    An exception it raises rolls the batch back.
    """
    target = table if isinstance(table, TableName) else TableName.parse(table)
    with connection(conn_or_dsn, f"merging batch {batch_id} of source {source} into {target}") as conn:
        return _merge(conn, target, source, query_id, batch_id, stage, before_commit)


def merged_batches(
    conn_or_dsn: psycopg.Connection | str | SecretStr, *, source: str, query_id: str
) -> dict[int, int]:
    """The ledger's batches of ``query_id``: batch id → rows it merged in."""
    with connection(conn_or_dsn, f"reading the ledger of {query_id} of source {source}") as conn:
        found = conn.execute(
            "SELECT batch_id, rows_in FROM raw.ingest_batches WHERE source = %s AND query_id = %s",
            (source, query_id),
        )
        return {int(batch_id): int(rows_in) for batch_id, rows_in in found}


def _stage_rows(conn: psycopg.Connection, source: str, batch_id: int, rows: Iterable[MergeRow]) -> Staged:
    rows_in = 0
    keys: set[str] = set()
    with conn.cursor() as cur, cur.copy(COPY_STAGE) as copy:
        for row in rows:
            if row.source != source:
                raise PermanentError(
                    f"batch {batch_id} of source {source} holds a record of source {row.source!r} "
                    f"(external_id {row.external_id!r}); one batch merges one source"
                )
            parsed = parse_version(row.version)
            copy.write_row(
                (
                    row.source,
                    row.external_id,
                    row.idempotency_key,
                    row.content_hash,
                    row.version,
                    parsed.ts,
                    parsed.num,
                    row.fetched_at,
                    row.payload,
                    row.kafka_topic,
                    row.kafka_partition,
                    row.kafka_offset,
                )
            )
            rows_in += 1
            keys.add(row.external_id)
    return Staged(rows_in, len(keys))


def _merge(
    conn: psycopg.Connection,
    target: TableName,
    source: str,
    query_id: str,
    batch_id: int,
    stage: Stager,
    before_commit: Callable[[], None] | None = None,
) -> MergeResult:
    started = time.monotonic()
    with conn.transaction():
        # Two drivers of the same query (a zombie and its replacement) serialise here; the loser
        # then finds the winner's ledger row.
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"{source}\x1f{query_id}",))
        done = conn.execute(
            "SELECT rows_in FROM raw.ingest_batches WHERE source = %s AND query_id = %s AND batch_id = %s",
            (source, query_id, batch_id),
        ).fetchone()
        if done is not None:
            result = MergeResult(
                source, query_id, batch_id, done[0], 0, 0, 0, True, time.monotonic() - started
            )
            log.info(
                "merge skipped, batch already in ledger source=%s query_id=%s batch_id=%s table=%s",
                source,
                query_id,
                batch_id,
                target,
            )
            return result

        conn.execute(_CREATE_STAGE)
        staged = stage(conn)
        rows_in, distinct = staged.rows, staged.keys
        upsert = _UPSERT.format(
            target=target.identifier(),
            newest=(_EVERY_ROW if staged.one_version_per_key else _NEWEST_PER_KEY).format(
                staged=staged.relation
            ),
        )
        counts = conn.execute(upsert, {"query_id": query_id, "batch_id": batch_id}).fetchone()
        inserted, updated = counts if counts is not None else (0, 0)
        if before_commit is not None:
            before_commit()
        conn.execute(
            # clock_timestamp(), not the column default now() (the transaction's start): the stream
            # job opens this transaction while its bronze append still runs, and commits after it.
            "INSERT INTO raw.ingest_batches"
            " (source, query_id, batch_id, target_table, rows_in, rows_merged, committed_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, clock_timestamp())",
            (source, query_id, batch_id, str(target), rows_in, inserted + updated),
        )
        if staged.finish is not None:
            conn.execute(staged.finish)
    result = MergeResult(
        source, query_id, batch_id, rows_in, distinct, inserted, updated, False, time.monotonic() - started
    )
    log.info(
        "merge committed source=%s query_id=%s batch_id=%s table=%s rows_in=%s distinct=%s inserted=%s "
        "updated=%s unchanged=%s duration_s=%.3f",
        source,
        query_id,
        batch_id,
        target,
        rows_in,
        distinct,
        inserted,
        updated,
        result.unchanged,
        result.duration_s,
    )
    return result
