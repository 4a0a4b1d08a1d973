"""What a bronze checkpoint run reports: OpenLineage events, Prometheus metrics, paths and the summary."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from pydantic import SecretStr

from restlake.errors import ConfigError
from restlake.lineage import LineageEmitter
from restlake.lineage.quality import Assertion, QualityLineage
from restlake.quality.checkpoint import ExpectationOutcome, QualityRun
from restlake.quality.metrics import publish, run_registry
from restlake.quality.results import QualityPaths, read_watermark, write_watermark
from restlake.quality.settings import QualitySettings

from ...openlineage_events import Recorder, schema_errors, schema_validator

SECRET = "pushgateway-s3cr3t"


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    return schema_validator()


def test_lineage_events_validate_and_carry_the_quality_facets(
    validator: jsonschema.protocols.Validator,
) -> None:
    rec = Recorder()
    run = QualityLineage(
        LineageEmitter(rec), "orders", "s3a://lake/bronze/orders", "7c3e8c2a-0000-4000-8000-000000000001"
    )
    run.start()
    run.complete(
        12,
        [Assertion("not_null:source", True, "source"), Assertion("unique:source,external_id,version", False)],
        {"source": 0},
    )
    run.fail("PermanentError: no bronze Delta table")
    for event in rec.events:
        assert schema_errors(validator, event) == [], event
    assert [e["eventType"] for e in rec.events] == ["START", "COMPLETE", "FAIL"]
    start, complete, fail = rec.events
    assert start["job"] == {"namespace": "restlake", "name": "restlake.quality.orders"}
    assert start["inputs"][0]["namespace"] == "s3://lake" and "inputFacets" not in start["inputs"][0]
    assert complete["inputs"][0]["name"] == "bronze/orders"
    assert complete["outputs"] == []
    facets = complete["inputs"][0]["inputFacets"]
    assert facets["dataQualityAssertions"]["assertions"] == [
        {"assertion": "not_null:source", "success": True, "column": "source"},
        {"assertion": "unique:source,external_id,version", "success": False},
    ]
    assert facets["dataQualityMetrics"]["rowCount"] == 12
    assert facets["dataQualityMetrics"]["columnMetrics"] == {"source": {"nullCount": 0}}
    assert facets["dataQualityMetrics"]["_schemaURL"] == (
        "https://openlineage.io/spec/facets/1-0-2/DataQualityMetricsInputDatasetFacet.json"
        "#/$defs/DataQualityMetricsInputDatasetFacet"
    )
    assert fail["run"]["facets"]["errorMessage"]["message"] == "PermanentError: no bronze Delta table"


def test_metrics_have_only_source_and_result_labels() -> None:
    registry = run_registry(
        "orders", success=False, passed=3, failed=2, rows=40, unexpected=5, finished_at=1.5e9, duration_s=2.0
    )
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for m in registry.collect() for s in m.samples
    }
    assert samples == {
        ("restlake_quality_expectations", (("result", "passed"), ("source", "orders"))): 3.0,
        ("restlake_quality_expectations", (("result", "failed"), ("source", "orders"))): 2.0,
        ("restlake_quality_rows_validated", (("source", "orders"),)): 40.0,
        ("restlake_quality_unexpected_values", (("source", "orders"),)): 5.0,
        ("restlake_quality_last_run_success", (("source", "orders"),)): 0.0,
        ("restlake_quality_last_run_timestamp_seconds", (("source", "orders"),)): 1.5e9,
        ("restlake_quality_last_run_duration_seconds", (("source", "orders"),)): 2.0,
    }


def test_a_failed_push_is_logged_without_credentials(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Port 9 (discard) on loopback: nothing listens, the push fails at once.
    settings = QualitySettings(
        pushgateway_url="http://127.0.0.1:9/",
        pushgateway_username="ops",
        pushgateway_password=SecretStr(SECRET),
        pushgateway_timeout=2,
    )
    registry = run_registry(
        "orders", success=True, passed=1, failed=0, rows=1, unexpected=0, finished_at=1.0, duration_s=1.0
    )
    with caplog.at_level(logging.WARNING):
        assert publish(registry, "orders", tmp_path / "m.prom", settings) is False
    assert "quality metrics not pushed source=orders gateway=http://127.0.0.1:9" in caplog.text
    assert SECRET not in caplog.text and SECRET not in repr(settings)
    assert (tmp_path / "m.prom").read_text(encoding="utf-8").count('source="orders"') == 7
    assert publish(registry, "orders", tmp_path / "m.prom", QualitySettings()) is None


def test_quality_paths_default_under_a_local_lake_and_need_a_dir_for_s3(tmp_path: Path) -> None:
    assert (
        QualityPaths.for_source(QualitySettings(), str(tmp_path), "orders").root
        == tmp_path / "_quality/orders"
    )
    assert (
        QualityPaths.for_source(QualitySettings(), f"file://{tmp_path}", "o").root == tmp_path / "_quality/o"
    )
    explicit = QualitySettings(dir=str(tmp_path / "q"))
    assert QualityPaths.for_source(explicit, "s3a://lake", "orders").root == tmp_path / "q" / "orders"
    with pytest.raises(ConfigError, match="set RESTLAKE_QUALITY_DIR to a local"):
        QualityPaths.for_source(QualitySettings(), "s3a://lake/root", "orders")


def test_watermark_round_trips_and_a_corrupt_one_is_a_config_error(tmp_path: Path) -> None:
    paths = QualityPaths(tmp_path / "orders")
    assert read_watermark(paths) is None
    when = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=UTC)
    write_watermark(paths, when, "run-1")
    assert read_watermark(paths) == when
    paths.watermark.write_text('{"ingested_at": "yesterday"}', encoding="utf-8")
    with pytest.raises(ConfigError, match="holds 'yesterday', not an ISO time; delete it or use --full"):
        read_watermark(paths)


def test_run_summary_is_json_and_says_what_failed() -> None:
    outcomes = [
        ExpectationOutcome(
            "not_null:source", "expect_column_values_to_not_be_null", "default", "source", True, 0, 4
        ),
        ExpectationOutcome(
            "has_score",
            "expect_column_values_to_not_be_null",
            "spec.quality.expectations[0]",
            "payload.score",
            False,
            2,
            4,
        ),
    ]
    run = QualityRun(
        source="orders",
        run_id="r",
        full=False,
        rows_validated=4,
        outcomes=outcomes,
        watermark_before=None,
        watermark_after=datetime(2026, 3, 1, tzinfo=UTC),
        results_path="/q/r.json",
        data_docs_path="/q/r.html",
        data_docs_index="/q/index.html",
        started_at=datetime(2026, 3, 1, tzinfo=UTC),
        duration_s=1.23456,
    )
    assert not run.passed
    assert run.message == "1 of 2 expectations failed on 4 rows: has_score (2 unexpected)"
    summary = run.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["expectations"] == {"total": 2, "passed": 1, "failed": 1}
    assert summary["results"][1] == {
        "name": "has_score",
        "type": "expect_column_values_to_not_be_null",
        "origin": "spec.quality.expectations[0]",
        "column": "payload.score",
        "success": False,
        "unexpected_count": 2,
        "element_count": 4,
        "error": None,
    }
    assert summary["watermark_after"] == "2026-03-01T00:00:00+00:00" and summary["duration_s"] == 1.235
