"""``spec.sinks``: where records land (Postgres, the bronze and quarantine Delta tables, Snowflake)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from restlake.contracts import guards
from restlake.contracts.model import SpecModel, field_error, model_rules
from restlake.contracts.patterns import (
    COLUMN,
    CRON,
    PG_TABLE,
    SNOWFLAKE_ACCOUNT,
    SNOWFLAKE_IDENTIFIER,
    SNOWFLAKE_USER,
)
from restlake.contracts.problems import short
from restlake.contracts.source.auth import SecretRef


def _writable_table(value: str) -> str:
    problem = guards.postgres_table_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _inside_lake(value: Any) -> Any:
    # Before the pattern, so an absolute path or a URL gets its own message, not the charset's.
    problem = guards.lake_path_problem(value) if isinstance(value, str) else None
    if problem is not None:
        raise ValueError(f"{problem}, got {short(value)}")
    return value


LakePath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=guards.LAKE_PATH_MAX_LENGTH,
        pattern=guards.LAKE_PATH,
        json_schema_extra={"x-kubernetes-validations": guards.LAKE_PATH_RULES},
    ),
    BeforeValidator(_inside_lake),
]


class PostgresSink(SpecModel):
    """Upsert the latest version of every record into Postgres."""

    enabled: bool = Field(True, description="Write to Postgres.")
    table: Annotated[str, AfterValidator(_writable_table)] = Field(
        "raw.api_events",
        max_length=127,
        pattern=PG_TABLE,
        description="Target table, schema-qualified; not in pg_* or information_schema, and not one "
        "of restlake's own tables (" + ", ".join(guards.RESTLAKE_TABLES) + ").",
        json_schema_extra={"x-kubernetes-validations": guards.POSTGRES_TABLE_RULES},
    )


class BronzeSink(SpecModel):
    """Append every record version to a Delta table."""

    enabled: bool = Field(True, description="Write the bronze Delta table.")
    path: LakePath | None = Field(
        None,
        description="Table location relative to the lake root (no scheme, no leading /, no '..'); "
        "absent means <lake root>/bronze/<name>.",
    )
    partition_by: list[Annotated[str, Field(pattern=COLUMN)]] = Field(
        ["source", "ingest_date"], min_length=1, max_length=8, description="Partition columns."
    )


class QuarantineSink(SpecModel):
    """Where records that fail the schema (or quality, with onViolation drop) go, with the reason."""

    enabled: bool = Field(True, description="Write the quarantine Delta table.")
    path: LakePath | None = Field(
        None,
        description="Table location relative to the lake root (no scheme, no leading /, no '..'); "
        "absent means <lake root>/quarantine/<name>.",
    )


# Fields that an enabled Snowflake sink cannot do without, in the order they are reported.
SNOWFLAKE_REQUIRED = ("account", "user", "database", "schema", "warehouse", "auth")


def _snowflake_name(description: str) -> Any:
    return Field(None, min_length=1, max_length=255, pattern=SNOWFLAKE_IDENTIFIER, description=description)


class SnowflakePasswordAuth(SpecModel):
    """User and password (a service user's; Snowflake is phasing passwords out for people)."""

    type: Literal["password"] = Field(description="password: the user's password from a Secret.")
    password_secret_ref: SecretRef = Field(description="Secret key holding the password.")


class SnowflakeKeyPairAuth(SpecModel):
    """Key-pair authentication: a PEM PKCS#8 private key whose public key is set on the user."""

    type: Literal["keyPair"] = Field(description="keyPair: sign in with an RSA private key from a Secret.")
    private_key_secret_ref: SecretRef = Field(description="Secret key holding the PEM private key.")
    passphrase_secret_ref: SecretRef | None = Field(
        None, description="Secret key holding the private key's passphrase, when it is encrypted."
    )


SnowflakeAuth = Annotated[SnowflakePasswordAuth | SnowflakeKeyPairAuth, Field(discriminator="type")]


class SnowflakeSink(SpecModel):
    """Load bronze incrementally into a Snowflake table shaped like raw.api_events (``restlake
    snowflake sync``, or its flow): a MERGE per range of bronze versions, recorded in a load ledger."""

    model_config = model_rules(
        *(
            {
                "rule": f"!has(self.enabled) || !self.enabled || has(self.{name})",
                "message": f"{name} is required when snowflake.enabled is true",
                "fieldPath": f".{name}",
            }
            for name in SNOWFLAKE_REQUIRED
        )
    )

    enabled: bool = Field(False, description="Load bronze into Snowflake (needs sinks.bronze.enabled).")
    account: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        pattern=SNOWFLAKE_ACCOUNT,
        description="Account identifier: <orgname>-<account_name> (or a locator with its region).",
    )
    user: str | None = Field(
        None, min_length=1, max_length=255, pattern=SNOWFLAKE_USER, description="User the sync signs in as."
    )
    database: str | None = _snowflake_name("Database of the table and the load ledger.")
    schema_: str | None = Field(
        None,
        alias="schema",
        min_length=1,
        max_length=255,
        pattern=SNOWFLAKE_IDENTIFIER,
        description="Schema of the table and the load ledger.",
    )
    table: str = Field(
        "API_EVENTS",
        min_length=1,
        max_length=255,
        pattern=SNOWFLAKE_IDENTIFIER,
        description="Target table, created when missing, with raw.api_events' columns.",
    )
    warehouse: str | None = _snowflake_name("Warehouse that runs the MERGE.")
    role: str | None = _snowflake_name("Role to use; absent means the user's default role.")
    auth: SnowflakeAuth | None = Field(None, description="How the sync signs in: password or keyPair.")
    schedule: str | None = Field(
        None,
        max_length=128,
        pattern=CRON,
        description="Cron schedule (5 fields or @hourly, @daily, ...) of the sync flow that `restlake "
        "flows serve` runs; absent means none (run it with restlake snowflake sync).",
    )
    max_versions_per_load: int = Field(
        100,
        ge=1,
        le=100_000,
        description="Bronze versions merged per transaction at the most, so a first sync over a long "
        "history commits in steps.",
    )

    @model_validator(mode="after")
    def _complete_when_enabled(self) -> SnowflakeSink:
        if self.enabled:
            for name in SNOWFLAKE_REQUIRED:
                attr = "schema_" if name == "schema" else name
                if getattr(self, attr) is None:
                    raise field_error(
                        name, f"required when snowflake.enabled is true (set sinks.snowflake.{name})"
                    )
        return self


class Sinks(SpecModel):
    """Where records land."""

    model_config = model_rules(
        {
            "rule": "!has(self.postgres) || !has(self.postgres.enabled) || self.postgres.enabled"
            " || !has(self.bronze) || !has(self.bronze.enabled) || self.bronze.enabled",
            "message": "at least one of postgres or bronze must be enabled",
        },
        {
            "rule": "!has(self.snowflake) || !has(self.snowflake.enabled) || !self.snowflake.enabled"
            " || !has(self.bronze) || !has(self.bronze.enabled) || self.bronze.enabled",
            "message": "snowflake loads from the bronze table, and sinks.bronze.enabled is false",
            "fieldPath": ".snowflake.enabled",
        },
    )

    postgres: PostgresSink = Field(default_factory=PostgresSink, description="The Postgres upsert sink.")
    bronze: BronzeSink = Field(default_factory=BronzeSink, description="The bronze Delta sink.")
    quarantine: QuarantineSink = Field(
        default_factory=QuarantineSink, description="The quarantine Delta sink."
    )
    snowflake: SnowflakeSink = Field(
        default_factory=SnowflakeSink, description="The Snowflake sink, loaded from bronze (off by default)."
    )

    @model_validator(mode="after")
    def _something_enabled(self) -> Sinks:
        if not (self.postgres.enabled or self.bronze.enabled):
            raise field_error("bronze.enabled", "at least one of postgres or bronze must be enabled")
        if self.snowflake.enabled and not self.bronze.enabled:
            raise field_error(
                "snowflake.enabled",
                "snowflake loads from the bronze table, and sinks.bronze.enabled is false: enable the "
                "bronze sink or disable snowflake",
            )
        return self
