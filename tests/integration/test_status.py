"""`restlake status` against the real local stack after a run, a rerun and a quarantine, exact in
every column; a fetch without a stream (lag), a source never fetched (stale), a Kafka that is down."""

from __future__ import annotations

import json
import socket
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from typer.testing import CliRunner

from restlake.cli.main import app
from restlake.contracts.spec import parse_source
from restlake.demoapi.config import DemoApiConfig
from restlake.demoapi.dataset import DatasetConfig
from restlake.demoapi.handle import running_demo_api
from restlake.runtime.local import LocalRunner

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
N = 120
QUARANTINED = 10  # ids above 110 break the schema's maximum


def _document(example: str, base_url: str, name: str, **spec: Any) -> dict[str, Any]:
    doc = yaml.safe_load((EXAMPLES / f"{example}.yaml").read_text())
    doc["metadata"]["name"] = name
    path = doc["spec"]["request"]["url"].split("/v1/", 1)[1]
    doc["spec"]["request"]["url"] = f"{base_url}/v1/{path}"
    doc["spec"]["rateLimit"] = {"requestsPerSecond": 200, "burst": 50}
    doc["spec"].pop("quality", None)
    doc["spec"].update(spec)
    return doc


def _status(stack: Any, *args: str, kafka: str | None = None) -> tuple[int, dict[str, Any]]:
    env = {
        "RESTLAKE_KAFKA_BOOTSTRAP": kafka or stack.kafka_bootstrap,
        "RESTLAKE_PG_DSN": stack.pg_dsn,
        "RESTLAKE_LAKE_ROOT": stack.lake_root,
    }
    result = CliRunner().invoke(app, ["status", "--json", *args], env=env)
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def _delta_version(spark: Any, path: str) -> int:
    return spark.sql(f"DESCRIBE HISTORY delta.`{path}`").agg({"version": "max"}).first()[0]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_status_after_a_run_a_rerun_and_a_quarantine(stack, spark, spark_jars, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    linked, fetched_only, never = f"status-{suffix}", f"status-lag-{suffix}", f"status-never-{suffix}"
    config = DemoApiConfig(dataset=DatasetConfig(seed=21, initial_records=N, growth_per_tick=0))
    with running_demo_api(config) as api:
        doc = _document("demo-link", api.base_url, linked)
        doc["spec"]["schema"]["jsonSchema"]["properties"]["id"] = {
            "type": "integer",
            "maximum": N - QUARANTINED,
        }
        spec_file = tmp_path / "source.yaml"
        spec_file.write_text(yaml.safe_dump(doc))
        source = parse_source(doc, str(spec_file))
        runner = LocalRunner(source, stack, jars=spark_jars, spark=spark)
        started = datetime.now(UTC)
        first = runner.run_until_caught_up()
        assert (first.fetch.records, first.fetch.requests, first.fetch.pages) == (N, 3, 3)  # 50, 50, 20
        assert (first.postgres_rows, first.bronze_rows, first.quarantined) == (110, 110, 10)
        rerun = runner.run_until_caught_up()  # every page answers 304: nothing new anywhere
        assert (rerun.fetch.requests, rerun.fetch.not_modified, rerun.fetch.records) == (3, 3, 0)
        finished = datetime.now(UTC)

        # A second source fetched incrementally but never streamed: its records wait in Kafka.
        incremental = {"param": "since", "cursorPath": "$.updated_at"}
        lagging = parse_source(
            _document("demo-cursor", api.base_url, fetched_only, incremental=incremental), "test"
        )
        lag_runner = LocalRunner(lagging, stack, jars=spark_jars, spark=spark)
        lag_runner.prepare()
        lag_pass = lag_runner.fetch_once()
        assert lag_pass.complete and lag_pass.produced == N
        watermark = max(r["updated_at"] for r in api.dataset().snapshot())

    code, document = _status(stack, "-f", str(spec_file), fetched_only, "--max-staleness", "1h")
    assert code == 0, document
    at = datetime.fromisoformat(document["at"])
    by_name = {row["source"]: row for row in document["sources"]}
    row = by_name[linked]
    with psycopg.connect(stack.pg_dsn) as conn:
        ledger_at = conn.execute(
            "SELECT committed_at FROM raw.ingest_batches WHERE source = %s AND batch_id = 0", (linked,)
        ).fetchone()[0]
    assert started <= ledger_at <= finished
    for name in ("last_fetch_at", "last_complete_fetch_at"):
        assert started <= datetime.fromisoformat(row.pop(name)) <= finished
    assert row == {
        "source": linked,
        "last_fetch_outcome": "complete",
        "last_fetch_error": None,
        "requests": 3,
        "not_modified": 3,
        "not_modified_share": 1.0,
        "watermark": None,
        "watermark_age_seconds": None,
        "kafka_end_offset": N,
        "kafka_committed_offset": N,
        "kafka_lag": 0,
        "last_batch_id": 0,  # one micro-batch took all 120; the rerun had nothing to commit
        "last_batch_at": ledger_at.isoformat(),
        "postgres_rows": 110,
        "bronze_version": _delta_version(spark, source.bronze_path(stack.lake_root)),
        "bronze_rows": 110,
        "quarantined": QUARANTINED,
        "dead_letters": 0,
        "stale": False,
        "unavailable": {},
    }

    lag_row = by_name[fetched_only]
    lag_row.pop("last_fetch_at"), lag_row.pop("last_complete_fetch_at")
    expected_age = (at - datetime.fromisoformat(watermark.replace("Z", "+00:00"))).total_seconds()
    assert lag_row.pop("watermark_age_seconds") == pytest.approx(expected_age, abs=0.001)
    assert lag_row == {
        "source": fetched_only,
        "last_fetch_outcome": "complete",
        "last_fetch_error": None,
        "requests": lag_pass.requests,
        "not_modified": 0,
        "not_modified_share": 0.0,
        "watermark": watermark,
        "kafka_end_offset": N,
        "kafka_committed_offset": 0,
        "kafka_lag": N,
        "last_batch_id": None,
        "last_batch_at": None,
        "postgres_rows": 0,
        "bronze_version": None,
        "bronze_rows": 0,
        "quarantined": 0,
        "dead_letters": 0,
        "stale": False,
        "unavailable": {},
    }

    # A source nobody fetched is stale: the exit code says so, for cron.
    code, document = _status(stack, never, "--max-staleness", "1h")
    assert code == 1 and document["sources"][0]["stale"] is True

    # Kafka down: its fields say why, every other one is still read.
    dead = f"127.0.0.1:{_closed_port()}"
    code, document = _status(stack, "-f", str(spec_file), kafka=dead)
    (row,) = document["sources"]
    reason = row["unavailable"]["kafka_end_offset"]
    assert reason.startswith(f"Kafka unreachable at {dead}")
    assert row["unavailable"] == {"kafka_end_offset": reason, "dead_letters": reason, "kafka_lag": reason}
    assert (row["kafka_end_offset"], row["kafka_committed_offset"], row["postgres_rows"]) == (None, N, 110)
    assert code == 0

    # The table form: one line per source, the same numbers.
    env = {"RESTLAKE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap, "RESTLAKE_PG_DSN": stack.pg_dsn}
    env["RESTLAKE_LAKE_ROOT"] = stack.lake_root
    table = CliRunner().invoke(app, ["status", "-f", str(spec_file)], env=env)
    assert table.exit_code == 0, table.output
    header, line = table.stdout.splitlines()[1:3]
    assert header.split()[:4] == ["SOURCE", "LAST", "FETCH", "OUTCOME"]
    cells = line.split()
    assert cells[0] == linked and cells[3:6] == ["complete", "3", "100%"]
    version = _delta_version(spark, source.bronze_path(stack.lake_root))
    # LAST FETCH ("12s ago") and LAST BATCH ("#0 40s ago") are two and three words.
    assert cells[6:10] == ["-", str(N), str(N), "0"] and cells[10] == "#0"
    assert cells[-5:] == ["110", f"v{version}", "110", "10", "0"]
