"""Run the bronze checkpoint: GX's Spark engine over the source's bronze rows (since the last run).

One run: build the suite from the spec, read the source's rows of the bronze Delta table written
after the watermark (all with ``full``), run a GX checkpoint on that DataFrame, which stores the
validation result (JSON) and rebuilds Data Docs, then advance the watermark, write and push the
metrics and send the OpenLineage events. The run completes, and the watermark advances, whether
or not the expectations passed: bronze is append-only, so rows that failed once would fail every
later run and hide whether the new rows are good; their failure stays in the stored results.

Why GX's Spark engine (``data_sources.add_spark`` with a dataframe asset) and not pandas: it works
with pyspark 4.2 (the ``[spark]`` extra only pins an older pyspark), every metric is a Spark
aggregate, so nothing of the table is collected to the driver but GX's sample of unexpected values.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from restlake.contracts.spec import IngestionSource
from restlake.errors import PermanentError, RestlakeError
from restlake.lineage.emitter import LineageEmitter
from restlake.lineage.quality import Assertion, QualityLineage
from restlake.quality import metrics
from restlake.quality.frame import validation_frame
from restlake.quality.results import QualityPaths, read_watermark, write_json, write_watermark
from restlake.quality.settings import QualitySettings
from restlake.quality.suite import BronzeSuite, SuiteError, build_suite, referenced_columns

log = logging.getLogger(__name__)

_CHECK = "restlake_check"
_DATASOURCE = "bronze"
_ASSET = "rows"
_BATCH = "whole-frame"


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result; counts are None for expectations that have none (table-level)."""

    name: str
    type: str
    origin: str
    column: str | None
    success: bool
    unexpected_count: int | None
    element_count: int | None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "origin": self.origin,
            "column": self.column,
            "success": self.success,
            "unexpected_count": self.unexpected_count,
            "element_count": self.element_count,
            "error": self.error,
        }


@dataclass
class QualityRun:
    """What one checkpoint run found; ``passed`` and ``summary()`` feed the QualityPassing condition."""

    source: str
    run_id: str
    full: bool
    rows_validated: int
    outcomes: list[ExpectationOutcome]
    watermark_before: datetime | None
    watermark_after: datetime | None
    results_path: str | None
    data_docs_path: str | None
    data_docs_index: str
    started_at: datetime
    duration_s: float
    not_mapped: list[str] = field(default_factory=list)
    metrics_pushed: bool | None = None

    @property
    def passed(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    @property
    def message(self) -> str:
        """One line for a status condition or a log: what failed, with counts, or that all passed."""
        if self.passed:
            return f"{len(self.outcomes)} expectations passed on {self.rows_validated} bronze rows"
        listed = ", ".join(
            f"{o.name} ({o.unexpected_count} unexpected)" if o.unexpected_count is not None else o.name
            for o in self.failed
        )
        counts = f"{len(self.failed)} of {len(self.outcomes)} expectations failed"
        return f"{counts} on {self.rows_validated} rows: {listed}"

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (what ``restlake quality run`` prints and ``last_run.json`` holds)."""
        return {
            "source": self.source,
            "run_id": self.run_id,
            "passed": self.passed,
            "message": self.message,
            "full": self.full,
            "rows_validated": self.rows_validated,
            "expectations": {
                "total": len(self.outcomes),
                "passed": len(self.outcomes) - len(self.failed),
                "failed": len(self.failed),
            },
            "results": [o.as_dict() for o in self.outcomes],
            "not_mapped": list(self.not_mapped),
            "watermark_before": self.watermark_before.isoformat() if self.watermark_before else None,
            "watermark_after": self.watermark_after.isoformat() if self.watermark_after else None,
            "results_path": self.results_path,
            "data_docs_path": self.data_docs_path,
            "data_docs_index": self.data_docs_index,
            "started_at": self.started_at.isoformat(),
            "duration_s": round(self.duration_s, 3),
            "metrics_pushed": self.metrics_pushed,
        }


def run_checkpoint(
    spark: SparkSession,
    source: IngestionSource,
    *,
    lake_root: str,
    full: bool = False,
    settings: QualitySettings | None = None,
    lineage: LineageEmitter | None = None,
) -> QualityRun:
    """Validate the source's bronze rows (since the last run unless ``full``); see the module doc."""
    settings = settings or QualitySettings()
    suite = build_suite(source)
    paths = QualityPaths.for_source(settings, lake_root, source.identity)
    bronze_uri = source.bronze_path(lake_root)
    incremental = not full and (source.spec.quality is None or source.spec.quality.bronze.since_last_run)
    watermark = read_watermark(paths) if incremental else None
    run_id = str(uuid.uuid4())
    started_at = datetime.now(UTC)
    started = time.monotonic()
    events = QualityLineage(lineage or LineageEmitter.from_settings(), source.identity, bronze_uri, run_id)
    events.start()
    log.info(
        "quality run starting source=%s run_id=%s full=%s watermark=%s expectations=%d",
        source.identity,
        run_id,
        not incremental,
        watermark.isoformat() if watermark else None,
        len(suite.checks),
    )
    try:
        run = _validate(spark, suite, paths, bronze_uri, watermark, run_id, started_at)
    except Exception as exc:
        duration = time.monotonic() - started
        events.fail(f"{type(exc).__name__}: {exc}" if isinstance(exc, RestlakeError) else type(exc).__name__)
        registry = metrics.run_registry(
            source.identity,
            success=False,
            passed=0,
            failed=0,
            rows=0,
            unexpected=0,
            finished_at=time.time(),
            duration_s=duration,
        )
        metrics.publish(registry, source.identity, paths.metrics, settings)
        raise
    run.full = not incremental
    run.duration_s = time.monotonic() - started
    registry = metrics.run_registry(
        source.identity,
        success=run.passed,
        passed=len(run.outcomes) - len(run.failed),
        failed=len(run.failed),
        rows=run.rows_validated,
        unexpected=sum(o.unexpected_count or 0 for o in run.outcomes),
        finished_at=time.time(),
        duration_s=run.duration_s,
    )
    run.metrics_pushed = metrics.publish(registry, source.identity, paths.metrics, settings)
    events.complete(
        run.rows_validated,
        [Assertion(o.name, o.success, o.column) for o in run.outcomes],
        _null_counts(suite, run.outcomes),
    )
    write_json(paths.last_run, run.summary())
    log.info(
        "quality run done source=%s run_id=%s passed=%s %s", source.identity, run_id, run.passed, run.message
    )
    return run


def _validate(
    spark: SparkSession,
    suite: BronzeSuite,
    paths: QualityPaths,
    bronze_uri: str,
    watermark: datetime | None,
    run_id: str,
    started_at: datetime,
) -> QualityRun:
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    frame = validation_frame(spark, bronze_uri, suite, watermark)
    _check_columns(suite, frame.columns)
    # Persisted: the count, the watermark and every GX metric read it; GX's own persist is off so
    # the frame is cached once.
    frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        stats = frame.agg(F.count(F.lit(1)).alias("rows"), F.max("ingested_at").alias("newest")).first()
        rows = int(stats["rows"]) if stats is not None else 0
        newest: datetime | None = stats["newest"] if stats is not None else None

        paths.root.mkdir(parents=True, exist_ok=True)
        context = gx.get_context(mode="file", project_root_dir=str(paths.gx_project))
        # tqdm bars on stderr are noise in a batch job's log.
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        datasource = context.data_sources.add_or_update_spark(name=_DATASOURCE, persist=False)
        asset = datasource.add_dataframe_asset(name=_ASSET)
        batch = asset.add_batch_definition_whole_dataframe(_BATCH)
        gx_suite = suite.gx_suite()
        for i, expectation in enumerate(gx_suite.expectations):
            expectation.meta = {**(expectation.meta or {}), _CHECK: i}
        gx_suite = context.suites.add_or_update(gx_suite)
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=suite.name, data=batch, suite=gx_suite)
        )
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=suite.name,
                validation_definitions=[definition],
                actions=[UpdateDataDocsAction(name="data_docs")],
                result_format={"result_format": "SUMMARY"},
            )
        )
        result = checkpoint.run(
            batch_parameters={"dataframe": frame},
            run_id=RunIdentifier(run_name=run_id, run_time=started_at),
        )
    finally:
        frame.unpersist()

    ((key, validation),) = result.run_results.items()
    outcomes = _outcomes(suite, validation.results)
    store = context.validation_results_store.store_backend
    results_url = store.get_url_for_key(key.to_tuple())
    results_path = _local(results_url) if results_url else None
    docs = context.get_docs_sites_urls(resource_identifier=key)
    site_url = docs[0].get("site_url") if docs else None
    data_docs_path = _local(site_url) if site_url else None

    watermark_after = watermark
    if newest is not None:
        watermark_after = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
        write_watermark(paths, watermark_after, run_id)
    return QualityRun(
        source=suite.source,
        run_id=run_id,
        full=watermark is None,
        rows_validated=rows,
        outcomes=outcomes,
        watermark_before=watermark,
        watermark_after=watermark_after,
        results_path=results_path,
        data_docs_path=data_docs_path,
        data_docs_index=str(paths.data_docs_index),
        started_at=started_at,
        duration_s=0.0,
        not_mapped=list(suite.not_mapped),
    )


def _check_columns(suite: BronzeSuite, columns: list[str]) -> None:
    # GX would report a missing column as an exception inside one result; a spec naming a column
    # bronze does not have is a bad input, said once with the field path and what exists.
    present = set(columns)
    problems = [
        (
            f"{check.origin}.kwargs",
            f"no column {name!r} in bronze; it has: {', '.join(sorted(present))}",
        )
        for check in suite.checks
        if check.origin.startswith("spec.quality.bronze.")
        for name in referenced_columns(check.expectation)
        if name not in present
    ]
    if problems:
        raise SuiteError(suite.source, problems)


def _outcomes(suite: BronzeSuite, results: list[Any]) -> list[ExpectationOutcome]:
    by_index: dict[int, Any] = {}
    for r in results:
        index = (r.expectation_config.meta or {}).get(_CHECK)
        if isinstance(index, int):
            by_index[index] = r
    outcomes: list[ExpectationOutcome] = []
    for i, check in enumerate(suite.checks):
        r = by_index.get(i)
        if r is None:
            raise PermanentError(f"GX returned no result for expectation {check.name!r} ({check.origin})")
        detail = r.result or {}
        info = r.exception_info or {}
        error = None
        if info.get("raised_exception"):
            error = str(info.get("exception_message") or "raised an exception")
        outcomes.append(
            ExpectationOutcome(
                name=check.name,
                type=check.expectation.expectation_type,
                origin=check.origin,
                column=check.column,
                success=bool(r.success),
                unexpected_count=_int(detail.get("unexpected_count")),
                element_count=_int(detail.get("element_count")),
                error=error,
            )
        )
    return outcomes


def _null_counts(suite: BronzeSuite, outcomes: list[ExpectationOutcome]) -> dict[str, int]:
    """nullCount per column from the unconditional not-null expectations (for dataQualityMetrics)."""
    counts: dict[str, int] = {}
    for check, outcome in zip(suite.checks, outcomes, strict=True):
        kwargs = check.expectation.configuration.kwargs
        if (
            check.expectation.expectation_type == "expect_column_values_to_not_be_null"
            and not kwargs.get("row_condition")
            and check.column is not None
            and outcome.unexpected_count is not None
        ):
            counts[check.column] = outcome.unexpected_count
    return counts


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) else None


def _local(url: str) -> str:
    return url.removeprefix("file://")
