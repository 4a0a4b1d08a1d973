"""The inline quality gate: warn counts, drop quarantines, fail stops the batch before any write."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pyspark.sql import SparkSession

from restlake.contracts.spec import Quality
from restlake.jobs.spark.quality import ExpectationFailed
from restlake.stack.manager import StackEndpoints

from .fixtures_stream import StreamJob

pytestmark = pytest.mark.integration

EXPECTATIONS = [
    {"type": "notNull", "field": "score", "name": "has_score"},
    {"type": "range", "field": "id", "min": 0, "max": 10},
    {"type": "regex", "field": "name", "pattern": "^item "},
    {"type": "unique", "fields": ["name"]},
    {"type": "inSet", "field": "kind", "values": ["a", "b"]},
]
VIOLATED = ["has_score", "range:id", "regex:name", "unique:name", "inSet:kind"]


def feed(job: StreamJob) -> None:
    # One partition, so "the first on the topic" (kept by unique) is the first sent.
    item2 = job.envelope(2, name="item 2", score=2, kind="b")
    item6 = job.envelope(6, name="item 1", score=1)  # name not unique in the batch
    job.send(
        job.envelope(1, name="item 1", score=1.0, kind="a"),
        item2,
        job.envelope(3, name="item 3"),  # no score
        job.envelope(20, name="item 20", score=1),  # id out of range
        job.envelope(5, name="x 5", score=1),  # name does not match
        item6,
        job.envelope(7, name="item 7", score=1, kind="c"),  # kind not in the set
        # Fetched twice (same idempotency key): one record, so neither collides with itself.
        item2,
        item6,
        # A newer version of record 1, still named "item 1": a revision, not a second record.
        job.envelope(1, name="item 1", score=4.0, kind="a", minute=1),
    )


def violations(source: str) -> dict[str, float]:
    return {
        name: REGISTRY.get_sample_value(
            "restlake_stream_expectation_violations_total", {"source": source, "expectation": name}
        )
        or 0.0
        for name in VIOLATED
    }


@pytest.mark.parametrize("on_violation", ["warn", "drop", "fail"])
def test_quality_gate(on_violation: str, stack: StackEndpoints, spark: SparkSession, tmp_path: Path) -> None:
    quality = Quality.model_validate({"onViolation": on_violation, "expectations": EXPECTATIONS})
    job = StreamJob(stack, tmp_path, partitions=1, quality=quality)
    feed(job)
    if on_violation == "fail":
        with pytest.raises(ExpectationFailed, match=r"'has_score' violated by 1 of 8 records"):
            job.run(spark)
        assert (job.bronze(spark), job.quarantine(spark), job.postgres(), job.ledger()) == ([], [], {}, [])
        assert not (Path(job.config.checkpoint_path) / "commits" / "0").exists()
        return

    summary = job.run(spark)
    assert violations(job.source) == dict.fromkeys(VIOLATED, 1.0)
    if on_violation == "warn":
        assert (summary.quarantined, summary.dropped, summary.merged) == (0, 0, 7)
        assert len(job.bronze(spark)) == 8  # both versions of record 1
        return
    assert (summary.quarantined, summary.dropped, summary.merged) == (5, 5, 2)
    assert set(job.postgres()) == {"1", "2"}
    assert {r.external_id for r in job.bronze(spark)} == {"1", "2"}
    assert Counter((r.external_id, r.reason) for r in job.quarantine(spark)) == Counter(
        {
            ("3", "expectation:has_score"): 1,
            ("20", "expectation:range:id"): 1,
            ("5", "expectation:regex:name"): 1,
            ("6", "expectation:unique:name"): 1,
            ("7", "expectation:inSet:kind"): 1,
        }
    )
    dropped = REGISTRY.get_sample_value(
        "restlake_stream_rows_dropped_total", {"source": job.source, "expectation": "has_score"}
    )
    assert dropped == 1.0
