"""The Snowflake sync over a real bronze table, written by the stream job from Kafka, into fakesnow.

fakesnow is a DuckDB-backed EMULATOR of the Snowflake connector, not Snowflake: no account is
reachable from the tests. tests/snowflake_emulator.py lists what it cannot check (sign-in, stages
and COPY INTO, transactions around a MERGE, Snowflake's concurrency).

One source streams twice before the first sync (bronze versions 1 and 2), then a third time
(version 3: a newer id 2, a new id 7); each test checks exact row counts, that the newest version
of every record won, and what the load ledger holds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from restlake.contracts.snowflake_sync import SnowflakeSyncConfig
from restlake.jobs.spark.snowflake_sync import sync
from restlake.stack.manager import StackEndpoints

from ..snowflake_emulator import PASSWORD_ENV, config, emulator, query
from .fixtures_stream import StreamJob

pytestmark = pytest.mark.integration


class Crash(BaseException):
    """Stands for the process dying: a BaseException, so no ``except Exception`` on the way catches it."""


def names(job: StreamJob) -> dict[str, str]:
    """external_id -> the payload's name, as Snowflake holds it."""
    rows = query(
        "SELECT EXTERNAL_ID, PAYLOAD FROM API_EVENTS WHERE SOURCE = %(source)s", {"source": job.source}
    )
    return {r[0]: json.loads(r[1])["name"] for r in rows}


def ledger(job: StreamJob) -> list[tuple[int, int, int, int]]:
    return [
        tuple(int(v) for v in r)
        for r in query(
            "SELECT FROM_VERSION, TO_VERSION, ROWS_IN, ROWS_MERGED FROM RESTLAKE_LOADS"
            " WHERE SOURCE = %(source)s ORDER BY FROM_VERSION, LOADED_AT",
            {"source": job.source},
        )
    ]


def count(job: StreamJob) -> int:
    return int(query("SELECT COUNT(*) FROM API_EVENTS WHERE SOURCE = %(s)s", {"s": job.source})[0][0])


@pytest.fixture
def job(stack: StackEndpoints, spark: SparkSession, tmp_path: Path) -> Iterator[StreamJob]:
    job = StreamJob(stack, tmp_path / "lake", postgres_enabled=False)
    job.send(*(job.envelope(i, name=f"n{i}") for i in range(1, 5)))
    assert job.run(spark).bronze_written == 4  # version 1
    job.send(job.envelope(2, name="n2-v2", minute=5), job.envelope(5, name="n5", minute=5))
    assert job.run(spark).bronze_written == 2  # version 2
    with emulator():
        yield job


def cfg(job: StreamJob, **overrides: Any) -> SnowflakeSyncConfig:
    return config(job.source, job.config.bronze_path, **overrides)


def third_version(job: StreamJob, spark: SparkSession) -> None:
    job.send(
        job.envelope(2, name="n2-v3", minute=9),
        job.envelope(7, name="n7", minute=9),
        job.envelope(3, name="n3-older", minute=-5),  # older than the stored id 3: must not win
    )
    assert job.run(spark).bronze_written == 3  # version 3


def test_two_incremental_syncs_are_exact(job: StreamJob, spark: SparkSession) -> None:
    first = sync(spark, cfg(job), environ=PASSWORD_ENV)
    assert (first.from_version, first.to_version) == (0, 2)
    assert (first.rows_in, first.inserted, first.updated) == (6, 5, 0)  # two versions of id 2: one key
    assert names(job) == {"1": "n1", "2": "n2-v2", "3": "n3", "4": "n4", "5": "n5"}

    third_version(job, spark)
    second = sync(spark, cfg(job), environ=PASSWORD_ENV)
    assert (second.from_version, second.to_version) == (3, 3)  # only what the ledger lacked
    assert (second.rows_in, second.inserted, second.updated) == (3, 1, 1)
    assert count(job) == 6
    assert names(job) == {"1": "n1", "2": "n2-v3", "3": "n3", "4": "n4", "5": "n5", "7": "n7"}
    assert ledger(job) == [(0, 2, 6, 5), (3, 3, 3, 2)]

    nothing = sync(spark, cfg(job), environ=PASSWORD_ENV)
    assert (nothing.from_version, nothing.rows_in, nothing.loads) == (None, 0, [])


def test_steps_of_one_version_commit_one_load_each(job: StreamJob, spark: SparkSession) -> None:
    summary = sync(spark, cfg(job, max_versions_per_load=1), environ=PASSWORD_ENV)
    # Version 0 created the table: an empty load that still moves the ledger on.
    assert ledger(job) == [(0, 0, 0, 0), (1, 1, 4, 4), (2, 2, 2, 2)]
    assert (summary.inserted, summary.updated) == (5, 1)
    assert names(job)["2"] == "n2-v2"


def test_a_crash_between_merge_and_ledger_then_a_rerun_is_exact(job: StreamJob, spark: SparkSession) -> None:
    sync(spark, cfg(job), environ=PASSWORD_ENV)
    third_version(job, spark)

    def crash(to_version: int) -> None:
        assert to_version == 3
        raise Crash

    with pytest.raises(Crash):
        sync(spark, cfg(job), environ=PASSWORD_ENV, before_ledger=crash)
    # Version 3 is merged, the ledger still ends at 2.
    assert ledger(job) == [(0, 2, 6, 5)]
    assert names(job)["2"] == "n2-v3"
    stamped = query(
        "SELECT EXTERNAL_ID, UPDATED_AT, INGEST_QUERY_ID FROM API_EVENTS WHERE SOURCE = %(s)s ORDER BY 1",
        {"s": job.source},
    )

    rerun = sync(spark, cfg(job), environ=PASSWORD_ENV)
    assert (rerun.from_version, rerun.to_version) == (3, 3)
    assert (rerun.rows_in, rerun.inserted, rerun.updated) == (3, 0, 0)  # the replay changed no row
    assert (
        query(
            "SELECT EXTERNAL_ID, UPDATED_AT, INGEST_QUERY_ID FROM API_EVENTS WHERE SOURCE = %(s)s ORDER BY 1",
            {"s": job.source},
        )
        == stamped
    )
    assert count(job) == 6
    assert names(job) == {"1": "n1", "2": "n2-v3", "3": "n3", "4": "n4", "5": "n5", "7": "n7"}
    assert ledger(job) == [(0, 2, 6, 5), (3, 3, 3, 0)]


def test_a_full_rerun_after_the_ledger_is_lost_changes_nothing(job: StreamJob, spark: SparkSession) -> None:
    sync(spark, cfg(job), environ=PASSWORD_ENV)
    third_version(job, spark)
    sync(spark, cfg(job), environ=PASSWORD_ENV)
    before = query("SELECT * FROM API_EVENTS WHERE SOURCE = %(s)s ORDER BY EXTERNAL_ID", {"s": job.source})
    query("DELETE FROM RESTLAKE_LOADS WHERE SOURCE = %(s)s", {"s": job.source})

    rerun = sync(spark, cfg(job), environ=PASSWORD_ENV)
    assert (rerun.from_version, rerun.to_version, rerun.rows_in) == (0, 3, 9)
    assert (rerun.inserted, rerun.updated) == (0, 0)
    assert (
        query("SELECT * FROM API_EVENTS WHERE SOURCE = %(s)s ORDER BY EXTERNAL_ID", {"s": job.source})
        == before
    )
    assert count(job) == 6
