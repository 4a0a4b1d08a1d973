"""The inline quality gate: the spec's expectations checked on every micro-batch, like DLT expectations.

Each expectation becomes a boolean "violated" column over the payload (a VARIANT), so a batch is
checked in one Spark job whatever the number of expectations. ``onViolation`` then decides:

- ``warn``: the violations are counted (metrics, log) and every record continues;
- ``drop``: violating records go to quarantine with reason ``expectation:<name>`` (the first
  expectation they violate, in spec order); the others continue;
- ``fail``: the batch raises ``ExpectationFailed`` before anything of it is written, so the
  query stops and the batch is retried from the checkpoint once the data or the spec is fixed.

A value that is absent or JSON null only violates ``notNull``: for ``inSet``, ``range``, ``regex``
and ``unique`` it passes, as NULL passes a SQL CHECK or UNIQUE constraint. ``unique`` is within
the batch, after exact duplicates (same idempotency key) are removed, and over records, not
versions: two versions of one external id never collide. Of the records sharing a value, the
first on the topic is kept and the others violate. ``regex`` is Spark's RLIKE (Java regex, a match
anywhere in the value: anchor with ``^…$``), which agrees with Python's syntax on the usual
constructs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from restlake.contracts.source.quality import (
    Expectation,
    InSetExpectation,
    NotNullExpectation,
    Quality,
    RangeExpectation,
    RegexExpectation,
    UniqueExpectation,
    expectation_name,
)
from restlake.errors import PermanentError
from restlake.jobs.spark.bronze import dedupe_by_key

log = logging.getLogger(__name__)

EXPECTATION = "_expectation"
REASON_PREFIX = "expectation:"


class ExpectationFailed(PermanentError):
    """A batch violated an expectation of a source whose ``onViolation`` is ``fail``."""

    def __init__(self, source: str, batch_id: int, violations: dict[str, int], rows: int) -> None:
        self.source = source
        self.batch_id = batch_id
        self.violations = violations
        listed = ", ".join(f"{name!r} violated by {n} of {rows} records" for name, n in violations.items())
        super().__init__(
            f"quality gate failed for source {source} batch {batch_id} (onViolation: fail): {listed}; "
            "nothing of the batch was written, it is retried when the query restarts"
        )


def _path(field: str) -> str:
    parts = [p.replace("\\", "\\\\").replace("'", "\\'") for p in field.split(".")]
    return "$" + "".join(f"['{p}']" for p in parts)


def _violated(expectation: Expectation, payload: Column) -> Column:
    """True where the record violates ``expectation``; never NULL."""
    if isinstance(expectation, UniqueExpectation):
        keys = [F.to_json(F.try_variant_get(payload, _path(f), "variant")) for f in expectation.fields]
        # The running frame's first row is the group's first on the topic. Revisions of one
        # record (the same external id, another version) are that record, not two that collide:
        # an API that changes a record twice between two polls is not a quality problem.
        on_topic = Window.partitionBy(*keys).orderBy("kafka_partition", "kafka_offset")
        other_record = F.col("external_id") != F.first("external_id").over(on_topic)
        any_key = F.greatest(*[k.isNotNull() for k in keys]) if len(keys) > 1 else keys[0].isNotNull()
        return any_key & F.coalesce(other_record, F.lit(False))
    path = _path(expectation.field)
    if isinstance(expectation, NotNullExpectation):
        value = F.try_variant_get(payload, path, "variant")
        return value.isNull() | F.is_variant_null(value)
    if isinstance(expectation, InSetExpectation):
        text = F.try_variant_get(payload, path, "string")
        return F.coalesce(~text.isin([str(v) for v in expectation.values]), F.lit(False))
    if isinstance(expectation, RangeExpectation):
        number = F.try_variant_get(payload, path, "double")
        out = F.lit(False)
        if expectation.min is not None:
            out = out | (number < F.lit(expectation.min))
        if expectation.max is not None:
            out = out | (number > F.lit(expectation.max))
        return F.coalesce(out, F.lit(False))
    if isinstance(expectation, RegexExpectation):
        text = F.try_variant_get(payload, path, "string")
        return F.coalesce(~text.rlike(expectation.pattern), F.lit(False))
    raise PermanentError(f"unknown expectation type {expectation.type!r}")  # pragma: no cover


@dataclass(frozen=True)
class GateResult:
    """The batch with ``EXPECTATION`` (first violated expectation's name, else NULL) and the counts."""

    checked: DataFrame
    violations: dict[str, int]
    rows: int
    cached: DataFrame
    """The persisted frame ``checked`` derives from; the caller unpersists it after the batch."""


def check(rows: DataFrame, quality: Quality, *, payload_variant: str) -> GateResult:
    """Evaluate every expectation on ``rows`` (valid records); one Spark job for the counts.

    With a ``unique`` expectation the rows are deduplicated by idempotency key first, and
    ``checked`` holds one row per key: a record fetched twice (a retried page, a restarted
    fetcher) is one record, not two that collide.
    """
    expectations = list(quality.expectations)
    if any(isinstance(e, UniqueExpectation) for e in expectations):
        rows = dedupe_by_key(rows)
    names = [expectation_name(e) for e in expectations]
    flags = [f"_violated_{i}" for i in range(len(expectations))]
    payload = F.col(payload_variant)
    flagged = rows.select(
        "*", *[_violated(e, payload).alias(f) for e, f in zip(expectations, flags, strict=True)]
    )
    first: Column = F.lit(None).cast("string")
    for name, flag in reversed(list(zip(names, flags, strict=True))):
        first = F.when(F.col(flag), F.lit(name)).otherwise(first)
    # Persisted: the counts, the quarantine and the valid rows all read it, and a unique
    # expectation's window must not be computed three times.
    flagged = flagged.persist(StorageLevel.MEMORY_AND_DISK)
    checked = flagged.withColumn(EXPECTATION, first)
    summary = checked.agg(
        F.count(F.lit(1)).alias("_rows"), *[F.sum(F.col(f).cast("long")).alias(f) for f in flags]
    ).first()
    total = int(summary["_rows"]) if summary is not None else 0
    violations: dict[str, int] = {}
    for name, flag in zip(names, flags, strict=True):
        n = int(summary[flag] or 0) if summary is not None else 0
        if n:
            violations[name] = violations.get(name, 0) + n
    return GateResult(checked.drop(*flags), violations, total, flagged)
