"""What one stream job (one source, one query) needs to run: the operator renders it, the driver reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from restlake.contracts.source.quality import Quality
from restlake.contracts.source.stream import DEFAULT_MAX_RECORDS_PER_BATCH, DEFAULT_TRIGGER, spark_interval
from restlake.contracts.spec import IngestionSource
from restlake.errors import ConfigError
from restlake.postgres.identifiers import TableName
from restlake.settings import ExternalEndpoints, PostgresSettings

PG_DSN_ENV = "RESTLAKE_PG_DSN"
# Kafka's own default cap on a record (message.max.bytes, 1 MiB): a bigger value means a topic
# someone reconfigured on purpose or a runaway API response; either way it should not reach
# Postgres as one jsonb row or be held in the driver while merging.
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
# Bounded by default: a first run (or a catch-up after downtime) over a large topic would read
# everything as one batch, and 1M records of 1 KB do not fit a local driver's heap.


class StreamJobConfig(BaseModel):
    """One source's stream: Kafka topic (or topic pattern) in; bronze, quarantine and Postgres out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = Field(min_length=1, description="IngestionSource name; every record must carry it.")
    topic: str | None = Field(
        None, min_length=1, description="Kafka topic the fetcher publishes the source to (or topic_pattern)."
    )
    topic_pattern: str | None = Field(
        None,
        min_length=1,
        description="Java regex of topics to read (Kafka subscribePattern) instead of one topic; topics "
        "created later that match are picked up at the consumer's next metadata refresh.",
    )
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
    bronze_enabled: bool = Field(True, description="Append valid record versions to the bronze table.")
    quarantine_enabled: bool = Field(
        True, description="Write rejected records to the quarantine table; off, they are counted and logged."
    )
    postgres_enabled: bool = Field(True, description="Upsert valid records into pg_table.")
    partition_by: tuple[str, ...] = Field(
        ("source", "ingest_date"),
        min_length=1,
        description="Partition columns of a bronze table this job creates (spec.sinks.bronze.partitionBy).",
    )
    json_schema: dict[str, Any] | None = Field(
        None,
        description="JSON Schema every payload must satisfy; None checks only the envelope. Its top-level "
        "scalar properties also become typed bronze columns p_<name>.",
    )
    quality: Quality | None = Field(
        None, description="The spec's quality block: expectations checked on every micro-batch."
    )
    max_offsets_per_trigger: int | None = Field(
        DEFAULT_MAX_RECORDS_PER_BATCH,
        ge=1,
        description="Upper bound of records per micro-batch; None reads all that is available.",
    )
    starting_offsets: str = Field(
        "earliest", description="Where a new checkpoint starts: earliest, latest or a Kafka offsets JSON."
    )
    fail_on_data_loss: bool = Field(
        True,
        description="Stop the query when offsets it has not read yet are gone (retention, a recreated "
        "topic) instead of skipping them: skipped records would be lost without a trace.",
    )
    max_message_bytes: int = Field(
        DEFAULT_MAX_MESSAGE_BYTES,
        ge=1024,
        description="Kafka values larger than this many bytes are quarantined as too_large (raw value "
        "truncated to this size) instead of parsed; default 1 MiB, Kafka's own default record cap.",
    )
    available_now: bool = Field(
        False, description="Process what is in the topic now (in batches) and stop, instead of running on."
    )
    processing_time: str = Field(
        spark_interval(DEFAULT_TRIGGER),
        description="Trigger interval when not available_now (spec.stream.trigger), as Spark reads it.",
    )
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Serve Prometheus metrics on this port (0: any free port); None serves none.",
    )
    metrics_address: str = Field(
        "127.0.0.1", description="Address the metrics server binds; 0.0.0.0 in a pod so it can be scraped."
    )

    @field_validator("pg_table")
    @classmethod
    def _table_name(cls, value: str) -> str:
        TableName.parse(value, field="pg_table")
        return value

    @model_validator(mode="after")
    def _one_subscription(self) -> StreamJobConfig:
        if (self.topic is None) == (self.topic_pattern is None):
            raise ValueError("set exactly one of topic and topic_pattern")
        return self

    @model_validator(mode="after")
    def _one_sink(self) -> StreamJobConfig:
        if not (self.bronze_enabled or self.postgres_enabled):
            raise ValueError("at least one of bronze_enabled and postgres_enabled must be true")
        return self

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

    @classmethod
    def for_source(
        cls,
        source: IngestionSource,
        *,
        kafka_bootstrap: str,
        topic: str,
        lake_root: str,
        pg_dsn: str | SecretStr | None = None,
        checkpoint_path: str | None = None,
        **options: Any,
    ) -> StreamJobConfig:
        """The one place a source's spec becomes a stream job config: ``restlake run``, the operator's
        ``stream.json`` and the backfill all come through here, so none of them can drop a part of the
        spec (the schema, the quality gate) that the others keep."""
        schema = source.spec.schema_
        sinks = source.spec.sinks
        values: dict[str, Any] = {
            "source": source.identity,
            "topic": topic,
            "kafka_bootstrap": kafka_bootstrap,
            "bronze_path": source.bronze_path(lake_root),
            "quarantine_path": source.quarantine_path(lake_root),
            "checkpoint_path": checkpoint_path or source.checkpoint_path(lake_root),
            "pg_table": sinks.postgres.table,
            "bronze_enabled": sinks.bronze.enabled,
            "quarantine_enabled": sinks.quarantine.enabled,
            "postgres_enabled": sinks.postgres.enabled,
            "partition_by": tuple(sinks.bronze.partition_by),
            "json_schema": schema.json_schema if schema else None,
            "quality": source.spec.quality,
            "processing_time": spark_interval(source.spec.stream.trigger),
            "max_offsets_per_trigger": source.spec.stream.max_records_per_batch,
            **options,
        }
        if pg_dsn is not None:
            values["pg_dsn"] = pg_dsn
        return cls(**values)

    def job_file(self) -> dict[str, Any]:
        """The JSON a deployed job reads with ``from_file``, without the DSN (from the pod's environment)."""
        return self.model_dump(mode="json", by_alias=True, exclude={"pg_dsn"}, exclude_none=True)

    @property
    def table(self) -> TableName:
        return TableName.parse(self.pg_table, field="pg_table")

    @property
    def subscription(self) -> str:
        """The topic, or the pattern, for log lines."""
        return self.topic or f"pattern:{self.topic_pattern}"

    @classmethod
    def from_file(cls, path: Path, given: ExternalEndpoints | None = None) -> StreamJobConfig:
        """Read a JSON config; every problem is a ConfigError that names the setting and the file.

        A config without ``pg_dsn`` takes RESTLAKE_PG_DSN (``given``, read from the environment
        when None).
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"stream job config {path}: cannot read it ({exc.strerror})") from None
        except ValueError as exc:
            raise ConfigError(f"stream job config {path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"stream job config {path}: expected a JSON object, got {type(data).__name__}")
        if not data.get("pg_dsn"):
            # PostgresSettings has a loopback default for local runs; a deployed job silently
            # writing to whatever listens on 127.0.0.1:5432 is worse than refusing to start.
            dsn = (given if given is not None else ExternalEndpoints()).pg_dsn
            if dsn is None or not dsn.get_secret_value():
                raise ConfigError(
                    f"no Postgres DSN: pg_dsn is not set in {path} and {PG_DSN_ENV} is not set in the "
                    "environment; set one of them to a libpq URI"
                )
            data["pg_dsn"] = dsn
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(config)'}: {err['msg']}" for err in exc.errors()
            )
            raise ConfigError(f"stream job config {path}: {problems}") from None
