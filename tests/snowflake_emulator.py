"""The Snowflake the tests talk to: fakesnow, a DuckDB-backed EMULATOR of the connector, not Snowflake.

No Snowflake account is reachable from the tests. fakesnow patches ``snowflake.connector.connect``
(and ``write_pandas``) so the sync's own code runs unchanged, its SQL translated to DuckDB by
sqlglot. What that cannot check: sign-in (password or key pair: any credentials are accepted),
roles and warehouses, stages, PUT and COPY INTO (``write_pandas`` inserts the frame directly),
MERGE inside an explicit transaction (refused; the sync does not use one), and Snowflake's own
concurrency and time-travel behaviour. The SQL is also parsed as Snowflake SQL by sqlglot in
tests/unit/snowflake/test_sql.py, which catches emulator-only syntax slipping in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import fakesnow

from restlake.contracts.snowflake_sync import SnowflakeSyncConfig

DATABASE = "ANALYTICS"
SCHEMA = "RAW"
# Resolved by SecretRef.resolve from the environment; the emulator accepts any password.
PASSWORD_ENV = {"RESTLAKE_SECRET_SNOWFLAKE_PASSWORD": "emulator-password-never-logged"}


def config(source: str, bronze_path: str, **overrides: Any) -> SnowflakeSyncConfig:
    values: dict[str, Any] = {
        "source": source,
        "bronze_path": bronze_path,
        "account": "myorg-emulator",
        "user": "RESTLAKE_LOADER",
        "database": DATABASE,
        "schema_name": SCHEMA,
        "table": "API_EVENTS",
        "warehouse": "LOAD_WH",
        "auth": {"type": "password", "password_secret_ref": {"name": "snowflake", "key": "password"}},
    }
    values.update(overrides)
    return SnowflakeSyncConfig.model_validate(values)


@contextmanager
def emulator() -> Iterator[None]:
    """fakesnow patched in, with the database and schema the sync expects to exist (it creates only
    its tables, as a Snowflake admin would have created the rest)."""
    with fakesnow.patch():
        import snowflake.connector

        with snowflake.connector.connect() as conn:
            conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
            conn.cursor().execute(f"CREATE SCHEMA IF NOT EXISTS {DATABASE}.{SCHEMA}")
        yield


def query(sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` on a fresh emulator connection (inside ``emulator()``)."""
    import snowflake.connector

    with snowflake.connector.connect(database=DATABASE, schema=SCHEMA) as conn:
        return list(conn.cursor().execute(sql, params or {}).fetchall())
