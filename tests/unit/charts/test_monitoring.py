"""Static contracts of the dashboard and alert rules: real metric names, one dashboard, gated templates.

Parsing and evaluating the PromQL against a real Prometheus is tests/integration/test_prometheus.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from restlake.fetcher.metrics import FetcherMetrics
from restlake.quality.metrics import run_registry

from ...installed_source import module_source

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "restlake"
DASHBOARD = REPO / "dashboards" / "restlake.json"
RULES = CHART / "files" / "restlake-rules.yaml"
METRIC = re.compile(r"\brestlake_[a-z_]+\b")
# Series a histogram or counter exposes beyond its declared name.
SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def panel_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [r["expr"] for g in groups for r in g["rules"]]


def known_metrics() -> set[str]:
    names = set()
    quality = run_registry(
        "s", success=True, passed=1, failed=0, rows=1, unexpected=0, finished_at=0.0, duration_s=0.0
    )
    for family in [*FetcherMetrics().registry.collect(), *quality.collect()]:
        # prometheus_client drops the _total suffix from a counter's family name.
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    # Read, not imported: restlake.jobs.spark.metrics imports pyspark, which costs seconds.
    stream = module_source("restlake.jobs.spark.metrics")
    return names | set(re.findall(r'"(restlake_stream_[a-z_]+)"', stream))


def base_name(series: str, known: set[str]) -> str:
    for suffix in SUFFIXES:
        if series.endswith(suffix) and series.removesuffix(suffix) in known:
            return series.removesuffix(suffix)
    return series


def test_the_chart_ships_the_same_dashboard() -> None:
    assert (CHART / "files" / "restlake-dashboard.json").read_bytes() == DASHBOARD.read_bytes()


def test_every_metric_in_panels_and_rules_is_one_the_code_exports() -> None:
    known = known_metrics()
    used = {base_name(m, known) for expr in panel_exprs() + rule_exprs() for m in METRIC.findall(expr)}
    assert used - known == set()
    # Every metric the code exports is on the dashboard, except the batch id (a counter in disguise)
    # and the per-second gauges that rate() over the counters shows better.
    unused = known - used
    assert unused == {
        "restlake_stream_last_committed_batch_id",
        "restlake_stream_input_rows_per_second",
        "restlake_stream_processed_rows_per_second",
    }


def test_the_dashboard_has_the_panels_operators_ask_for() -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    titles = " | ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in (
        "lag",
        "throughput",
        "duration",
        "status class",
        "304",
        "rate-limit",
        "quarantine",
        "expectation",
        "checkpoint run passed",
        "failed expectations",
        "unexpected values",
        "time since last checkpoint run",
        "watermark distance from now",
    ):
        assert topic in titles, topic
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_alerts_cover_lag_fetch_quarantine_stream_down_and_the_checkpoint() -> None:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert [r["alert"] for r in rules] == [
        "RestlakeNoSuccessfulFetch",
        "RestlakeWatermarkInFuture",
        "RestlakeKafkaLagGrowing",
        "RestlakeQuarantineRatioHigh",
        "RestlakeStreamDown",
        "RestlakeExpectationViolations",
        "RestlakeQualityFailing",
        "RestlakeQualityStale",
    ]
    for rule in rules:
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]
    by_name = {r["alert"]: r for r in rules}
    assert "restlake_quality_last_run_success" in by_name["RestlakeQualityFailing"]["expr"]
    assert "== 0" in by_name["RestlakeQualityFailing"]["expr"]
    assert "> 26 * 3600" in by_name["RestlakeQualityStale"]["expr"]
    assert "restlake_fetcher_watermark_timestamp_seconds" in by_name["RestlakeWatermarkInFuture"]["expr"]


def test_templates_are_gated_and_embed_the_checked_files() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))["monitoring"]
    assert values["prometheusRule"]["enabled"] is False
    assert values["grafanaDashboard"]["enabled"] is False
    rule = (CHART / "templates" / "prometheusrule.yaml").read_text(encoding="utf-8")
    assert "if .Values.monitoring.prometheusRule.enabled" in rule
    assert '.Files.Get "files/restlake-rules.yaml"' in rule
    board = (CHART / "templates" / "grafana-dashboard.yaml").read_text(encoding="utf-8")
    assert "if .Values.monitoring.grafanaDashboard.enabled" in board
    assert '.Files.Get "files/restlake-dashboard.json"' in board
