"""The bronze checkpoint on a real bronze Delta table: GX's Spark engine, results, Data Docs, watermark,
metrics, OpenLineage, and the `restlake quality run` exit codes.

Bronze rows are written with the stream job's own functions (bronze_rows, ensure_table, append), so
the table has exactly the layout the stream job writes, without Kafka in the loop.
"""

from __future__ import annotations

import json
import os
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T
from typer.testing import CliRunner

from restlake.cli.main import app
from restlake.contracts.spec import IngestionSource, parse_source
from restlake.jobs.spark import bronze
from restlake.jobs.spark.typed_columns import typed_columns
from restlake.jobs.spark.validation import PAYLOAD_VARIANT
from restlake.lineage import LineageEmitter
from restlake.quality import QualityRun, QualitySettings, run_checkpoint
from restlake.quality.metrics import publish, run_registry

from ..openlineage_events import Recorder, schema_errors, schema_validator

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SPEC: dict[str, Any] = {
    "request": {"url": "https://api.example.test/orders"},
    "records": {"idPath": "$.id", "versionPath": "$.updated_at"},
    "schema": {
        "jsonSchema": {
            "type": "object",
            "required": ["id", "name"],
            "properties": {
                "id": {"type": "integer"},
                "name": {"type": "string"},
                "score": {"type": ["number", "null"]},
                "updated_at": {"type": "string"},
                "customer": {
                    "type": "object",
                    "required": ["email"],
                    "properties": {"email": {"type": "string"}},
                },
            },
        }
    },
    "quality": {
        "expectations": [
            {"type": "notNull", "field": "score", "name": "has_score"},
            {"type": "range", "field": "id", "min": 0, "max": 100},
            {"type": "inSet", "field": "kind", "values": ["a", "b"]},
            {"type": "regex", "field": "name", "pattern": "^item "},
            {"type": "unique", "fields": ["name"]},
        ],
        "bronze": {
            "expectations": [
                {
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {"column": "p_score", "min_value": 0, "max_value": 10},
                    "name": "score_0_10",
                }
            ]
        },
    },
}
# id 2.0 is an integer to JSON Schema (and to the stream's validation): type:id must pass it.
GOOD = [
    {
        "id": 2.0 if i == 2 else i,
        "name": f"item {i}",
        "score": float(i),
        "kind": "a",
        "customer": {"email": f"{i}@x"},
    }
    | {"updated_at": f"2026-01-0{i}"}
    for i in range(1, 6)
]
BAD = [
    # regex, inSet, score_0_10 and the nested email's type fail
    {"id": 6, "name": "bad 6", "score": 50, "kind": "c", "customer": {"email": 7}, "updated_at": "v"},
    # the id's type, the required name and has_score fail (range passes: "7" reads as 7.0, as inline)
    {"id": "7", "kind": "a", "updated_at": "v"},
    # the same id and version as GOOD[0], other content: bronze's key is no longer unique
    {"id": 1, "name": "item 1 changed", "score": 1.0, "kind": "a", "updated_at": "2026-01-01"},
]
# What the three BAD rows fail, with the number of unexpected values each.
BAD_FAILURES = {
    "unique:source,external_id,version": 1,
    "required:name": 1,
    "type:customer.email": 1,
    "type:id": 1,
    "has_score": 1,
    "inSet:kind": 1,
    "regex:name": 1,
    "score_0_10": 1,
}
SUITE = [
    "not_null:source",
    "not_null:external_id",
    "not_null:idempotency_key",
    "unique:source,external_id,version",
    "required:id",
    "required:name",
    "type:customer",
    "required:customer.email",
    "type:customer.email",
    "type:id",
    "type:name",
    "type:score",
    "type:updated_at",
    "has_score",
    "range:id",
    "inSet:kind",
    "regex:name",
    "score_0_10",
]


def make_source(name: str, spec: dict[str, Any] | None = None) -> IngestionSource:
    document = {
        "apiVersion": "restlake.io/v1alpha1",
        "kind": "IngestionSource",
        "metadata": {"name": name},
        "spec": spec or SPEC,
    }
    return parse_source(document, "test")


def write_bronze(
    spark: SparkSession, source: IngestionSource, lake: Path, batch: int, payloads: list[Any]
) -> None:
    """Append ``payloads`` as one stream batch would: envelope columns, typed columns, idempotent append."""
    schema = source.spec.schema_.json_schema if source.spec.schema_ else None
    typed = typed_columns(schema)
    envelope = T.StructType(
        [f for f in bronze.BRONZE_SCHEMA.fields if f.name not in {"ingested_at", "batch_id", "ingest_date"}]
    )
    now = datetime.now(UTC)
    rows = [
        (
            source.name,
            str(p["id"]),
            f"{source.name}/{p['id']}/h{batch}-{i}",
            f"h{batch}-{i}",
            p.get("updated_at"),
            now,
            json.dumps(p),
            1,
            None,
            None,
            f"restlake.{source.name}",
            0,
            batch * 100 + i,
            now,
        )
        for i, p in enumerate(payloads)
    ]
    frame = spark.createDataFrame(rows, envelope).withColumn(PAYLOAD_VARIANT, F.parse_json("payload"))
    path = source.bronze_path(str(lake))
    bronze.ensure_table(spark, path, bronze.bronze_schema(typed))
    bronze.append(bronze.bronze_rows(frame, batch, typed), path=path, app_id="it", batch_id=batch)


@pytest.fixture(scope="module")
def ol_validator() -> jsonschema.protocols.Validator:
    return schema_validator()


def check(
    spark: SparkSession, source: IngestionSource, lake: Path, recorder: Recorder, *, full: bool = False
) -> QualityRun:
    return run_checkpoint(
        spark,
        source,
        lake_root=str(lake),
        full=full,
        settings=QualitySettings(),
        lineage=LineageEmitter(recorder),
    )


def failures(run: QualityRun) -> dict[str, int | None]:
    return {o.name: o.unexpected_count for o in run.outcomes if not o.success}


def test_checkpoint_passes_fails_on_bad_rows_and_validates_only_new_rows(
    spark: SparkSession, tmp_path: Path, ol_validator: jsonschema.protocols.Validator
) -> None:
    source = make_source("orders")
    lake = tmp_path / "lake"
    quality_dir = lake / "_quality" / "orders"
    recorder = Recorder()
    write_bronze(spark, source, lake, 0, GOOD)

    first = check(spark, source, lake, recorder)
    assert first.passed, first.message
    assert first.rows_validated == 5
    assert [o.name for o in first.outcomes] == SUITE
    assert all(o.element_count in (5, None) for o in first.outcomes if o.name != "required:customer.email")
    assert first.not_mapped == ["unique:name"]
    assert first.watermark_before is None and first.watermark_after is not None
    # Results, Data Docs and the run's files are where the summary says.
    summary = first.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["passed"] is True and summary["expectations"] == {"total": 18, "passed": 18, "failed": 0}
    results = Path(summary["results_path"])
    assert results.is_file() and results.is_relative_to(quality_dir / "gx" / "uncommitted" / "validations")
    stored = json.loads(results.read_text(encoding="utf-8"))
    assert stored["success"] is True and len(stored["results"]) == 18
    assert Path(summary["data_docs_path"]).is_file() and summary["data_docs_path"].endswith(".html")
    assert Path(summary["data_docs_index"]) == quality_dir / "gx/uncommitted/data_docs/local_site/index.html"
    assert Path(summary["data_docs_index"]).is_file()
    assert json.loads((quality_dir / "last_run.json").read_text(encoding="utf-8")) == summary
    metrics = (quality_dir / "metrics.prom").read_text(encoding="utf-8")
    assert 'restlake_quality_rows_validated{source="orders"} 5.0' in metrics
    assert 'restlake_quality_expectations{result="failed",source="orders"} 0.0' in metrics
    assert 'restlake_quality_last_run_success{source="orders"} 1.0' in metrics

    write_bronze(spark, source, lake, 1, BAD)
    second = check(spark, source, lake, recorder)
    assert not second.passed
    assert second.rows_validated == 3
    assert second.watermark_before == first.watermark_after
    assert second.watermark_after is not None and second.watermark_after > first.watermark_after
    assert failures(second) == BAD_FAILURES
    assert second.message.startswith(
        "8 of 18 expectations failed on 3 rows: unique:source,external_id,version"
    )
    metrics = (quality_dir / "metrics.prom").read_text(encoding="utf-8")
    assert 'restlake_quality_expectations{result="failed",source="orders"} 8.0' in metrics
    assert 'restlake_quality_last_run_success{source="orders"} 0.0' in metrics

    # Nothing new: nothing to validate, the watermark stays.
    third = check(spark, source, lake, recorder)
    assert third.passed and third.rows_validated == 0
    assert third.watermark_after == second.watermark_after

    # --full: every row; the key duplicate now counts both of its rows.
    full = check(spark, source, lake, recorder, full=True)
    assert full.full and full.rows_validated == 8
    assert failures(full) == {**BAD_FAILURES, "unique:source,external_id,version": 2}

    # OpenLineage: START + COMPLETE per run, valid, with the assertions and metrics facets.
    events = recorder.events
    for event in events:
        assert schema_errors(ol_validator, event) == [], event
    assert [e["eventType"] for e in events] == ["START", "COMPLETE"] * 4
    assert {e["job"]["name"] for e in events} == {"restlake.quality.orders"}
    assert [e["run"]["runId"] for e in events[2:4]] == [second.run_id] * 2
    complete = events[3]
    assert complete["inputs"][0]["namespace"] == "file"
    assert complete["inputs"][0]["name"] == str(lake / "bronze" / "orders")
    facets = complete["inputs"][0]["inputFacets"]
    assertions = facets["dataQualityAssertions"]["assertions"]
    assert [a["assertion"] for a in assertions] == SUITE
    assert {a["assertion"] for a in assertions if not a["success"]} == set(BAD_FAILURES)
    assert assertions[0] == {"assertion": "not_null:source", "success": True, "column": "source"}
    assert assertions[5] == {"assertion": "required:name", "success": False, "column": "payload.name"}
    assert "column" not in assertions[3]
    assert facets["dataQualityAssertions"]["_schemaURL"].endswith(
        "DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet"
    )
    metrics_facet = facets["dataQualityMetrics"]
    assert metrics_facet["rowCount"] == 3
    assert metrics_facet["columnMetrics"] == {
        "external_id": {"nullCount": 0},
        "idempotency_key": {"nullCount": 0},
        "payload.id": {"nullCount": 0},
        "payload.name": {"nullCount": 1},
        "payload.score": {"nullCount": 1},
        "source": {"nullCount": 0},
    }


def test_a_bronze_expectation_on_a_missing_column_is_bad_input(spark: SparkSession, tmp_path: Path) -> None:
    spec = {
        "request": {"url": "https://api.example.test/x"},
        "quality": {
            "bronze": {
                "expectations": [
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "p_nope"}},
                ]
            }
        },
    }
    source = make_source("nocol", spec)
    write_bronze(spark, source, tmp_path / "lake", 0, [{"id": 1}])
    from restlake.quality import SuiteError

    with pytest.raises(SuiteError) as err:
        check(spark, source, tmp_path / "lake", Recorder())
    assert [p for p, _ in err.value.problems] == [
        "spec.quality.bronze.expectations[0].kwargs",
        "spec.quality.bronze.expectations[1].kwargs",
    ]
    assert err.value.problems[1][1].startswith(
        "no column 'p_nope' in bronze; it has: batch_id, bronze_key_rows"
    )


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    monkeypatch.setenv("RESTLAKE_LAKE_ROOT", str(lake))
    monkeypatch.setenv("RESTLAKE_QUALITY_DIR", str(tmp_path / "quality"))
    if "RESTLAKE_STATE_DIR" not in os.environ:
        monkeypatch.setenv("RESTLAKE_STATE_DIR", str(REPO / ".restlake"))
    return lake


def source_file(tmp_path: Path, source: IngestionSource, spec: dict[str, Any]) -> Path:
    path = tmp_path / f"{source.name}.yaml"
    document = {
        "apiVersion": "restlake.io/v1alpha1",
        "kind": "IngestionSource",
        "metadata": {"name": source.name},
        "spec": spec,
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def test_cli_exit_codes(spark: SparkSession, tmp_path: Path, cli_env: Path) -> None:
    runner = CliRunner()
    source = make_source("clisrc")
    path = source_file(tmp_path, source, SPEC)
    write_bronze(spark, source, cli_env, 0, GOOD)

    # The session the CLI builds is the fixture's (getOrCreate), so no second JVM starts.
    passing = runner.invoke(app, ["quality", "run", "--source", "clisrc", "-f", str(path)])
    assert passing.exit_code == 0, passing.output
    summary = json.loads(passing.stdout)
    assert summary["passed"] is True and summary["rows_validated"] == 5
    assert summary["results_path"].startswith(str(tmp_path / "quality" / "clisrc" / "gx"))
    assert Path(summary["data_docs_path"]).is_file()

    write_bronze(spark, source, cli_env, 1, BAD)
    failing = runner.invoke(app, ["quality", "run", "-f", str(path), "--full"])
    assert failing.exit_code == 1, failing.output
    summary = json.loads(failing.stdout)
    assert summary["passed"] is False and summary["full"] is True and summary["rows_validated"] == 8
    assert {r["name"]: r["unexpected_count"] for r in summary["results"] if not r["success"]} == {
        **BAD_FAILURES,
        "unique:source,external_id,version": 2,
    }

    bad_spec = {
        **SPEC,
        "quality": {"bronze": {"expectations": [{"type": "expect_it_to_work", "kwargs": {}}]}},
    }
    bad = runner.invoke(app, ["quality", "run", "-f", str(source_file(tmp_path, source, bad_spec))])
    assert bad.exit_code == 2
    assert bad.stdout == ""
    assert (
        "spec.quality.bronze.expectations[0].type: unknown Great Expectations expectation type "
        "'expect_it_to_work'" in bad.stderr
    )

    missing = make_source("neverran")
    no_table = runner.invoke(app, ["quality", "run", "-f", str(source_file(tmp_path, missing, SPEC))])
    assert no_table.exit_code == 2
    assert (
        f"no bronze Delta table for source neverran at {cli_env / 'bronze' / 'neverran'}" in no_table.stderr
    )

    wrong = runner.invoke(app, ["quality", "run", "--source", "other", "-f", str(path)])
    assert wrong.exit_code == 2
    assert "no source 'other'" in wrong.output


# ---------------------------------------------------------------------------------------------------
# A real Pushgateway (Debian's prometheus-pushgateway) receives a run's metrics
# ---------------------------------------------------------------------------------------------------


def test_metrics_reach_a_real_pushgateway_grouped_by_source(pushgateway: str, tmp_path: Path) -> None:
    settings = QualitySettings(pushgateway_url=pushgateway)
    for rows, success in ((7, False), (5, True)):
        registry = run_registry(
            "orders",
            success=success,
            passed=17,
            failed=0 if success else 1,
            rows=rows,
            unexpected=0,
            finished_at=1_800_000_000.0,
            duration_s=21.5,
        )
        assert publish(registry, "orders", tmp_path / "metrics.prom", settings) is True
    with urllib.request.urlopen(f"{pushgateway}/metrics", timeout=10) as response:
        text = response.read().decode()
    labels = 'instance="",job="restlake_quality",source="orders"'
    # The second push replaced the group: only its values are left.
    assert f"restlake_quality_rows_validated{{{labels}}} 5" in text
    assert f"restlake_quality_last_run_success{{{labels}}} 1" in text
    passed = 'instance="",job="restlake_quality",result="passed",source="orders"'
    assert f"restlake_quality_expectations{{{passed}}} 17" in text
    assert f"restlake_quality_last_run_timestamp_seconds{{{labels}}} 1.8e+09" in text
    assert "restlake_quality_rows_validated{" + labels + "} 7" not in text

    down = QualitySettings(pushgateway_url="http://127.0.0.1:9")
    assert publish(registry, "orders", tmp_path / "metrics.prom", down) is False
