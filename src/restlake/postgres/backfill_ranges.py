"""Pin what a backfill run resolved at its first start (``raw.backfill_ranges``), for its resumptions.

A run id names one ledger run: its chunks are merged once each, and a resumption skips the chunks
already in ``raw.ingest_batches``. That holds only if the resumption reads the same rows. A range
with an open end (the topic's latest offsets, the bronze table's newest version) would read more
each time the topic or the table grew, so the first start records the end it resolved and every
later start of the same run reads that one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from pydantic import SecretStr

from restlake.postgres.connection import dsn_text
from restlake.postgres.errors import translate

log = logging.getLogger(__name__)


def pinned(
    dsn: str | SecretStr, *, source: str, query_id: str, resolve: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """What run ``query_id`` of ``source`` pinned when it first started; ``resolve()`` pins it now
    when nothing is recorded. Two starts of one run racing each other get the same answer: the
    first insert wins, and the other's conflicting insert returns the row that won."""
    try:
        with psycopg.connect(dsn_text(dsn)) as conn:
            found = _read(conn, source, query_id)
            if found is not None:
                log.info(
                    "backfill range pinned earlier source=%s query_id=%s pinned=%s", source, query_id, found
                )
                return found
            value = resolve()
            with conn.transaction():
                # The no-op update makes RETURNING give the stored row on a conflict too.
                row = conn.execute(
                    "INSERT INTO raw.backfill_ranges (source, query_id, pinned) VALUES (%s, %s, %s)"
                    " ON CONFLICT (source, query_id) DO UPDATE SET pinned = raw.backfill_ranges.pinned"
                    " RETURNING pinned",
                    (source, query_id, Jsonb(value)),
                ).fetchone()
    except psycopg.Error as exc:
        raise translate(exc, "pinning the backfill range") from None
    assert row is not None  # INSERT … RETURNING always returns the row
    stored = dict(row[0])
    if stored == value:
        log.info("backfill range pinned source=%s query_id=%s pinned=%s", source, query_id, stored)
    return stored


def _read(conn: psycopg.Connection, source: str, query_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        "SELECT pinned FROM raw.backfill_ranges WHERE source = %s AND query_id = %s", (source, query_id)
    ).fetchone()
    return dict(row[0]) if row else None
