"""Shared helpers for the stream job's fault, S3 and cluster tests: one source per test, and the job
run in-process (the session's Spark) or as ``python -m restlake.jobs.spark.stream`` in a subprocess.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from restlake.contracts.envelope import Envelope, RequestInfo
from restlake.jobs.spark.stream import StreamJobConfig, StreamSummary, run_until_caught_up
from restlake.kafka_logging import client_config
from restlake.stack.manager import StackEndpoints

LOG = logging.getLogger("tests.kafka")  # librdkafka lines through logging, not fd 2

REPO_ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SCHEMA = {
    "type": "object",
    "required": ["id", "name"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "score": {"type": ["number", "null"]},
        "Is Open": {"type": "boolean"},
        "tags": {"type": "array"},
    },
}
REQUEST = RequestInfo(url="http://127.0.0.1:1/items?page=1", status=200, etag='W/"e1"')


class StreamJob:
    """One source's topic, lake folders and checkpoint, and ways to feed and inspect them."""

    def __init__(
        self,
        stack: StackEndpoints,
        root: str | Path,
        *,
        topic_config: Mapping[str, str] | None = None,
        partitions: int = 3,
        **overrides: Any,
    ) -> None:
        self.stack = stack
        self.source = f"it-{uuid.uuid4().hex[:10]}"
        self.topic = f"restlake.{self.source}"
        self.root = str(root).rstrip("/")
        self.create_topic(self.topic, partitions, topic_config)
        self.producer = Producer(
            client_config(
                {
                    "bootstrap.servers": stack.kafka_bootstrap,
                    "acks": "all",
                    "enable.idempotence": True,
                    "message.max.bytes": 16 * 1024 * 1024,
                },
                LOG,
            )
        )
        self.config = self.config_for("ckpt", **overrides)

    def create_topic(self, topic: str, partitions: int = 3, config: Mapping[str, str] | None = None) -> None:
        admin = AdminClient(client_config({"bootstrap.servers": self.stack.kafka_bootstrap}, LOG))
        new = NewTopic(topic, num_partitions=partitions, replication_factor=1, config=dict(config or {}))
        for future in admin.create_topics([new]).values():
            future.result(timeout=30)

    def config_for(self, checkpoint: str, **overrides: Any) -> StreamJobConfig:
        values: dict[str, Any] = {
            "source": self.source,
            "topic": self.topic,
            "kafka_bootstrap": self.stack.kafka_bootstrap,
            "bronze_path": f"{self.root}/bronze",
            "quarantine_path": f"{self.root}/quarantine",
            "checkpoint_path": f"{self.root}/{checkpoint}",
            "pg_dsn": self.stack.pg_dsn,
            "json_schema": SCHEMA,
        }
        values.update(overrides)
        return StreamJobConfig(**values)

    def envelope(self, ext_id: int, *, name: str, minute: int = 0, **payload: Any) -> Envelope:
        return Envelope.wrap(
            source=self.source,
            payload={"id": ext_id, "name": name, **payload},
            external_id=str(ext_id),
            version=(T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z"),
            request=REQUEST,
            fetched_at=T0 + timedelta(minutes=minute, seconds=1),
        )

    def send(self, *messages: Envelope | tuple[bytes | None, bytes | None], topic: str | None = None) -> None:
        for message in messages:
            if isinstance(message, Envelope):
                key, value = message.kafka_key(), message.kafka_value()
            else:
                key, value = message
            self.producer.produce(topic or self.topic, key=key, value=value)
            self.producer.poll(0)
        assert self.producer.flush(60) == 0

    def run(self, spark: SparkSession, config: StreamJobConfig | None = None) -> StreamSummary:
        return run_until_caught_up(spark, config or self.config)

    def bronze(self, spark: SparkSession) -> list[Any]:
        table = spark.read.format("delta").load(self.config.bronze_path)
        return table.where(f"source = '{self.source}'").collect()

    def quarantine(self, spark: SparkSession) -> list[Any]:
        table = spark.read.format("delta").load(self.config.quarantine_path)
        return table.where(f"source = '{self.source}'").collect()

    def postgres(self) -> dict[str, tuple[str, str, dict[str, Any]]]:
        with psycopg.connect(self.stack.pg_dsn) as conn:
            try:
                rows = conn.execute(
                    "SELECT external_id, version, content_hash, payload FROM raw.api_events"
                    " WHERE source = %s",
                    (self.source,),
                ).fetchall()
            except psycopg.errors.UndefinedTable:
                # A job started as a process creates the table itself: until it did, nothing is merged.
                return {}
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def ledger(self) -> list[tuple[str, int, int, int]]:
        with psycopg.connect(self.stack.pg_dsn) as conn:
            return conn.execute(
                "SELECT query_id, batch_id, rows_in, rows_merged FROM raw.ingest_batches WHERE source = %s"
                " ORDER BY query_id, batch_id",
                (self.source,),
            ).fetchall()

    def claimed_keys(self, spark: SparkSession, *, batch_id: int) -> int:
        """Keys the bronze key ledger says micro-batch ``batch_id`` claimed in this job's table."""
        table_id = DeltaTable.forPath(spark, self.config.bronze_path).detail().select("id").first()
        assert table_id is not None
        with psycopg.connect(self.stack.pg_dsn) as conn:
            row = conn.execute(
                "SELECT count(*) FROM raw.bronze_keys WHERE table_id = %s AND batch_id = %s",
                (table_id[0], batch_id),
            ).fetchone()
        return int(row[0]) if row else 0

    # -- the job as a subprocess ------------------------------------------------------------------
    def write_config(self, path: Path, config: StreamJobConfig | None = None, **drop: bool) -> Path:
        data = json.loads((config or self.config).model_dump_json(by_alias=True))
        data["pg_dsn"] = self.stack.pg_dsn
        for key in drop:
            data.pop(key, None)
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    def start_process(
        self,
        config_file: Path,
        jars: list[Path],
        *,
        log_file: Path,
        env: Mapping[str, str] | None = None,
        args: list[str] | None = None,
    ) -> subprocess.Popen[bytes]:
        full_env = {
            **os.environ,
            "RESTLAKE_SPARK_JARS": os.pathsep.join(str(j) for j in jars),
            "PYSPARK_PYTHON": sys.executable,
            "SPARK_LOCAL_IP": "127.0.0.1",
            **(env or {}),
        }
        argv = [
            sys.executable,
            "-m",
            "restlake.jobs.spark.stream",
            "--config",
            str(config_file),
            *(args or []),
        ]
        with log_file.open("ab") as out:
            return subprocess.Popen(argv, env=full_env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
