"""A real Prometheus (Debian's package) scrapes a running pipeline: a fetcher polling the demo API, the
stream job reading the fetcher's topic into bronze and Postgres, and a Pushgateway holding a real
`restlake quality run` over that bronze table. The alert rules pass promtool and load, and every
dashboard panel's PromQL returns a series, with a number, for the pipeline's source.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pyspark.sql import SparkSession
from typer.testing import CliRunner

from restlake.cli.main import app
from restlake.contracts.spec import parse_source
from restlake.demoapi.config import DemoApiConfig
from restlake.demoapi.dataset import DatasetConfig
from restlake.demoapi.handle import running_demo_api
from restlake.fetcher.producer import EnvelopeProducer
from restlake.fetcher.service import FetcherService
from restlake.fetcher.settings import FetcherSettings
from restlake.fetcher.state import PostgresStateStore
from restlake.jobs.spark import ops as stream_ops
from restlake.jobs.spark.batch import StreamMetrics
from restlake.jobs.spark.stream import run_stream
from restlake.postgres import migrations
from restlake.stack.manager import StackEndpoints

from .debian_services import debian_tools, start_until_ready
from .fixtures_stream import StreamJob

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "charts" / "restlake" / "files" / "restlake-rules.yaml"
DASHBOARD = REPO / "dashboards" / "restlake.json"
METRIC = re.compile(r"\brestlake_[a-z_]+\b")
# What Grafana substitutes before a query reaches Prometheus.
GRAFANA_VARS = {"$__rate_interval": "15s", "$source": ".*"}


@pytest.fixture(scope="module")
def prometheus_bins() -> tuple[str, str]:
    """``promtool`` and ``prometheus`` from PATH, installing Debian's package when missing and root."""
    promtool, prometheus = debian_tools("prometheus", "promtool", "prometheus")
    return promtool, prometheus


def test_promtool_accepts_the_alert_rules(prometheus_bins: tuple[str, str]) -> None:
    result = subprocess.run(
        [prometheus_bins[0], "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.fixture
def prometheus_for(prometheus_bins: tuple[str, str], tmp_path: Path) -> Iterator[Any]:
    """A factory: start Prometheus scraping the given jobs every second, with the rules loaded."""
    started: list[subprocess.Popen[bytes]] = []

    def start(scrape_configs: list[dict[str, Any]]) -> str:
        port = _free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": scrape_configs,
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        base = f"http://127.0.0.1:{port}"
        argv = [
            prometheus_bins[1],
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        started.append(start_until_ready(argv, tmp_path / "prometheus.log", base, 60))
        return base

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=30)


def _panel_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for var, value in GRAFANA_VARS.items():
                expr = expr.replace(var, value)
            found.append((panel["title"], expr))
    return found


def _query(base: str, expr: str) -> Any:
    return _get(f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")


def _shortfalls(base: str, source: str) -> list[str]:
    """Panels whose expression has no series with a number for ``source`` now; empty when all have one.

    A number, not only a series: a quantile of a histogram nothing was observed into in the window, or
    a ratio of two rates at 0, is a NaN series, which would hide a scenario that produced nothing.
    """
    missing = []
    for title, expr in _panel_exprs():
        answer = _query(base, expr)
        assert answer["status"] == "success", (title, expr, answer)
        values = [
            float(r["value"][1]) for r in answer["data"]["result"] if r["metric"].get("source") == source
        ]
        if not any(math.isfinite(v) for v in values):
            missing.append(f"{title!r}: {expr} -> {values or 'no series'}")
    return missing


def _scraped(base: str, jobs: set[str]) -> bool:
    up = _query(base, "up")["data"]["result"]
    return {r["metric"]["job"] for r in up if r["value"][1] == "1"} >= jobs


def test_every_panel_query_has_series_from_prometheus_scraping_a_running_pipeline(
    stack: StackEndpoints,
    spark: SparkSession,
    pushgateway: str,
    prometheus_for: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    migrations.apply(stack.pg_dsn)
    job = StreamJob(stack, tmp_path / "lake")
    # The quality CLI reads its settings from the environment, as in its CronJob.
    monkeypatch.setenv("RESTLAKE_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("RESTLAKE_QUALITY_DIR", str(tmp_path / "quality"))
    monkeypatch.setenv("RESTLAKE_QUALITY_PUSHGATEWAY_URL", pushgateway)
    if "RESTLAKE_STATE_DIR" not in os.environ:
        monkeypatch.setenv("RESTLAKE_STATE_DIR", str(REPO / ".restlake"))
    # A new record every second, so every rate() window sees fetches, batches and merges; without
    # updates the earlier pages stay unchanged and the stream's batches stay small on 2 cores.
    dataset = DatasetConfig(
        seed=3, initial_records=30, growth_per_tick=1, update_fraction=0.0, tick_seconds=1
    )
    with running_demo_api(DemoApiConfig(dataset=dataset, realtime=True)) as api:
        doc = yaml.safe_load((REPO / "examples" / "demo-link.yaml").read_text(encoding="utf-8"))
        # The stream fixture's source and tables: its topic is the one the fetcher publishes to.
        doc["metadata"]["name"] = job.source
        doc["spec"]["request"]["url"] = (
            f"{api.base_url}/v1/{doc['spec']['request']['url'].split('/v1/', 1)[1]}"
        )
        doc["spec"]["poll"] = {"interval": "1s", "jitter": 0.1}
        # Incremental, so the watermark panel has a timestamp watermark to show.
        doc["spec"]["incremental"] = {"param": "since", "cursorPath": "$.updated_at"}
        # Small pages: a pass gets 304s for the full ones and produces only the last page again.
        doc["spec"]["request"]["params"] = {"per_page": "10"}
        # Relative to RESTLAKE_LAKE_ROOT (the job's root), as a spec must give them.
        doc["spec"]["sinks"] = {"bronze": {"path": "bronze"}, "quarantine": {"path": "quarantine"}}
        source_file = tmp_path / "source.yaml"
        source_file.write_text(yaml.safe_dump(doc), encoding="utf-8")
        source = parse_source(doc, str(source_file))
        assert source.topic() == job.topic
        assert source.bronze_path(str(tmp_path / "lake")) == job.config.bronze_path
        stream_config = job.config_for(
            "ckpt",
            json_schema=source.spec.schema_.json_schema if source.spec.schema_ else None,
            quality=source.spec.quality,
            processing_time="2 seconds",
            metrics_port=0,
        )
        service = FetcherService(
            [source],
            producer=EnvelopeProducer(stack.kafka_bootstrap),
            state_store=PostgresStateStore(stack.pg_dsn),
            settings=FetcherSettings(ops_port=0),
            kafka_bootstrap=stack.kafka_bootstrap,
            create_topics=True,
        )
        counts = StreamMetrics()

        def quality_run() -> Any:
            return CliRunner().invoke(app, ["quality", "run", "-f", str(source_file)])

        async def scenario() -> tuple[str, Any, list[str], float]:
            task = asyncio.create_task(service.run())
            query = None
            try:
                while service.ops is None or service.ops.base_url is None:
                    await asyncio.sleep(0.1)
                # As the job's main() does: metrics served before the query starts.
                assert stream_config.metrics_port is not None
                stream_port = stream_ops.serve(
                    stream_ops.DriverHealth(local=True),
                    stream_config.metrics_port,
                    stream_config.metrics_address,
                )
                query = await asyncio.to_thread(run_stream, spark, stream_config, metrics=counts)
                gateway = urllib.parse.urlsplit(pushgateway).netloc
                jobs = {
                    "restlake-fetcher": urllib.parse.urlsplit(service.ops.base_url).netloc,
                    "restlake-stream": f"127.0.0.1:{stream_port}",
                }
                base = await asyncio.to_thread(
                    prometheus_for,
                    [{"job_name": name, "static_configs": [{"targets": [t]}]} for name, t in jobs.items()]
                    # The Pushgateway's own job label (restlake_quality) is the one that counts.
                    + [
                        {
                            "job_name": "pushgateway",
                            "honor_labels": True,
                            "static_configs": [{"targets": [gateway]}],
                        }
                    ],
                )
                # The checkpoint needs bronze rows to validate: wait for the stream to write some.
                deadline = time.monotonic() + 120
                while counts.bronze_written == 0:
                    assert query.exception() is None, query.exception()
                    assert time.monotonic() < deadline, f"no bronze rows after 120 s: {counts}"
                    await asyncio.sleep(0.5)
                checkpoint = await asyncio.to_thread(quality_run)
                # Every panel eventually has a number: the pipeline keeps running while Prometheus
                # gathers enough samples for the rate() windows.
                deadline = time.monotonic() + 90
                while True:
                    await asyncio.sleep(1.0)
                    ready = await asyncio.to_thread(_scraped, base, {*jobs, "pushgateway"})
                    missing = await asyncio.to_thread(_shortfalls, base, source.name) if ready else ["up"]
                    if not missing or time.monotonic() > deadline:
                        break
                # In a thread: the ops server runs on this event loop and must keep answering.
                exported = await asyncio.to_thread(_text, f"{service.ops.base_url}/metrics")
                rows = await asyncio.to_thread(
                    _query, base, f'restlake_quality_rows_validated{{source="{source.name}"}}'
                )
                return exported, checkpoint, missing, float(rows["data"]["result"][0]["value"][1])
            finally:
                if query is not None:
                    await asyncio.to_thread(query.stop)
                service.request_stop()
                await asyncio.wait_for(task, 30)

        exported, checkpoint, missing, rows_in_prometheus = asyncio.run(scenario())
    assert missing == [], "panels without a number for the pipeline's source:\n" + "\n".join(missing)
    # The stop may cut the last pass short; none failed.
    assert [p.error for p in service.results[source.name] if p.error] == []
    assert 'restlake_fetcher_bad_pages_total{reason="timeout",source="' + source.name + '"} 0.0' in exported
    assert checkpoint.exit_code == 0, checkpoint.output
    summary = json.loads(checkpoint.stdout)
    assert summary["passed"] is True and summary["rows_validated"] > 0
    # What Prometheus holds is what the run reported, by way of the Pushgateway.
    assert rows_in_prometheus == summary["rows_validated"]
