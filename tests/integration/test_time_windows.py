"""Time windows of a first load, and line numbers of JSON Lines records, through the real pipeline.

The demo API is dated around *now* (its epoch two hours ago), so the windows a fetcher plans up to
now cover its data in a handful of windows. What each run asked is read from the demo API's
request log; what landed is counted in Postgres and bronze.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import yaml
from aiohttp import web
from pyspark.sql import functions as F
from pyspark.sql import types as T

from restlake.contracts.envelope import content_hash, idempotency_key
from restlake.contracts.spec import IngestionSource, parse_source
from restlake.demoapi.config import DemoApiConfig
from restlake.demoapi.dataset import DatasetConfig
from restlake.demoapi.handle import DemoApiHandle, running_demo_api
from restlake.fetcher.watermark import format_timestamp
from restlake.jobs.spark import bronze
from restlake.jobs.spark.envelope_schema import REQUEST_SCHEMA
from restlake.postgres import migrations
from restlake.runtime.local import LocalRunner

from .kafka_topic import read_topic
from .test_api_patterns import _recording_server

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
DAY = timedelta(days=1)


def _epoch() -> datetime:
    """Two hours ago, to the second: the demo data ends there, and its ticks stay in the past."""
    return (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)


def _dataset(epoch: datetime, records: int, growth: int = 0) -> DatasetConfig:
    # Created over the four days before the epoch: four full windows of a day, and some to spare.
    return DatasetConfig(
        seed=29,
        initial_records=records,
        growth_per_tick=growth,
        update_fraction=0.1,
        epoch=epoch,
        initial_span_seconds=4 * 86_400,
    )


def _source(api: DemoApiHandle, name: str, start: datetime, per_page: int) -> IngestionSource:
    """examples/demo-windows.yaml pointed at ``api``, one-day windows from ``start``."""
    doc = yaml.safe_load((EXAMPLES / "demo-windows.yaml").read_text())
    doc["metadata"]["name"] = name
    doc["spec"]["request"]["url"] = f"{api.base_url}/v1/link/items"
    doc["spec"]["request"]["params"] = {"per_page": str(per_page)}
    doc["spec"]["rateLimit"] = {"requestsPerSecond": 200, "burst": 50}
    doc["spec"]["incremental"].update(window="1d", start=format_timestamp(start))
    return parse_source(doc, f"test:{name}")


def _query(logged: str) -> dict[str, str]:
    """The query of one logged request (``GET /v1/...?a=b``), one value per name."""
    return {k: v[0] for k, v in parse_qs(urlsplit(logged.split(" ", 1)[1]).query).items()}


def _windows(logged: list[str]) -> list[tuple[str, str]]:
    """The distinct (since, until) windows asked, in the order first asked."""
    seen: list[tuple[str, str]] = []
    for entry in logged:
        q = _query(entry)
        window = (q.get("since", ""), q.get("until", ""))
        if window not in seen:
            seen.append(window)
    return seen


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _served_keys(api: DemoApiHandle, source: str, tick: int) -> set[str]:
    return {idempotency_key(source, str(r["id"]), content_hash(r)) for r in api.dataset(tick).snapshot()}


def _postgres(dsn: str, source: str) -> dict[str, str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT external_id, payload->>'updated_at' FROM raw.api_events WHERE source = %s", (source,)
        ).fetchall()
    return dict(rows)


def _bronze_keys(spark: Any, source: IngestionSource, lake_root: str) -> list[str]:
    table = (
        spark.read.format("delta").load(source.bronze_path(lake_root)).where(F.col("source") == source.name)
    )
    return [r.idempotency_key for r in table.select("idempotency_key").collect()]


def _window_state(dsn: str, source: str) -> dict[str, Any] | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT value FROM raw.fetch_state WHERE source = %s AND key = 'window'", (source,)
        ).fetchone()
    return row[0] if row else None


# -- a windowed first load, then polling, over two runs with changes in between ---------------------


def test_windowed_first_load_then_polling_lands_exactly_over_two_runs(stack, spark, spark_jars) -> None:
    n, growth = 150, 10
    epoch = _epoch()
    start = epoch - 5 * DAY
    with running_demo_api(DemoApiConfig(dataset=_dataset(epoch, n, growth))) as api:
        source = _source(api, f"win-{uuid.uuid4().hex[:8]}", start, per_page=20)
        runner = LocalRunner(source, stack, jars=spark_jars, spark=spark)
        api.requests(clear=True)
        first = runner.run_until_caught_up()
        first_log = api.requests(clear=True)
        watermark = first.fetch.watermark
        api.tick(1)
        second = runner.run_until_caught_up()
        second_log = api.requests(clear=True)
        before, after = _served_keys(api, source.name, 0), _served_keys(api, source.name, 1)
        current = {str(r["id"]): r["updated_at"] for r in api.dataset(1).snapshot()}

    # The first load: one-day windows from the start, each starting where the one before ended, the
    # last one ending at the time the run planned them (after the demo data's epoch, before now).
    windows = _windows(first_log)
    assert [_when(a) for a, _ in windows] == [start + i * DAY for i in range(6)]
    assert all(b == c for (_, b), (c, _) in itertools.pairwise(windows))
    assert epoch < _when(windows[-1][1]) <= datetime.now(UTC)
    assert (first.fetch.complete, first.fetch.records, first.fetch.produced) == (True, n, n)
    assert (first.postgres_rows, first.bronze_rows, first.quarantined) == (n, n, 0)
    assert watermark is not None and _when(watermark) <= epoch
    assert _window_state(stack.pg_dsn, source.name) == {
        "start": format_timestamp(start),
        "next": windows[-1][1],
        "done": True,
    }

    # After it, polling goes on from the watermark (minus the 1m lookback), with no end parameter.
    assert {(_query(r).get("since"), "until" in _query(r)) for r in second_log} == {
        (format_timestamp(_when(watermark) - timedelta(minutes=1)), False)
    }
    assert second.fetch.complete and second.quarantined == 0
    assert second.postgres_rows == n + growth
    assert _postgres(stack.pg_dsn, source.name) == current
    keys = _bronze_keys(spark, source, stack.lake_root)
    assert len(keys) == len(set(keys)) == second.bronze_rows
    assert set(keys) == before | after  # every version served, once, and nothing else


# -- SIGKILL of the fetcher in the middle of a windowed first load ------------------------------------


def _fetcher_process(source_file: Path, stack: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "restlake.fetcher", "run", "--once", "--no-ops", "-f", str(source_file)],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "RESTLAKE_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            "RESTLAKE_PG_DSN": stack.pg_dsn,
            "RESTLAKE_FETCHER_CHECKPOINT_PAGES": "2",
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_mid_window_resumes_at_that_window_and_lands_exactly(
    stack, spark, spark_jars, tmp_path
) -> None:
    n = 200
    epoch = _epoch()
    start = epoch - 5 * DAY
    migrations.apply(stack.pg_dsn)
    with running_demo_api(DemoApiConfig(dataset=_dataset(epoch, n))) as api:
        source = _source(api, f"winkill-{uuid.uuid4().hex[:8]}", start, per_page=10)
        source_file = tmp_path / "source.yaml"
        source_file.write_text(
            yaml.safe_dump(source.model_dump(mode="json", by_alias=True, exclude_none=True))
        )
        runner = LocalRunner(source, stack, jars=spark_jars, spark=spark)
        runner.prepare()  # the topic, as the operator would create it
        api.requests(clear=True)
        api.set_faults(slow_rate=1.0, slow_seconds=0.4)
        proc = _fetcher_process(source_file, stack)
        # Window 1 (empty) is request 1, window 2 requests 2-6 (about 50 records, 10 a page): the
        # 9th request is inside window 3, with pages of it before and after.
        deadline = time.monotonic() + 60
        while api.state()["listing_requests"] < 9 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        killed_log = api.requests(clear=True)
        stopped_in = _windows(killed_log)[-1]  # the window whose walk was cut
        stored = _window_state(stack.pg_dsn, source.name)
        api.clear_faults()

        restarted = _fetcher_process(source_file, stack)
        out, err = restarted.communicate(timeout=120)
        assert restarted.returncode == 0, err[-3000:]
        resumed_log = api.requests(clear=True)
        summary = runner.run_until_caught_up()  # a polling pass after the load, then the stream job
        expected = {str(r["id"]): r["updated_at"] for r in api.dataset().snapshot()}
        served = _served_keys(api, source.name, 0)

    windows_before = _windows(killed_log)
    assert len(windows_before) >= 3 and _when(stopped_in[0]) > start  # killed past the first windows
    # The window where it stopped was not committed; the one before it was.
    assert stored is not None and stored["next"] == stopped_in[0] and stored["done"] is False
    # The resumed run starts at that very window (same bounds), and never asks an earlier one.
    resumed = _windows(resumed_log)
    assert resumed[0] == stopped_in
    assert all(_when(since) >= _when(stopped_in[0]) for since, _ in resumed)
    assert all(window not in resumed for window in windows_before[:-1])
    # Its pages confirmed before the kill (checkpoints every 2 pages; the last one asked was in
    # flight) come back 304 and are not read again.
    pages_done = sum(1 for entry in killed_log if _windows([entry])[0] == stopped_in) - 1
    result = json.loads(out.strip().splitlines()[-1])[source.name][0]
    assert result["complete"] and result["not_modified"] == 2 * (pages_done // 2)
    assert _window_state(stack.pg_dsn, source.name)["done"] is True  # type: ignore[index]

    # Exact landing: every record once in Postgres and in bronze, however often it was fetched.
    assert (summary.postgres_rows, summary.bronze_rows, summary.quarantined) == (n, n, 0)
    assert _postgres(stack.pg_dsn, source.name) == expected
    keys = _bronze_keys(spark, source, stack.lake_root)
    assert len(keys) == n and set(keys) == served
    on_topic = [k for k, _ in read_topic(stack.kafka_bootstrap, source.topic())]
    assert set(on_topic) == served  # refetched records carry the same keys


# -- line numbers of JSON Lines records in dead letters, quarantine and bronze ------------------------


BIG = "x" * 1_500_000  # over the producer's 1 MB message limit: dead-lettered alone


def test_rejected_and_quarantined_line_records_name_their_line(stack, spark, spark_jars) -> None:
    lines = [
        json.dumps({"id": 1, "updated_at": "2024-01-01T00:00:00Z"}),
        "",
        json.dumps({"name": "no id", "updated_at": "2024-01-01T00:00:01Z"}),
        json.dumps({"id": "big", "blob": BIG}),
        json.dumps({"id": 2, "updated_at": "2024-01-01T00:00:02Z"}),
    ]
    body = ("\n".join(lines) + "\n").encode()

    async def listing(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/x-ndjson")

    with _recording_server(listing) as (base, _seen):
        name = f"lines-{uuid.uuid4().hex[:8]}"
        source = parse_source(
            {
                "apiVersion": "restlake.io/v1alpha1",
                "kind": "IngestionSource",
                "metadata": {"name": name},
                "spec": {
                    "request": {"url": f"{base}/v1/items.jsonl"},
                    "records": {"format": "jsonl", "idPath": "$.id", "versionPath": "$.updated_at"},
                },
            },
            name,
        )
        # A bronze table created before envelopes had a line: its request struct lacks the field.
        old_request = T.StructType([f for f in REQUEST_SCHEMA.fields if f.name != "line"])
        old = T.StructType(
            [
                f if f.name != "request" else T.StructField("request", old_request)
                for f in bronze.BRONZE_SCHEMA.fields
            ]
        )
        bronze.ensure_table(spark, source.bronze_path(stack.lake_root), old)
        runner = LocalRunner(source, stack, jars=spark_jars, spark=spark)
        quarantine_path = runner.layout.quarantine_path
        summary = runner.run_until_caught_up()

    assert (summary.fetch.records, summary.fetch.produced, summary.fetch.rejected) == (4, 3, 1)
    assert (summary.postgres_rows, summary.bronze_rows, summary.quarantined) == (2, 2, 1)
    # The oversized record: its dead-letter event names the response and the line.
    dead = [json.loads(v) for _, v in read_topic(stack.kafka_bootstrap, source.topic() + ".dlq")]
    assert [(d["reason"], d["url"], d["line"]) for d in dead] == [
        ("oversized_record", f"{base}/v1/items.jsonl", 4)
    ]
    # The record without id: quarantined by the stream job, its envelope saying where it was read.
    quarantined = (spark.read.format("delta").load(quarantine_path).where(F.col("source") == name)).collect()
    assert [q.reason for q in quarantined] == ["missing_field:external_id"]
    request = json.loads(bytes(quarantined[0].raw_value))["request"]
    assert (request["url"], request["line"]) == (f"{base}/v1/items.jsonl", 3)
    # Bronze gained the nullable field in place, and holds each record's line.
    table = spark.read.format("delta").load(source.bronze_path(stack.lake_root))
    assert "line" in table.schema["request"].dataType.fieldNames()
    rows = table.where(F.col("source") == name).select("external_id", "request.line").collect()
    assert sorted((r.external_id, r.line) for r in rows) == [("1", 1), ("2", 5)]
