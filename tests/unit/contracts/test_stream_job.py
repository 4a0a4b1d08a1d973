"""StreamJobConfig errors name the setting; the job's CLI exits 2 on them before starting Spark."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from restlake.contracts.spec import parse_source
from restlake.contracts.stream_job import PG_DSN_ENV, StreamJobConfig
from restlake.errors import ConfigError
from restlake.jobs.spark.stream import kafka_options, main, spark_conf_for

BASE = {
    "source": "s",
    "topic": "restlake.s",
    "kafka_bootstrap": "127.0.0.1:1",
    "bronze_path": "/tmp/b",
    "quarantine_path": "/tmp/q",
    "checkpoint_path": "/tmp/c",
}


def write(tmp_path: Path, **changes: object) -> Path:
    data = {**BASE, **changes}
    path = tmp_path / "job.json"
    path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}), encoding="utf-8")
    return path


def test_missing_dsn_names_the_variable_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(PG_DSN_ENV, raising=False)
    path = write(tmp_path)
    with pytest.raises(ConfigError, match=f"pg_dsn is not set in {path} and {PG_DSN_ENV} is not set"):
        StreamJobConfig.from_file(path)
    with caplog.at_level(logging.ERROR):
        assert main(["--config", str(path)]) == 2
    assert PG_DSN_ENV in caplog.text


def test_dsn_from_the_environment_is_used_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = "postgresql://u:hunter2@127.0.0.1:1/db"
    monkeypatch.setenv(PG_DSN_ENV, dsn)
    config = StreamJobConfig.from_file(write(tmp_path))
    assert config.pg_dsn.get_secret_value() == dsn
    assert "hunter2" not in repr(config)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"max_offsets_per_trigger": 0},
            "max_offsets_per_trigger: Input should be greater than or equal to 1",
        ),
        ({"topic_pattern": "restlake\\..*"}, "set exactly one of topic and topic_pattern"),
        ({"pg_table": "Raw.Events"}, "pg_table"),
        ({"quality": {"onViolation": "explode"}}, "quality.onViolation"),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
        (
            {"bronze_enabled": False, "postgres_enabled": False},
            "at least one of bronze_enabled and postgres_enabled must be true",
        ),
        ({"partition_by": []}, "partition_by: Tuple should have at least 1 item"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("\\", "\\\\").replace(".", "\\.")):
        StreamJobConfig.from_file(write(tmp_path, pg_dsn="postgresql://x@127.0.0.1:1/db", **changes))


def test_s3a_paths_bring_the_s3_settings_and_conf_pairs_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESTLAKE_S3_ENDPOINT", "http://127.0.0.1:9")
    local = StreamJobConfig.model_validate({**BASE, "pg_dsn": "postgresql://x@h/db"})
    assert spark_conf_for(local, ["spark.executor.memory=512m"]) == {"spark.executor.memory": "512m"}
    s3 = local.model_copy(update={"bronze_path": "s3a://lake/bronze"})
    conf = spark_conf_for(s3, [])
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:9"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        spark_conf_for(local, ["nonsense"])


def test_the_specs_sink_toggles_and_partition_columns_reach_the_job_and_its_file() -> None:
    source = parse_source(
        {
            "apiVersion": "restlake.io/v1alpha1",
            "kind": "IngestionSource",
            "metadata": {"name": "orders"},
            "spec": {
                "request": {"url": "https://api.example.com/orders"},
                "sinks": {
                    "postgres": {"enabled": False},
                    "quarantine": {"enabled": False},
                    "bronze": {"partitionBy": ["ingest_date"]},
                },
            },
        },
        "test",
    )
    config = StreamJobConfig.for_source(
        source,
        kafka_bootstrap="k:9092",
        topic="restlake.orders",
        lake_root="/lake",
        pg_dsn="postgresql://x@h/db",
    )
    assert (config.bronze_enabled, config.quarantine_enabled, config.postgres_enabled) == (True, False, False)
    assert config.partition_by == ("ingest_date",)
    # spec.stream left out: a 500 ms trigger and batches of 100,000 records at most.
    assert (config.processing_time, config.max_offsets_per_trigger) == ("500 milliseconds", 100_000)
    again = StreamJobConfig.model_validate({**config.job_file(), "pg_dsn": "postgresql://x@h/db"})
    assert again == config


def test_spec_stream_sets_the_trigger_and_the_batch_cap() -> None:
    doc = {
        "apiVersion": "restlake.io/v1alpha1",
        "kind": "IngestionSource",
        "metadata": {"name": "orders"},
        "spec": {
            "request": {"url": "https://api.example.com/orders"},
            "stream": {"trigger": "250ms", "maxRecordsPerBatch": 20000},
        },
    }
    config = StreamJobConfig.for_source(
        parse_source(doc, "test"),
        kafka_bootstrap="k:9092",
        topic="t",
        lake_root="/lake",
        pg_dsn="postgresql://h/d",
    )
    assert (config.processing_time, config.max_offsets_per_trigger) == ("250 milliseconds", 20_000)


def test_kafka_reads_never_wait_out_the_brokers_default_fetch_hold() -> None:
    # 500 ms (Kafka's default) added up to half a second to a micro-batch's first read of the topic.
    options = kafka_options(StreamJobConfig(**BASE, pg_dsn="postgresql://x@127.0.0.1:1/db"))
    assert int(options["kafka.fetch.max.wait.ms"]) <= 50
    assert options["subscribe"] == "restlake.s"
    assert "subscribePattern" not in options
    assert options["failOnDataLoss"] == "true"
    assert "kafka.max.partition.fetch.bytes" not in options


def test_kafka_options_follow_the_config() -> None:
    changes = {
        "topic": None,
        "topic_pattern": "restlake\\.s\\..*",
        "max_message_bytes": 8 * 1024 * 1024,
        "max_offsets_per_trigger": 5_000,
        "fail_on_data_loss": False,
        "pg_dsn": "postgresql://x@127.0.0.1:1/db",
    }
    options = kafka_options(StreamJobConfig(**{**BASE, **changes}))  # type: ignore[arg-type]
    assert options["subscribePattern"] == "restlake\\.s\\..*"
    assert "subscribe" not in options
    assert int(options["kafka.max.partition.fetch.bytes"]) > 8 * 1024 * 1024
    assert options["maxOffsetsPerTrigger"] == "5000"
    assert options["failOnDataLoss"] == "false"
