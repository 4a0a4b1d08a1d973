"""The stream job's batch-done lines read back: the steps a batch spent its time on."""

from __future__ import annotations

from restlake.jobs.spark.batch_log import step_medians

LOG = "\n".join(
    [
        "2026-12-02 00:00:01 INFO restlake.jobs.spark.batch batch done source=s batch_id=0 rows_read=9 "
        "quarantined=0 dropped=0 schema_fallback=0 bronze_written=9 pg_inserted=9 pg_updated=0 "
        "pg_replayed=False duration_s=30.00 steps=validate:20.00 quality:0.00 bronze:5.00 postgres:5.00",
        "2026-12-02 00:00:02 INFO restlake.jobs.spark.batch batch done source=s batch_id=1 rows_read=9 "
        "quarantined=0 dropped=0 schema_fallback=0 bronze_written=9 pg_inserted=9 pg_updated=0 "
        "pg_replayed=False duration_s=4.00 steps=validate:1.00 quality:0.00 bronze:2.00 postgres:1.00",
        "2026-12-02 00:00:03 INFO some other line steps=validate:99",
        "2026-12-02 00:00:04 INFO restlake.jobs.spark.batch batch done source=s batch_id=2 rows_read=9 "
        "quarantined=0 dropped=0 schema_fallback=0 bronze_written=9 pg_inserted=9 pg_updated=0 "
        "pg_replayed=False duration_s=6.00 steps=validate:3.00 quality:0.00 bronze:2.00 postgres:1.00",
    ]
)


def test_medians_skip_the_first_batch_and_other_lines() -> None:
    assert step_medians(LOG) == {
        "batch": 5.0,
        "validate": 2.0,
        "quality": 0.0,
        "bronze": 2.0,
        "postgres": 1.0,
    }


def test_sink_steps_are_kept_apart_by_their_prefix() -> None:
    line = (
        "x INFO restlake.jobs.spark.batch batch done source=s batch_id=3 rows_read=1 duration_s=2.00 "
        "steps=validate:1.00 bronze:1.00 bronze.claim:0.25 bronze.append:0.75 postgres.merge:0.50"
    )
    assert step_medians(line) == {
        "batch": 2.0,
        "validate": 1.0,
        "bronze": 1.0,
        "bronze.claim": 0.25,
        "bronze.append": 0.75,
        "postgres.merge": 0.5,
    }
