"""Reading a parent source's current records for its children (``spec.parent``).

The parent's Postgres table holds one row per parent record, the newest version, with its content
hash: the stream job's merge already decided what "current" means, so a child never second-guesses
it (and never needs the parent's API, topic or credentials).
"""

from __future__ import annotations

import abc

import psycopg
from psycopg import sql
from pydantic import SecretStr

from restlake.contracts.envelope import content_hash
from restlake.contracts.parents import ParentLink
from restlake.fetcher.fanout import ParentRow
from restlake.postgres.errors import translate
from restlake.postgres.identifiers import TableName
from restlake.postgres.lazy_connection import LazyConnection


class ParentRows(abc.ABC):
    """Where a child source finds its parent's current records."""

    @abc.abstractmethod
    async def current(self, link: ParentLink) -> list[ParentRow]:
        """Every current record of ``link``'s parent, ordered by external id."""

    async def close(self) -> None:
        return None


class MemoryParentRows(ParentRows):
    """Parent records held in memory, by parent identity: for unit tests."""

    def __init__(self, rows: dict[str, list[ParentRow]] | None = None) -> None:
        self.rows = rows or {}

    async def current(self, link: ParentLink) -> list[ParentRow]:
        return sorted(self.rows.get(link.identity, []), key=lambda r: r.external_id)


class PostgresParentRows(ParentRows):
    """The parent's rows of its Postgres table (``source`` = the parent's identity)."""

    def __init__(self, dsn: str | SecretStr, *, connect_timeout: float = 10.0) -> None:
        self._pg = LazyConnection(dsn, connect_timeout=connect_timeout)

    def __repr__(self) -> str:
        return "PostgresParentRows(dsn=SecretStr('**********'))"

    async def current(self, link: ParentLink) -> list[ParentRow]:
        query = sql.SQL(
            "SELECT external_id, content_hash, payload FROM {} WHERE source = %s ORDER BY external_id"
        ).format(TableName.parse(link.table).identifier())
        try:
            async with self._pg.session() as conn, conn.transaction():
                cur = await conn.execute(query, (link.identity,))
                rows = await cur.fetchall()
        except psycopg.errors.UndefinedTable:
            # The parent's stream job creates its table on start: until then it has no records.
            return []
        except psycopg.Error as exc:
            raise translate(exc, f"reading the records of parent source {link.identity}") from None
        # Rows merged before content_hash existed have none: their payload's hash is as stable.
        return [
            ParentRow(str(ext), digest or content_hash(payload), payload) for ext, digest, payload in rows
        ]

    async def close(self) -> None:
        await self._pg.close()
