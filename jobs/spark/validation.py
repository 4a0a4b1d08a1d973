"""Split a micro-batch of Kafka records into valid envelopes and quarantined ones, with a reason.

Reasons are stable codes a dashboard can group by: ``empty_value``, ``malformed_envelope`` (not a
JSON object, or a field of the wrong type), ``unsupported_envelope_version``,
``missing_field:<name>``, ``source_mismatch``, and ``schema_violation: <json path>: <message>``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from restlake.contracts.envelope import ENVELOPE_VERSION
from restlake.jobs.spark.envelope_schema import (
    CORRUPT_COLUMN,
    ENVELOPE_SCHEMA,
    FROM_JSON_OPTIONS,
    REQUIRED_FIELDS,
)

REASON = "reason"
# A schema violation message is for people; cap it so one huge payload cannot bloat quarantine.
_MAX_REASON_CHARS = 500


def payload_checker(json_schema: dict[str, Any]) -> Callable[[Column], Column]:
    """A pandas UDF: payload JSON text → None when it satisfies ``json_schema``, else why not.

    The closure imports what it needs and captures only the schema text, so it is pickled by
    value and runs on executors that have jsonschema but not necessarily restlake.
    """
    schema_text = json.dumps(json_schema)

    @F.pandas_udf(T.StringType())  # type: ignore[call-overload]
    def check(payloads: pd.Series) -> pd.Series:
        import json as json_

        from jsonschema.exceptions import best_match
        from jsonschema.validators import validator_for

        schema = json_.loads(schema_text)
        validator = validator_for(schema)(schema)

        def one(text: str | None) -> str | None:
            if text is None:
                return None
            try:
                document = json_.loads(text)
            except ValueError:
                return "schema_violation: $: payload is not JSON"
            error = best_match(validator.iter_errors(document))
            if error is None:
                return None
            return f"schema_violation: {error.json_path}: {error.message}"[:_MAX_REASON_CHARS]

        return payloads.map(one)

    return check


def parse(kafka_df: DataFrame) -> DataFrame:
    """Kafka rows → envelope columns plus the Kafka coordinates, payload as JSON text."""
    env = F.from_json(F.col("value").cast("string"), ENVELOPE_SCHEMA, FROM_JSON_OPTIONS)
    parsed = kafka_df.select(
        F.col("key").cast("string").alias("kafka_key"),
        F.col("value").alias("raw_value"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        env.alias("env"),
    )
    return parsed.select(
        "*",
        *[F.col(f"env.{f.name}").alias(f.name) for f in ENVELOPE_SCHEMA.fields if f.name != "payload"],
        # to_json of the VARIANT keeps bare strings quoted; an explicit JSON null stays "null".
        F.to_json(F.col("env.payload")).alias("payload"),
    ).drop("env")


def validate(kafka_df: DataFrame, *, source: str, json_schema: dict[str, Any] | None) -> DataFrame:
    """``parse`` plus a ``reason`` column: NULL for a valid record, else why it is quarantined."""
    parsed = parse(kafka_df)
    reason: Any = F.when(F.col("raw_value").isNull(), F.lit("empty_value")).when(
        F.col(CORRUPT_COLUMN).isNotNull(), F.lit("malformed_envelope")
    )
    reason = reason.when(F.col("envelope_version") > ENVELOPE_VERSION, F.lit("unsupported_envelope_version"))
    for name in REQUIRED_FIELDS:
        column = F.col(name)
        missing = column.isNull() if name == "fetched_at" else column.isNull() | (F.trim(column) == "")
        reason = reason.when(missing, F.lit(f"missing_field:{name}"))
    reason = reason.when(F.col("source") != F.lit(source), F.lit("source_mismatch"))
    with_reason = parsed.withColumn(REASON, reason)
    if json_schema is None:
        return with_reason
    check = payload_checker(json_schema)
    # Spark evaluates a Python UDF for every row whatever guards it, so the check sees envelopes
    # already rejected too; coalesce keeps their first reason.
    return with_reason.withColumn(REASON, F.coalesce(F.col(REASON), check(F.col("payload"))))
