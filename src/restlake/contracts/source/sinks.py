"""``spec.sinks``: where records land (Postgres, the bronze and quarantine Delta tables)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from restlake.contracts import guards
from restlake.contracts.model import SpecModel, field_error, model_rules
from restlake.contracts.patterns import COLUMN, PG_TABLE
from restlake.contracts.problems import short


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


class Sinks(SpecModel):
    """Where records land."""

    model_config = model_rules(
        {
            "rule": "!has(self.postgres) || !has(self.postgres.enabled) || self.postgres.enabled"
            " || !has(self.bronze) || !has(self.bronze.enabled) || self.bronze.enabled",
            "message": "at least one of postgres or bronze must be enabled",
        }
    )

    postgres: PostgresSink = Field(default_factory=PostgresSink, description="The Postgres upsert sink.")
    bronze: BronzeSink = Field(default_factory=BronzeSink, description="The bronze Delta sink.")
    quarantine: QuarantineSink = Field(
        default_factory=QuarantineSink, description="The quarantine Delta sink."
    )

    @model_validator(mode="after")
    def _something_enabled(self) -> Sinks:
        if not (self.postgres.enabled or self.bronze.enabled):
            raise field_error("bronze.enabled", "at least one of postgres or bronze must be enabled")
        return self
