"""One way into Postgres for restlake's writers: a caller's connection or a DSN, errors translated.

Callers either pass the connection of a transaction they hold (tests, the backfill replayer) or a
DSN; both paths must turn a psycopg error into restlake's retryable/permanent split the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from pydantic import SecretStr

from restlake.postgres.errors import translate


def dsn_text(dsn: str | SecretStr) -> str:
    return dsn.get_secret_value() if isinstance(dsn, SecretStr) else dsn


@contextmanager
def connection(conn_or_dsn: psycopg.Connection | str | SecretStr, doing: str) -> Iterator[psycopg.Connection]:
    """The given connection as is, or a new one closed on exit; ``doing`` names the work in errors."""
    try:
        if isinstance(conn_or_dsn, psycopg.Connection):
            yield conn_or_dsn
            return
        with psycopg.connect(dsn_text(conn_or_dsn)) as conn:
            yield conn
    except psycopg.Error as exc:
        # A client-side error (no SQLSTATE) may quote the host or user; keep it out of the chain.
        raise translate(exc, doing) from (exc if exc.sqlstate else None)
