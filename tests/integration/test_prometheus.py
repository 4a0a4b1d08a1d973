"""A real Prometheus (Debian's package) scrapes a running fetcher; the alert rules pass promtool and
load, and every dashboard panel's PromQL parses and, where the fetcher exports its metrics, has series.

The stream job's metrics are not scraped here (a Spark driver costs a minute on 2 cores): their
panels must parse, and tests/unit/test_monitoring.py checks their names against jobs/spark/metrics.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from restlake.contracts.spec import parse_source
from restlake.demoapi.config import DemoApiConfig
from restlake.demoapi.dataset import DatasetConfig
from restlake.demoapi.handle import running_demo_api
from restlake.fetcher.producer import EnvelopeProducer
from restlake.fetcher.service import FetcherService
from restlake.fetcher.settings import FetcherSettings
from restlake.fetcher.state import PostgresStateStore
from restlake.postgres import migrations
from restlake.stack.manager import StackEndpoints

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
    found = shutil.which("promtool"), shutil.which("prometheus")
    if all(found):
        return found  # type: ignore[return-value]
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(
            "promtool/prometheus not on PATH, and installing Debian's prometheus needs root and apt-get"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "prometheus"]
    if subprocess.run(install, env=env, capture_output=True, check=False, timeout=600).returncode != 0:
        # A fresh machine has no package lists yet.
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False, timeout=600)
        result = subprocess.run(install, env=env, capture_output=True, text=True, check=False, timeout=600)
        if result.returncode != 0:
            pytest.fail(f"apt-get install prometheus failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    promtool, prometheus = shutil.which("promtool"), shutil.which("prometheus")
    assert promtool and prometheus, "Debian's prometheus package installed no promtool/prometheus on PATH"
    return promtool, prometheus


def test_promtool_accepts_the_alert_rules(prometheus_bins: tuple[str, str]) -> None:
    result = subprocess.run(
        [prometheus_bins[0], "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


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
    """A factory: start Prometheus scraping one target every second, with the rules loaded."""
    started: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> str:
        port = _free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES)],
            "scrape_configs": [{"job_name": "restlake-fetcher", "static_configs": [{"targets": [target]}]}],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        log = (tmp_path / "prometheus.log").open("wb")
        process = subprocess.Popen(
            [
                prometheus_bins[1],
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "prometheus.log").read_text(errors="replace")[-3000:]
            try:
                urllib.request.urlopen(f"{base}/-/ready", timeout=2).close()
                return base
            except OSError:
                time.sleep(0.3)
        raise AssertionError("Prometheus did not become ready within 60 s")

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


def test_every_panel_query_runs_against_prometheus_scraping_a_fetcher(
    stack: StackEndpoints, prometheus_for: Any
) -> None:
    migrations.apply(stack.pg_dsn)
    config = DemoApiConfig(dataset=DatasetConfig(seed=3, initial_records=30, growth_per_tick=0))
    with running_demo_api(config) as api:
        doc = yaml.safe_load((REPO / "examples" / "demo-link.yaml").read_text(encoding="utf-8"))
        doc["metadata"]["name"] = f"prom-{uuid.uuid4().hex[:8]}"
        doc["spec"]["request"]["url"] = (
            f"{api.base_url}/v1/{doc['spec']['request']['url'].split('/v1/', 1)[1]}"
        )
        doc["spec"]["poll"] = {"interval": "1s", "jitter": 0.1}
        source = parse_source(doc, "test:prometheus")
        producer = EnvelopeProducer(stack.kafka_bootstrap)
        service = FetcherService(
            [source],
            producer=producer,
            state_store=PostgresStateStore(stack.pg_dsn),
            settings=FetcherSettings(ops_port=0),
            kafka_bootstrap=stack.kafka_bootstrap,
            create_topics=True,
        )

        async def scenario() -> tuple[str, list[tuple[str, str, dict[str, Any]]]]:
            task = asyncio.create_task(service.run())
            while service.ops is None or service.ops.base_url is None:
                await asyncio.sleep(0.1)
            target = urllib.parse.urlsplit(service.ops.base_url).netloc
            base = await asyncio.to_thread(prometheus_for, target)
            # Enough passes and scrapes for rate() over 15 s to see two samples with a change.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                up = await asyncio.to_thread(_get, f"{base}/api/v1/query?query=up")
                scraped = up["data"]["result"] and up["data"]["result"][0]["value"][1] == "1"
                if scraped and len(service.results[source.name]) >= 8:
                    break
            await asyncio.sleep(3.0)
            # In a thread: the ops server runs on this event loop and must keep answering.
            exported = await asyncio.to_thread(_text, f"{service.ops.base_url}/metrics")
            answers = []
            for title, expr in _panel_exprs():
                url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
                answers.append((title, expr, await asyncio.to_thread(_get, url)))
            service.request_stop()
            await asyncio.wait_for(task, 30)
            return exported, answers

        exported, answers = asyncio.run(scenario())
    assert all(p.complete for p in service.results[source.name])
    exported_names = {line.split("{")[0].split(" ")[0] for line in exported.splitlines() if line[:1] != "#"}
    with_series = []
    for title, expr, answer in answers:
        assert answer["status"] == "success", (title, expr, answer)
        needed = set(METRIC.findall(expr))
        if needed and needed <= exported_names:
            assert answer["data"]["result"], f"panel {title!r}: no series for {expr}"
            with_series.append(title)
    # The fetcher's panels really were checked for series, not skipped for want of metrics. Retries,
    # bad pages, circuit and rate-limit waits only get series once they happen, which they do not here.
    assert set(with_series) == {
        "Fetcher throughput (records/s confirmed by Kafka)",
        "Fetch pass duration p50 / p95",
        "Time since last successful fetch",
        "HTTP requests by status class (4xx, 5xx, error = none)",
        "Fetch passes by outcome",
        "304 Not Modified ratio",
    }
