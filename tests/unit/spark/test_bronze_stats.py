"""Which bronze columns Delta keeps file statistics for (``bronze.stats_columns``)."""

from __future__ import annotations

from restlake.jobs.spark import bronze
from restlake.jobs.spark.typed_columns import schema_fields, typed_columns


def test_the_payload_its_hash_and_the_structs_have_no_statistics() -> None:
    columns = bronze.stats_columns(bronze.BRONZE_SCHEMA, bronze.PARTITION_COLUMNS)

    assert columns == (
        "external_id",
        "idempotency_key",
        "version",
        "fetched_at",
        "envelope_version",
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
        "ingested_at",
        "batch_id",
    )


def test_typed_columns_are_listed_unless_delta_cannot_skip_on_their_type() -> None:
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "amount": {"type": "number"},
            "open": {"type": "boolean"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    }
    typed = typed_columns(schema)
    table = bronze.bronze_schema(typed)
    assert [f.name for f in schema_fields(typed)] == ["p_amount", "p_id", "p_open", "p_updated_at"]

    columns = bronze.stats_columns(table, bronze.PARTITION_COLUMNS)

    assert columns[-3:] == ("p_amount", "p_id", "p_updated_at")
    assert "p_open" not in columns


def test_partition_columns_are_left_out_whichever_the_spec_chose() -> None:
    columns = bronze.stats_columns(bronze.BRONZE_SCHEMA, ("kafka_topic",))

    assert "kafka_topic" not in columns
    # Not partition columns here, so readers' filters on them skip files by their statistics.
    assert {"source", "ingest_date", "batch_id"} <= set(columns)
    assert not set(columns) & {"payload", "content_hash", "request", "parent"}
