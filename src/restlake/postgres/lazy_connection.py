"""One async Postgres connection, opened on first use and re-opened after a failure.

Long-running async callers (the fetcher's state store, a child source's parent reader) keep one
connection each rather than a pool: their statements are few and serialised anyway. A Postgres
restart then costs the statement that failed, never the process.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from pydantic import SecretStr


class LazyConnection:
    """A connection opened when first needed, used by one caller at a time.

    A ``psycopg.Error`` or ``OSError`` raised inside ``session()`` closes it (the next session
    reconnects) and propagates unchanged: callers translate it, since only they know what they
    were doing and which errors they expect (a table that does not exist yet, say).
    """

    def __init__(self, dsn: str | SecretStr, *, connect_timeout: float = 10.0) -> None:
        self._dsn = dsn if isinstance(dsn, SecretStr) else SecretStr(dsn)
        self._connect_timeout = connect_timeout
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return "LazyConnection(dsn=SecretStr('**********'))"

    @property
    def dsn(self) -> SecretStr:
        return self._dsn

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """The connection, held exclusively for the block."""
        async with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self._dsn.get_secret_value(), connect_timeout=int(self._connect_timeout)
                    )
                yield self._conn
            except (psycopg.Error, OSError):
                await self._drop()
                raise

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def _drop(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()
