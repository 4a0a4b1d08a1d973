"""What one Snowflake sync (one source's bronze table into its Snowflake table) needs to run.

Built from the spec by ``SnowflakeSyncConfig.for_source`` only, beside ``StreamJobConfig.for_source``
and with the same bronze location (``IngestionSource.bronze_path``): ``restlake snowflake sync`` and
the ``restlake-snowflake-sync`` flow both come through here. Credentials stay Secret references until
``restlake.jobs.spark.snowflake.connection`` resolves them at connect time.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from restlake.contracts.source.sinks import SnowflakeAuth
from restlake.contracts.spec import IngestionSource
from restlake.errors import ConfigError

# The load ledger sits beside the target table, in the same database and schema.
LEDGER_TABLE = "RESTLAKE_LOADS"


class SnowflakeSyncConfig(BaseModel):
    """One source's bronze Delta table in, one Snowflake table (and the load ledger) out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(min_length=1, description="IngestionSource identity: the bronze rows' source value.")
    bronze_path: str = Field(min_length=1, description="Bronze Delta table (local path or s3a:// URI).")
    account: str = Field(min_length=1)
    user: str = Field(min_length=1)
    database: str = Field(min_length=1)
    schema_name: str = Field(min_length=1)
    table: str = Field(min_length=1)
    warehouse: str = Field(min_length=1)
    role: str | None = None
    auth: SnowflakeAuth
    max_versions_per_load: int = Field(100, ge=1)

    @classmethod
    def for_source(cls, source: IngestionSource, *, lake_root: str) -> SnowflakeSyncConfig:
        """The one place a source's spec becomes a sync config; refuses a source that does not enable it."""
        sink = source.spec.sinks.snowflake
        if not sink.enabled:
            raise ConfigError(
                f"source {source.name}: spec.sinks.snowflake.enabled is not true; enable the Snowflake "
                "sink (account, user, database, schema, warehouse, auth) to sync it"
            )
        # The spec's validator guarantees these once enabled; the checks keep the types honest.
        if (
            sink.account is None
            or sink.user is None
            or sink.database is None
            or sink.schema_ is None
            or sink.warehouse is None
            or sink.auth is None
        ):
            raise ConfigError(f"source {source.name}: spec.sinks.snowflake is enabled but incomplete")
        return cls(
            source=source.identity,
            bronze_path=source.bronze_path(lake_root),
            account=sink.account,
            user=sink.user,
            database=sink.database,
            schema_name=sink.schema_,
            table=sink.table,
            warehouse=sink.warehouse,
            role=sink.role,
            auth=sink.auth,
            max_versions_per_load=sink.max_versions_per_load,
        )

    @property
    def target(self) -> str:
        """``DATABASE.SCHEMA.TABLE``: unquoted, so Snowflake resolves it upper-cased."""
        return f"{self.database}.{self.schema_name}.{self.table}"

    @property
    def ledger(self) -> str:
        return f"{self.database}.{self.schema_name}.{LEDGER_TABLE}"
