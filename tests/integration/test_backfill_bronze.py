"""The backfill re-merges bronze into Postgres: a version range or a time-travel snapshot, a no-op over
what Postgres already holds (no row rewritten), exactly the missing rows restored, as the stream wrote them.

One source is streamed twice (bronze version 1: ids 1-4; version 2: ids 5, 6 and a newer id 2); each
test starts from and returns to that loaded state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pyspark.sql import SparkSession

from restlake.errors import BackfillRangeError
from restlake.jobs.spark import postgres_copy
from restlake.jobs.spark.backfill import BackfillSummary, run_backfill
from restlake.jobs.spark.bronze_range import BronzeRange, read_history
from restlake.stack.manager import StackEndpoints

from .fixtures_stream import StreamJob

pytestmark = pytest.mark.integration

# Everything the merge writes from a staged row; updated_at and the ingest ids say who wrote it last.
CONTENT = (
    "payload, version, version_ts, version_num, content_hash, fetched_at, pulled_at, idempotency_key, "
    "kafka_topic, kafka_partition, kafka_offset"
)


@dataclass(frozen=True)
class Loaded:
    job: StreamJob
    content: dict[str, tuple[Any, ...]]
    written: dict[str, tuple[Any, ...]]
    cut: datetime  # after version 1 was committed, before version 2


def content(job: StreamJob) -> dict[str, tuple[Any, ...]]:
    with psycopg.connect(job.stack.pg_dsn) as conn:
        found = conn.execute(
            f"SELECT external_id, {CONTENT} FROM raw.api_events WHERE source = %s", (job.source,)
        ).fetchall()
    return {r[0]: tuple(r[1:]) for r in found}


def written(job: StreamJob) -> dict[str, tuple[Any, ...]]:
    """Per row the transaction that last wrote it (xmin) and its updated_at: a rewrite changes both."""
    with psycopg.connect(job.stack.pg_dsn) as conn:
        found = conn.execute(
            "SELECT external_id, xmin::text, updated_at, ingest_query_id FROM raw.api_events"
            " WHERE source = %s",
            (job.source,),
        ).fetchall()
    return {r[0]: tuple(r[1:]) for r in found}


def delete(job: StreamJob, *ids: int) -> None:
    with psycopg.connect(job.stack.pg_dsn) as conn:
        gone = conn.execute(
            "DELETE FROM raw.api_events WHERE source = %s AND external_id = ANY(%s)",
            (job.source, [str(i) for i in ids]),
        ).rowcount
    assert gone == len(ids)


def counts(summary: BackfillSummary) -> tuple[int, int, int, int, int]:
    return (summary.rows_read, summary.rows_merged_in, summary.inserted, summary.updated, summary.unchanged)


@pytest.fixture(scope="module")
def loaded(
    stack: StackEndpoints, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Loaded]:
    job = StreamJob(stack, tmp_path_factory.mktemp("bronze-backfill"))
    job.send(*(job.envelope(i, name=f"n{i}") for i in range(1, 5)))
    assert job.run(spark).bronze_written == 4
    time.sleep(1.0)  # commit timestamps are milliseconds; keep the cut clear of both commits
    cut = datetime.now(UTC)
    time.sleep(1.0)
    job.send(
        job.envelope(2, name="n2-renamed", minute=5),
        job.envelope(5, name="n5", minute=5),
        job.envelope(6, name="n6", minute=5),
    )
    assert job.run(spark).bronze_written == 3
    history = read_history(spark, job.config.bronze_path, BronzeRange(from_version=0))
    assert [(c.version, c.operation, c.rows_added) for c in history.commits] == [
        (2, "WRITE", 3),
        (1, "WRITE", 4),
        (0, "CREATE TABLE", None),
    ]
    assert history.complete
    state = content(job)
    assert sorted(state) == ["1", "2", "3", "4", "5", "6"]
    yield Loaded(job, state, written(job), cut)


@pytest.fixture
def job(loaded: Loaded) -> Iterator[StreamJob]:
    assert content(loaded.job) == loaded.content
    yield loaded.job
    assert content(loaded.job) == loaded.content, "a test left Postgres changed"


def test_replaying_loaded_versions_changes_nothing(
    loaded: Loaded, job: StreamJob, spark: SparkSession
) -> None:
    progress: list[tuple[int, int]] = []
    summary = run_backfill(
        spark,
        job.config,
        BronzeRange(from_version=1),
        run_id="noop",
        progress=lambda done, total: progress.append((done, total)),
    )
    assert summary.origin == "bronze"
    assert summary.range == {"table": job.config.bronze_path, "from_version": 1, "to_version": 2}
    assert summary.topic is None
    # 7 record versions; the two of id 2 are one key for the merge, so 6 unchanged.
    assert counts(summary) == (7, 7, 0, 0, 6)
    assert (summary.rows_invalid, summary.rows_duplicate, summary.rows_dropped, summary.chunks) == (
        0,
        0,
        0,
        1,
    )
    assert progress == [(7, 7)]
    assert written(job) == loaded.written  # same xmin and updated_at: not one row rewritten
    assert ("backfill-noop", 0, 7, 0) in job.ledger()


@pytest.mark.parametrize("staging", ["executors", "driver"])
def test_as_of_latest_restores_exactly_the_deleted_rows(
    loaded: Loaded, job: StreamJob, spark: SparkSession, staging: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if staging == "driver":  # as where the executors cannot reach Postgres (a Unix socket, no jar)
        monkeypatch.setattr(postgres_copy, "jdbc_target", lambda dsn: None)
    else:
        assert postgres_copy.available(spark) and postgres_copy.jdbc_target(job.config.pg_dsn) is not None
    delete(job, 1, 5)
    summary = run_backfill(spark, job.config, BronzeRange(as_of=2), run_id=f"restore-{staging}")
    assert counts(summary) == (7, 7, 2, 0, 4)
    assert summary.range["as_of_version"] == 2
    # The restored rows are what the stream merged, field for field, whichever way they were staged.
    assert content(job) == loaded.content
    now = written(job)
    assert {k: v for k, v in now.items() if k not in {"1", "5"}} == {
        k: v for k, v in loaded.written.items() if k not in {"1", "5"}
    }
    assert now["1"][2] == now["5"][2] == f"backfill-restore-{staging}"


def test_version_range_restores_exactly_the_rows_of_those_versions(
    loaded: Loaded, job: StreamJob, spark: SparkSession
) -> None:
    delete(job, 1, 5, 6)
    two = run_backfill(spark, job.config, BronzeRange(from_version=2, to_version=2))
    assert counts(two) == (3, 3, 2, 0, 1)  # ids 5, 6 back; id 2's version-2 row is what Postgres holds
    assert sorted(content(job)) == ["2", "3", "4", "5", "6"]  # id 1 came in version 1, not restored
    one = run_backfill(spark, job.config, BronzeRange(from_version=1, to_version=1))
    # id 1 back; id 2's older version-1 row does not overwrite the newer one Postgres holds.
    assert counts(one) == (4, 4, 1, 0, 3)
    assert content(job) == loaded.content
    untouched = {k: v for k, v in loaded.written.items() if k not in {"1", "5", "6"}}
    assert {k: v for k, v in written(job).items() if k in untouched} == untouched


def test_as_of_a_time_reads_the_snapshot_then(loaded: Loaded, job: StreamJob, spark: SparkSession) -> None:
    delete(job, 4, 5)
    then = run_backfill(spark, job.config, BronzeRange(as_of=loaded.cut))
    assert then.range["as_of_version"] == 1
    assert then.range["as_of_time"] == loaded.cut.isoformat().replace("+00:00", "Z")
    assert counts(then) == (4, 4, 1, 0, 3)  # id 4 back; id 5 did not exist yet
    assert sorted(content(job)) == ["1", "2", "3", "4", "6"]
    assert content(job)["2"] == loaded.content["2"]  # the snapshot's older id 2 did not win
    rest = run_backfill(spark, job.config, BronzeRange(from_version=2))
    assert (rest.inserted, rest.updated) == (1, 0)


def test_bad_bronze_ranges_are_refused_before_anything_is_merged(
    job: StreamJob, spark: SparkSession, tmp_path: Path
) -> None:
    ledger = job.ledger()
    table = job.config.bronze_path
    with pytest.raises(
        BackfillRangeError, match=rf"^--from-version: version 3 is after the latest version 2 of {table}$"
    ):
        run_backfill(spark, job.config, BronzeRange(from_version=3))
    with pytest.raises(
        BackfillRangeError, match=rf"^--to-version: version 7 is after the latest version 2 of {table}$"
    ):
        run_backfill(spark, job.config, BronzeRange(from_version=1, to_version=7))
    with pytest.raises(
        BackfillRangeError, match=rf"^--as-of: 2000-01-01T00:00:00Z is before {table} existed"
    ):
        run_backfill(spark, job.config, BronzeRange(as_of=datetime(2000, 1, 1, tzinfo=UTC)))
    missing = job.config.model_copy(update={"bronze_path": str(tmp_path / "no-such-table")})
    with pytest.raises(BackfillRangeError, match=r"^--as-of: no bronze Delta table at .*no-such-table"):
        run_backfill(spark, missing, BronzeRange(as_of=0))
    assert job.ledger() == ledger


def test_an_open_version_range_reads_up_to_the_version_its_run_pinned(
    loaded: Loaded, job: StreamJob, spark: SparkSession
) -> None:
    # Run "first" starts: the table's newest version then, 2, is recorded as the range's end.
    first = run_backfill(spark, job.config, BronzeRange(from_version=1), run_id="first")
    assert first.range["to_version"] == 2 and counts(first)[0] == 7
    # A run whose first start saw version 1 as the newest (the stream appended version 2 since):
    # resumed, it reads versions 1..1 as it did then, not the grown table.
    with psycopg.connect(job.stack.pg_dsn) as conn:
        conn.execute(
            "INSERT INTO raw.backfill_ranges (source, query_id, pinned) VALUES (%s, %s, %s)",
            (job.source, "backfill-earlier", '{"to_version": 1}'),
        )
        pins = dict(
            conn.execute(
                "SELECT query_id, pinned FROM raw.backfill_ranges WHERE source = %s AND query_id = ANY(%s)",
                (job.source, ["backfill-first", "backfill-earlier"]),
            ).fetchall()
        )
    assert pins == {"backfill-first": {"to_version": 2}, "backfill-earlier": {"to_version": 1}}
    earlier = run_backfill(spark, job.config, BronzeRange(from_version=1), run_id="earlier")
    assert earlier.range["to_version"] == 1
    assert counts(earlier) == (4, 4, 0, 0, 4)
