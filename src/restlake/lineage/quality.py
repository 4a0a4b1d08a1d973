"""Run events of a bronze checkpoint run: input the bronze table, with its data-quality facets.

A run whose expectations failed still COMPLETEs: the assertions carry the verdict (as OpenLineage
intends), FAIL is for a run that could not validate at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from restlake.lineage.datasets import BRONZE_FIELDS, delta_table, facet
from restlake.lineage.emitter import LineageEmitter
from restlake.lineage.events import EventType, run_event

_SPEC = "https://openlineage.io/spec/facets"
ASSERTIONS_FACET_URL = (
    f"{_SPEC}/1-0-1/DataQualityAssertionsDatasetFacet.json#/$defs/DataQualityAssertionsDatasetFacet"
)
METRICS_FACET_URL = (
    f"{_SPEC}/1-0-2/DataQualityMetricsInputDatasetFacet.json#/$defs/DataQualityMetricsInputDatasetFacet"
)


def quality_job_name(source: str) -> str:
    return f"restlake.quality.{source}"


@dataclass(frozen=True)
class Assertion:
    """One expectation's outcome; ``column`` None means the assertion is about the whole dataset."""

    assertion: str
    success: bool
    column: str | None = None


def assertions_facet(assertions: Sequence[Assertion]) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for a in assertions:
        item: dict[str, Any] = {"assertion": a.assertion, "success": a.success}
        if a.column is not None:
            item["column"] = a.column
        items.append(item)
    return facet(ASSERTIONS_FACET_URL, assertions=items)


def metrics_facet(rows: int, null_counts: dict[str, int]) -> dict[str, Any]:
    columns = {column: {"nullCount": n} for column, n in sorted(null_counts.items())}
    return facet(METRICS_FACET_URL, rowCount=rows, columnMetrics=columns)


@dataclass
class QualityLineage:
    """The START and final events of one checkpoint run over ``bronze_uri``."""

    emitter: LineageEmitter
    source: str
    bronze_uri: str
    run_id: str

    def event(
        self,
        event_type: EventType,
        *,
        rows: int | None = None,
        assertions: Sequence[Assertion] = (),
        null_counts: dict[str, int] | None = None,
        error: str | None = None,
    ) -> dict[str, Any]:
        bronze = delta_table(self.bronze_uri, BRONZE_FIELDS)
        if rows is not None:
            bronze["inputFacets"] = {
                "dataQualityAssertions": assertions_facet(assertions),
                "dataQualityMetrics": metrics_facet(rows, null_counts or {}),
            }
        return run_event(
            event_type,
            run_id=self.run_id,
            job_namespace=self.emitter.namespace,
            job_name=quality_job_name(self.source),
            inputs=[bronze],
            error=error,
        )

    def start(self) -> bool:
        return self.emitter.emit(self.event("START"))

    def complete(self, rows: int, assertions: Sequence[Assertion], null_counts: dict[str, int]) -> bool:
        return self.emitter.emit(
            self.event("COMPLETE", rows=rows, assertions=assertions, null_counts=null_counts)
        )

    def fail(self, error: str) -> bool:
        return self.emitter.emit(self.event("FAIL", error=error))
