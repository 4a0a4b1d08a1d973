"""The fetcher's one lazy Postgres connection (state store and parent reader): opened on first use,
dropped when the server ends it, re-opened by the next session, the DSN never shown."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from restlake.postgres.lazy_connection import LazyConnection
from restlake.stack.manager import StackEndpoints

pytestmark = pytest.mark.integration


def test_a_killed_connection_costs_one_statement_and_the_next_session_reconnects(
    stack: StackEndpoints,
) -> None:
    async def scenario() -> tuple[int, int, str]:
        pg = LazyConnection(stack.pg_dsn, connect_timeout=5)
        try:
            async with pg.session() as conn:
                first = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]
            async with pg.session() as conn:  # the same connection while it is healthy
                assert (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0] == first
            with psycopg.connect(stack.pg_dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (first,))
            with pytest.raises(psycopg.OperationalError):
                async with pg.session() as conn:
                    await conn.execute("SELECT 1")
            async with pg.session() as conn:
                second = (await (await conn.execute("SELECT pg_backend_pid()")).fetchone())[0]
            return first, second, repr(pg)
        finally:
            await pg.close()

    first, second, shown = asyncio.run(scenario())
    assert second != first
    assert shown == "LazyConnection(dsn=SecretStr('**********'))"
    assert stack.pg_dsn not in shown
