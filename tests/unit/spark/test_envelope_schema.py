"""The stream job's explicit Spark schema of the envelope must follow the pydantic Envelope."""

from __future__ import annotations

from pyspark.sql import types as T

from restlake.contracts.envelope import Envelope, RequestInfo
from restlake.jobs.spark import bronze
from restlake.jobs.spark.envelope_schema import (
    CORRUPT_COLUMN,
    ENVELOPE_SCHEMA,
    REQUEST_SCHEMA,
    REQUIRED_FIELDS,
)


def test_every_envelope_field_has_a_column_and_nothing_else() -> None:
    columns = set(ENVELOPE_SCHEMA.fieldNames()) - {CORRUPT_COLUMN}
    assert columns == set(Envelope.model_fields)


def test_every_request_field_has_a_column_and_nothing_else() -> None:
    assert set(REQUEST_SCHEMA.fieldNames()) == set(RequestInfo.model_fields)
    assert ENVELOPE_SCHEMA["request"].dataType == REQUEST_SCHEMA


def test_payload_is_variant_and_timestamps_are_typed() -> None:
    # VARIANT, not STRING: a bare JSON string payload must come back quoted (see envelope_schema).
    assert isinstance(ENVELOPE_SCHEMA["payload"].dataType, T.VariantType)
    assert isinstance(ENVELOPE_SCHEMA["fetched_at"].dataType, T.TimestampType)
    assert isinstance(ENVELOPE_SCHEMA["envelope_version"].dataType, T.IntegerType)


def test_required_fields_are_the_envelopes_required_fields() -> None:
    required = {name for name, f in Envelope.model_fields.items() if f.is_required()}
    # request is required by the model but a record is still routable without it.
    assert set(REQUIRED_FIELDS) == required - {"request"}


def test_bronze_keeps_every_envelope_field() -> None:
    bronze_columns = set(bronze.BRONZE_SCHEMA.fieldNames())
    assert set(Envelope.model_fields) <= bronze_columns
    assert {"kafka_topic", "kafka_partition", "kafka_offset", "batch_id", "ingest_date"} <= bronze_columns
