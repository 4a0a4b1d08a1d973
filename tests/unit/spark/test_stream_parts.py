"""Pure parts of the stream job: typed columns, expectation names, Kafka lag, the fault hook, SigV4."""

from __future__ import annotations

from datetime import UTC, datetime

from pyspark.sql import types as T

from restlake.contracts.source.quality import expectation_name
from restlake.contracts.spec import Quality
from restlake.jobs.spark import faults
from restlake.jobs.spark.metrics import kafka_lag
from restlake.jobs.spark.typed_columns import typed_columns
from restlake.settings import S3Settings
from restlake.stack.minio import sigv4_headers


def test_typed_columns_follow_the_schemas_scalar_properties() -> None:
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "Is Open": {"type": "boolean"},
            "score": {"type": ["number", "null"]},
            "name": {"type": "string", "format": "date-time"},
            "tags": {"type": "array"},
            "either": {"type": ["string", "integer"]},
            "is_open": {"type": "string"},  # collides with "Is Open" → p_is_open; sorted first wins
            "untyped": {},
        },
    }
    columns = [(c.column, c.property, c.data_type) for c in typed_columns(schema)]
    assert columns == [
        ("p_id", "id", T.LongType()),
        ("p_is_open", "Is Open", T.BooleanType()),
        ("p_name", "name", T.StringType()),
        ("p_score", "score", T.DoubleType()),
    ]
    assert typed_columns(None) == [] and typed_columns({"type": "object"}) == []


def test_expectation_names_default_to_type_and_field() -> None:
    quality = Quality.model_validate(
        {
            "expectations": [
                {"type": "notNull", "field": "a.b"},
                {"type": "unique", "fields": ["x", "y"]},
                {"type": "range", "field": "n", "min": 1, "name": "positive"},
            ]
        }
    )
    assert [expectation_name(e) for e in quality.expectations] == ["notNull:a.b", "unique:x,y", "positive"]


def test_kafka_lag_per_partition_from_progress_offsets() -> None:
    end = '{"t": {"0": 10, "1": 5}}'
    latest = {"t": {"0": 12, "1": 5, "2": 3}}
    assert kafka_lag(end, latest) == {("t", "0"): 2, ("t", "1"): 0, ("t", "2"): 3}
    # A progress without a latest offset (first batch of a restarted query): lag unknown, no error.
    assert kafka_lag(end, "") == {}
    assert kafka_lag("", None) == {}
    assert kafka_lag(None, None) == {}


def test_fault_hook_is_inert_unless_set(monkeypatch) -> None:
    killed: list[int] = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: killed.append(sig))
    monkeypatch.delenv(faults.KILL_AFTER_BRONZE_ENV, raising=False)
    faults.after_bronze_write(0)
    monkeypatch.setenv(faults.KILL_AFTER_BRONZE_ENV, "3")
    faults.after_bronze_write(2)
    assert killed == []
    faults.after_bronze_write(3)
    assert len(killed) == 1


def test_sigv4_headers_have_the_expected_shape() -> None:
    # Recomputed independently; guards against accidental changes to the canonical request.
    settings = S3Settings(access_key="AKIDEXAMPLE", secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    headers = sigv4_headers(
        settings, "PUT", "/bucket", "127.0.0.1:9000", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    )
    assert headers["x-amz-date"] == "20240102T030405Z"
    assert headers["Authorization"].startswith(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240102/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="
    )
    assert "wJalr" not in repr(settings)


def test_a_fresh_source_exports_its_counters_at_zero_per_op_and_expectation() -> None:
    from prometheus_client import REGISTRY

    from restlake.jobs.spark.metrics import init_source

    quality = Quality.model_validate(
        {"expectations": [{"type": "notNull", "field": "a"}, {"type": "range", "field": "n", "min": 1}]}
    )
    init_source("fresh-source", quality)
    value = REGISTRY.get_sample_value
    for name in (
        "restlake_stream_rows_read_total",
        "restlake_stream_rows_quarantined_total",
        "restlake_stream_bronze_rows_written_total",
        "restlake_stream_batches_total",
        "restlake_stream_replayed_batches_total",
        "restlake_stream_batch_duration_seconds_count",
    ):
        assert value(name, {"source": "fresh-source"}) == 0.0, name
    for op in ("inserted", "updated"):
        assert value("restlake_stream_rows_merged_total", {"source": "fresh-source", "op": op}) == 0.0
    for name in ("restlake_stream_expectation_violations_total", "restlake_stream_rows_dropped_total"):
        for expectation in ("notNull:a", "range:n"):
            assert value(name, {"source": "fresh-source", "expectation": expectation}) == 0.0
    # Gauges wait for a batch or a progress event: 0 would claim batch 0 committed or no lag.
    assert value("restlake_stream_last_committed_batch_id", {"source": "fresh-source"}) is None
    init_source("no-quality", None)
    assert value("restlake_stream_batches_total", {"source": "no-quality"}) == 0.0
