"""The local stack against real processes: a KRaft broker and Postgres 16 on loopback."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from typer.testing import CliRunner

from restlake.cli.main import app
from restlake.kafka_logging import client_config
from restlake.stack import process
from restlake.stack.manager import LocalStack, StackEndpoints
from restlake.stack.state import port_is_listening

pytestmark = pytest.mark.integration
LOG = logging.getLogger("tests.kafka")  # librdkafka lines through logging, not fd 2


def _produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> None:
    producer = Producer(
        client_config({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True}, LOG)
    )
    errors: list[KafkaError] = []
    producer.produce(
        topic, key=key, value=value, on_delivery=lambda err, _msg: errors.append(err) if err else None
    )
    assert producer.flush(30) == 0
    assert errors == []


def _consume_all(
    bootstrap: str, topic: str, expected: int, timeout: float = 60.0
) -> list[tuple[bytes, bytes]]:
    consumer = Consumer(
        client_config(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"test-{uuid.uuid4().hex}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            },
            LOG,
        )
    )
    got: list[tuple[bytes, bytes]] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(got) < expected and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                # The topic is auto-created on first produce; a consumer may see it appear late.
                if msg.error().code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue
                raise AssertionError(f"consumer error: {msg.error()}")
            got.append((msg.key(), msg.value()))
    finally:
        consumer.close()
    return got


def test_kafka_produce_and_consume_a_message(stack: StackEndpoints) -> None:
    topic = f"restlake.test-{uuid.uuid4().hex[:8]}"
    _produce(stack.kafka_bootstrap, topic, b"src/1/abc", b'{"id": 1}')
    assert _consume_all(stack.kafka_bootstrap, topic, expected=1) == [(b"src/1/abc", b'{"id": 1}')]


def test_postgres_sql_round_trip_over_tcp(stack: StackEndpoints) -> None:
    assert stack.pg_dsn.startswith("postgresql://postgres@127.0.0.1:")
    port = int(stack.pg_dsn.rsplit(":", 1)[1].split("/")[0])
    with psycopg.connect(stack.pg_dsn, autocommit=True) as conn:
        version = conn.execute("show server_version_num").fetchone()
        addr = conn.execute("select host(inet_server_addr()), inet_server_port()").fetchone()
        conn.execute("create table if not exists rt (id int primary key, payload jsonb not null)")
        conn.execute("truncate rt")
        conn.execute("insert into rt values (1, %s::jsonb), (2, %s::jsonb)", ('{"a": 1}', '{"b": 2}'))
        rows = conn.execute("select id, payload from rt order by id").fetchall()
        fsync = conn.execute("show fsync").fetchone()
    assert version is not None and version[0].startswith("16")
    # inet_server_addr() is NULL over a unix socket: this proves the DSN goes over TCP.
    assert addr == ("127.0.0.1", port)
    assert rows == [(1, {"a": 1}), (2, {"b": 2})]
    assert fsync == ("on",)


def test_up_twice_is_idempotent(local_stack: LocalStack, stack: StackEndpoints) -> None:
    before = local_stack.status()
    again = local_stack.up()
    after = local_stack.status()
    assert again == stack
    assert {n: (s.pid, s.port, s.running) for n, s in after.items()} == {
        n: (s.pid, s.port, s.running) for n, s in before.items()
    }
    assert all(s.running for s in after.values())


def test_env_prints_exact_lines(local_stack: LocalStack, stack: StackEndpoints) -> None:
    result = CliRunner().invoke(app, ["stack", "env", "--state-dir", str(local_stack.paths.root)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"export RESTLAKE_KAFKA_BOOTSTRAP={stack.kafka_bootstrap}",
        f"export RESTLAKE_PG_DSN={stack.pg_dsn}",
        f"export RESTLAKE_LAKE_ROOT={local_stack.paths.lake}",
    ]
    dotenv = CliRunner().invoke(
        app, ["stack", "env", "--format", "dotenv", "--state-dir", str(local_stack.paths.root)]
    )
    assert dotenv.stdout.splitlines() == [line.removeprefix("export ") for line in result.stdout.splitlines()]
    assert stack.lake_root == str(local_stack.paths.lake)
    assert Path(stack.lake_root).is_dir()


def test_env_fails_when_stack_is_not_up(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["stack", "env", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "the stack is not up" in result.stderr
    assert "run `restlake stack up`" in result.stderr


def test_sigkilled_broker_is_detected_and_restarts_on_same_port_with_data(
    local_stack: LocalStack, stack: StackEndpoints
) -> None:
    topic = f"restlake.fault-{uuid.uuid4().hex[:8]}"
    _produce(stack.kafka_bootstrap, topic, b"k", b"before-crash")
    old = local_stack.status()["kafka"]
    assert old.running and old.pid is not None

    local_stack.stop_service("kafka", kill=True)

    crashed = local_stack.status()["kafka"]
    assert (crashed.running, crashed.pid, crashed.port) == (False, None, old.port)
    assert not process.is_alive(old.pid)
    assert not port_is_listening(old.port or 0)

    local_stack.start_service("kafka")

    back = local_stack.status()["kafka"]
    assert back.running and back.port == old.port and back.pid not in (None, old.pid)
    assert local_stack.endpoints() == stack
    assert _consume_all(stack.kafka_bootstrap, topic, expected=1) == [(b"k", b"before-crash")]


def test_sigkilled_postgres_recovers_committed_rows(local_stack: LocalStack, stack: StackEndpoints) -> None:
    with psycopg.connect(stack.pg_dsn, autocommit=True) as conn:
        conn.execute("create table if not exists crash_rt (id int primary key)")
        conn.execute("truncate crash_rt")
        conn.execute("insert into crash_rt select generate_series(1, 100)")
    old = local_stack.status()["postgres"]

    local_stack.stop_service("postgres", kill=True)
    assert local_stack.status()["postgres"].running is False

    local_stack.start_service("postgres")

    back = local_stack.status()["postgres"]
    assert back.running and back.port == old.port and back.pid != old.pid
    with psycopg.connect(stack.pg_dsn) as conn:
        assert conn.execute("select count(*), sum(id) from crash_rt").fetchone() == (100, 5050)


def test_stale_pid_files_are_cleaned_up_without_touching_strangers(
    local_stack: LocalStack, stack: StackEndpoints
) -> None:
    # A live process that is not ours, whose pid a crashed run might have left behind.
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        local_stack.stop_service("postgres", kill=True)
        local_stack.stop_service("kafka", kill=True)
        pg_home = local_stack.paths.postgres
        # SIGKILL leaves postmaster.pid behind; point it, and both pid files, at the stranger.
        postmaster_pid = pg_home / "data" / "postmaster.pid"
        lines = postmaster_pid.read_text().splitlines()
        postmaster_pid.write_text("\n".join([str(stranger.pid), *lines[1:]]) + "\n")
        (pg_home / "postgres.pid").write_text(f"{stranger.pid}\n")
        kafka_pid_file = local_stack.paths.kafka / "kafka.pid"
        kafka_pid_file.write_text(f"{stranger.pid}\n")

        statuses = local_stack.status()
        assert {n: (s.running, s.pid) for n, s in statuses.items()} == {
            "kafka": (False, None),
            "postgres": (False, None),
        }
        assert not kafka_pid_file.exists()

        endpoints = local_stack.up()

        assert endpoints == stack
        assert stranger.poll() is None, "the stranger process must not be signalled"
        assert all(s.running for s in local_stack.status().values())
        with psycopg.connect(stack.pg_dsn) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    finally:
        stranger.kill()
        stranger.wait()
        # Leave a healthy stack for whichever test runs next.
        local_stack.up()


_SPARK_PROBE = """
import json, sys
from pathlib import Path
from pyspark.sql import SparkSession
from restlake.stack.jars import spark_jars

state_dir, bootstrap, topic, jdbc_url, table = sys.argv[1:6]
spark = (
    SparkSession.builder.master("local[1]")
    .config("spark.jars", ",".join(str(p) for p in spark_jars(Path(state_dir))))
    .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
    .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
    .config("spark.ui.enabled", "false")
    .config("spark.sql.shuffle.partitions", "1")
    .getOrCreate()
)
stream = (
    spark.readStream.format("kafka")
    .option("kafka.bootstrap.servers", bootstrap)
    .option("subscribe", topic)
    .load()
)
batch = (
    spark.read.format("kafka")
    .option("kafka.bootstrap.servers", bootstrap)
    .option("subscribe", topic)
    .option("startingOffsets", "earliest")
    .load()
)
values = sorted(r.value.decode() for r in batch.select("value").collect())
rows = spark.createDataFrame([(1, "a"), (2, "b")], "id int, v string")
rows.write.format("delta").mode("overwrite").save(table)
delta_rows = sorted(tuple(r) for r in spark.read.format("delta").load(table).collect())
# The driver class must be named: DriverManager cannot see jars added through spark.jars.
jdbc = (
    spark.read.format("jdbc")
    .option("url", jdbc_url)
    .option("driver", "org.postgresql.Driver")
    .option("query", "select 42 as answer")
    .load()
    .collect()
)
print(json.dumps({
    "streaming": stream.isStreaming,
    "kafka_values": values,
    "delta_rows": delta_rows,
    "jdbc": [r.answer for r in jdbc],
}))
spark.stop()
"""


def test_spark_jars_load_kafka_source_delta_and_jdbc(local_stack: LocalStack, stack: StackEndpoints) -> None:
    topic = f"restlake.spark-{uuid.uuid4().hex[:8]}"
    _produce(stack.kafka_bootstrap, topic, b"k", b"from-kafka")
    host_port = stack.pg_dsn.split("@", 1)[1].split("/", 1)[0]
    jdbc_url = f"jdbc:postgresql://{host_port}/postgres?user=postgres"
    table = str(Path(stack.lake_root) / "probe")
    # A child process: a SparkSession here would leak its config into other tests' sessions.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _SPARK_PROBE,
            str(local_stack.paths.root),
            stack.kafka_bootstrap,
            topic,
            jdbc_url,
            table,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"},
    )
    causes = [line for line in result.stderr.splitlines() if "Error" in line or "Exception" in line]
    assert result.returncode == 0, "\n".join(causes[:20]) or result.stderr[-4000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "streaming": True,
        "kafka_values": ["from-kafka"],
        "delta_rows": [[1, "a"], [2, "b"]],
        "jdbc": [42],
    }
