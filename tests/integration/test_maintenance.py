"""Lake maintenance on real Spark, Delta and Postgres: compaction of a table of many small files,
VACUUM inside and outside the time-travel window, and ledger pruning after which replays stay exact.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from delta.tables import DeltaTable
from pydantic import SecretStr
from pyspark.sql import SparkSession

from restlake.contracts.maintenance import Maintenance
from restlake.jobs.spark import bronze
from restlake.jobs.spark.backfill import run_backfill
from restlake.jobs.spark.bronze_range import BronzeRange, read_history
from restlake.jobs.spark.maintenance import MaintenanceTarget, run_maintenance
from restlake.postgres.ledger_pruning import prune_ledger
from restlake.stack.manager import StackEndpoints

from .fixtures_stream import StreamJob

pytestmark = pytest.mark.integration

# Enough small files to show compaction: the files a stream of small micro-batches leaves, written
# in one commit (one write task per file) because 24 commits cost minutes and compaction does not
# look at which commit added a file.
FILES = 24
ROWS_PER_FILE = 5
SOURCE = "maint-src"


def small_files(spark: SparkSession, path: str, files: int = FILES) -> int:
    """A bronze table of ``files`` small files, written by one append; returns that append's version."""
    bronze.ensure_table(spark, path, bronze.BRONZE_SCHEMA)
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [
        (
            SOURCE,
            str(n),
            f"{SOURCE}:{n}:v1",
            f"h{n}",
            "1",
            now,
            '{"n": 1}',
            1,
            None,
            None,
            "t",
            0,
            n,
            now,
            now,
            n // ROWS_PER_FILE,
            date(2024, 5, 1),
        )
        for n in range(files * ROWS_PER_FILE)
    ]
    # Round-robin: every input partition holds at least ``files`` rows, so no output one is empty.
    df = spark.createDataFrame(rows, bronze.BRONZE_SCHEMA).repartition(files)
    bronze.append(df, path=path, app_id="it-maintenance", batch_id=0)
    return int(DeltaTable.forPath(spark, path).history(1).select("version").first()[0])


def parquet_files(path: str) -> int:
    return sum(1 for p in Path(path).rglob("*.parquet") if "_delta_log" not in p.parts)


def keys(spark: SparkSession, path: str, version: int | None = None) -> list[str]:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return sorted(r[0] for r in reader.load(path).select("idempotency_key").collect())


def test_compaction_keeps_every_row_and_time_travel_inside_the_window(
    spark: SparkSession, tmp_path: Path
) -> None:
    path = str(tmp_path / "bronze")
    last_small = small_files(spark, path)
    expected = keys(spark, path)
    assert len(expected) == FILES * ROWS_PER_FILE
    # One file per write task; an aborted task attempt may leave one more on disk, outside the log.
    on_disk = parquet_files(path)
    assert on_disk >= FILES

    window = Maintenance(as_of_window="1h", vacuum_retention="1h")
    target = MaintenanceTarget(SOURCE, path, None, None, window)
    summary = run_maintenance(spark, target)

    (table,) = summary.tables
    # The README's figures come from this line (pytest -s).
    print("maintenance figures", json.dumps(table.as_dict(), sort_keys=True))
    assert table.before.files == FILES and table.after.files == 1
    assert (table.files_removed, table.files_added) == (table.before.files, 1)
    history = DeltaTable.forPath(spark, path).history().where(f"version = {last_small + 1}").collect()
    assert [h.operation for h in history] == ["OPTIMIZE"]
    # The rewritten files are minutes old, inside the 1h retention: VACUUM keeps all of them.
    assert table.files_vacuumed == 0
    assert parquet_files(path) == on_disk + 1
    assert keys(spark, path) == expected
    # Time travel inside the window: the snapshot before OPTIMIZE, by version and through the
    # backfill replayer's own resolution of --as-of.
    assert keys(spark, path, version=last_small) == expected
    snapshots = BronzeRange(as_of=last_small).resolve(
        read_history(spark, path, BronzeRange(as_of=last_small))
    )
    assert snapshots.upto == last_small
    assert summary.skipped == ["quarantine: the sink is off", "ledger: sinks.postgres is off"]

    # With a window of 0s nothing older is promised: VACUUM deletes exactly the replaced files.
    time.sleep(1.5)
    none_kept = Maintenance(as_of_window="0s", vacuum_retention="0s")
    gone = run_maintenance(spark, MaintenanceTarget(SOURCE, path, None, None, none_kept), time_queries=False)
    (table,) = gone.tables
    assert (table.files_removed, table.files_added, table.files_vacuumed) == (0, 0, on_disk)
    assert parquet_files(path) == 1
    assert keys(spark, path) == expected
    # Delta 4 refuses any time travel past a 0-hour deletedFileRetentionDuration, before it would
    # find the files gone; either refusal says the same: nothing older is kept.
    with pytest.raises(Exception, match=r"(?i)not.?found|does not exist|FileNotFound|BEYOND_DELETED_FILE"):
        keys(spark, path, version=last_small)


def test_zorder_by_external_id(spark: SparkSession, tmp_path: Path) -> None:
    path = str(tmp_path / "bronze")
    small_files(spark, path, files=10)
    target = MaintenanceTarget(
        SOURCE, path, None, None, Maintenance(as_of_window="1h", vacuum_retention="1h", zorder=True)
    )
    (table,) = run_maintenance(spark, target).tables
    assert table.zorder
    assert (table.before.files, table.after.files, table.files_removed) == (10, 1, 10)
    assert len(keys(spark, path)) == 10 * ROWS_PER_FILE


def _ledger_count(dsn: str, source: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM raw.ingest_batches WHERE source = %s", (source,)).fetchone()
    assert row is not None
    return int(row[0])


def _written(dsn: str, source: str) -> dict[str, tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT external_id, xmin::text, content_hash FROM raw.api_events WHERE source = %s", (source,)
        ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_ledger_pruning_keeps_replays_exact(
    spark: SparkSession, stack: StackEndpoints, tmp_path: Path
) -> None:
    job = StreamJob(stack, tmp_path, max_offsets_per_trigger=3)
    job.send(*(job.envelope(i, name=f"n{i}") for i in range(12)))
    job.run(spark)
    batches = _ledger_count(stack.pg_dsn, job.source)
    assert batches >= 4
    written = _written(stack.pg_dsn, job.source)
    assert len(written) == 12 and len(job.bronze(spark)) == 12

    # Nothing is old yet: a 1h horizon deletes nothing, even down to one kept batch.
    assert (
        prune_ledger(stack.pg_dsn, source=job.source, horizon=timedelta(hours=1), keep_batches=1).deleted == 0
    )
    with psycopg.connect(stack.pg_dsn) as conn:
        conn.execute(
            "UPDATE raw.ingest_batches SET committed_at = committed_at - interval '2 days' WHERE source = %s",
            (job.source,),
        )
    pruned = prune_ledger(stack.pg_dsn, source=job.source, horizon=timedelta(days=1), keep_batches=1)
    assert (pruned.deleted, pruned.kept) == (batches - 1, 1)

    # Replay 1: the stream restarts with its newest batch uncommitted in the checkpoint (the driver
    # died after the merge): the kept ledger row makes it a no-op.
    commits = sorted((Path(job.config.checkpoint_path) / "commits").glob("[0-9]*"), key=lambda p: int(p.name))
    commits[-1].unlink()
    commits[-1].with_name(f".{commits[-1].name}.crc").unlink(missing_ok=True)
    job.run(spark)
    assert _written(stack.pg_dsn, job.source) == written
    assert len(job.bronze(spark)) == 12
    assert _ledger_count(stack.pg_dsn, job.source) == 1

    # Replay 2: the whole topic on a new checkpoint (a new query id, no ledger row of its own), in
    # one batch: nothing but the rows themselves can make it a no-op.
    job.run(spark, job.config_for("ckpt-new"))
    assert _written(stack.pg_dsn, job.source) == written
    assert len(job.bronze(spark)) == 12

    # Replay 3: bronze as of now through the backfill replayer: nothing inserted, nothing updated.
    latest = read_history(spark, job.config.bronze_path, BronzeRange(from_version=0)).latest.version
    summary = run_backfill(spark, job.config, BronzeRange(as_of=latest))
    assert (summary.rows_read, summary.inserted, summary.updated) == (12, 0, 0)
    assert _written(stack.pg_dsn, job.source) == written

    # New records after all that land exactly once.
    job.send(*(job.envelope(i, name=f"n{i}") for i in range(12, 15)))
    job.run(spark)
    assert len(_written(stack.pg_dsn, job.source)) == 15
    assert len(job.bronze(spark)) == 15

    # And a maintenance run over the streamed tables prunes with the spec's horizon (30d: nothing).
    target = MaintenanceTarget(
        job.source,
        job.config.bronze_path,
        job.config.quarantine_path,
        SecretStr(stack.pg_dsn),
        Maintenance(as_of_window="1h", vacuum_retention="1h"),
    )
    summary_m = run_maintenance(spark, target, time_queries=False)
    assert summary_m.ledger is not None and summary_m.ledger.deleted == 0
    assert len(job.bronze(spark)) == 15
    assert "bronze" in {t.kind for t in summary_m.tables}
