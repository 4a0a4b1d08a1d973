"""Apply the SQL migrations of ``restlake.sql`` (the repository's ``sql/``), once each, safely from
concurrent processes.

The migrations are their own distribution, ``restlake-sql``, kept as plain files a DBA can read;
the core depends on it at its exact version, so the fetcher, the stream job and the local runtime,
which all reach Postgres through this module, get the migrations of the very version of the code
that checks their checksums.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql
from pydantic import SecretStr

from restlake.postgres.connection import dsn_text
from restlake.postgres.errors import translate
from restlake.postgres.identifiers import TableName

log = logging.getLogger(__name__)

_NAME = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")
# pg_advisory_xact_lock key: a fixed value of restlake's own ("restlake" as 8 bytes, below 2**63).
_LOCK_KEY = int.from_bytes(b"restlake", "big")

SEED_TABLE = TableName("raw", "api_events")


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def load() -> list[Migration]:
    """Every ``NNN_name.sql`` of ``restlake.sql``, in order."""
    found = [
        Migration(entry.name, entry.read_text(encoding="utf-8"))
        for entry in resources.files("restlake.sql").iterdir()
        if _NAME.fullmatch(entry.name)
    ]
    return sorted(found, key=lambda m: m.name)


def apply(dsn: str | SecretStr) -> list[str]:
    """Apply pending migrations in one transaction; return the names applied (empty when up to date).

    An advisory transaction lock serialises concurrent appliers: the second waits, then finds
    everything recorded in ``raw.schema_migrations`` and applies nothing.
    """
    migrations = load()
    try:
        with psycopg.connect(dsn_text(dsn)) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            conn.execute("CREATE SCHEMA IF NOT EXISTS raw")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS raw.schema_migrations ("
                " name text PRIMARY KEY, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            applied: dict[str, str] = dict(
                conn.execute("SELECT name, checksum FROM raw.schema_migrations").fetchall()
            )
            done: list[str] = []
            for migration in migrations:
                if migration.name in applied:
                    if applied[migration.name] != migration.checksum:
                        # Applied migrations are immutable; a change here means a new file is needed.
                        log.warning("migration changed after it was applied name=%s", migration.name)
                    continue
                conn.execute(migration.sql.encode("utf-8"))
                conn.execute(
                    "INSERT INTO raw.schema_migrations (name, checksum) VALUES (%s, %s)",
                    (migration.name, migration.checksum),
                )
                done.append(migration.name)
    except psycopg.Error as exc:
        raise translate(exc, "applying migrations") from None
    if done:
        log.info("migrations applied names=%s", ",".join(done))
    else:
        log.debug("migrations up to date count=%s", len(migrations))
    return done


def ensure_table(dsn: str | SecretStr, table: TableName) -> None:
    """Create a sink table other than the seed one with the seed table's columns, keys and defaults."""
    if table == SEED_TABLE:
        return
    try:
        with psycopg.connect(dsn_text(dsn)) as conn, conn.transaction():
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(table.schema)))
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (LIKE {} INCLUDING ALL)").format(
                    table.identifier(), SEED_TABLE.identifier()
                )
            )
    except psycopg.Error as exc:
        raise translate(exc, f"creating table {table}") from None
