"""What one stream job (one source, one query) needs to run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from restlake.postgres.identifiers import TableName
from restlake.settings import PostgresSettings


class StreamJobConfig(BaseModel):
    """One source's stream: Kafka topic in; bronze, quarantine and Postgres out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(min_length=1, description="IngestionSource name; every record must carry it.")
    topic: str = Field(min_length=1, description="Kafka topic the fetcher publishes the source to.")
    kafka_bootstrap: str = Field(min_length=1, description="Comma-separated host:port list of brokers.")
    bronze_path: str = Field(description="Delta table (local path or s3a:// URI) of every record version.")
    quarantine_path: str = Field(description="Delta table of records that failed validation, with a reason.")
    checkpoint_path: str = Field(
        description="Streaming checkpoint; its query id keys the Delta txnAppId and the Postgres ledger."
    )
    pg_dsn: SecretStr = Field(
        default_factory=lambda: PostgresSettings().dsn,
        description="libpq URI of the Postgres that holds pg_table (defaults to RESTLAKE_PG_DSN).",
    )
    pg_table: str = Field("raw.api_events", description="schema.table the records are upserted into.")
    json_schema: dict[str, Any] | None = Field(
        None, description="JSON Schema every payload must satisfy; None checks only the envelope."
    )
    max_offsets_per_trigger: int | None = Field(
        None, ge=1, description="Upper bound of records per micro-batch; None reads all that is available."
    )
    starting_offsets: str = Field(
        "earliest", description="Where a new checkpoint starts: earliest, latest or a Kafka offsets JSON."
    )
    available_now: bool = Field(
        False, description="Process what is in the topic now (in batches) and stop, instead of running on."
    )
    processing_time: str = Field("10 seconds", description="Trigger interval when not available_now.")

    @field_validator("pg_table")
    @classmethod
    def _table_name(cls, value: str) -> str:
        TableName.parse(value, field="pg_table")
        return value

    @model_validator(mode="after")
    def _schema_is_valid(self) -> StreamJobConfig:
        if self.json_schema is not None:
            from jsonschema.exceptions import SchemaError
            from jsonschema.validators import validator_for

            try:
                validator_for(self.json_schema).check_schema(self.json_schema)
            except SchemaError as exc:
                raise ValueError(f"json_schema is not a valid JSON Schema: {exc.message}") from None
        return self

    @property
    def table(self) -> TableName:
        return TableName.parse(self.pg_table, field="pg_table")

    @classmethod
    def from_file(cls, path: Path) -> StreamJobConfig:
        return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
