"""Lake maintenance of one source: OPTIMIZE and VACUUM of its bronze and quarantine tables, and
pruning of its Postgres batch ledger. No orchestrator in here: ``restlake maintenance run`` and the
Prefect flow (``restlake.flows``) both call ``run_maintenance``.

- **OPTIMIZE** bin-packs the small files a streaming table collects (one or a few per micro-batch)
  into large ones. Where the table is partitioned by ``source`` only this source's partitions are
  rewritten, so sources sharing a table keep their own schedules. With ``zorder`` the bronze files
  are also clustered by ``external_id`` (quarantine rows are looked up by reason, not by id).
  OPTIMIZE commits a ``dataChange=false`` rewrite: the stream's blind appends do not conflict with
  it, and a ``--from-version`` backfill, which reads snapshots rather than commit files, is not
  fooled by the rewritten files.
- **VACUUM** deletes the files no snapshot younger than ``vacuumRetention`` uses. That retention is
  checked against ``asOfWindow`` (the spec model refuses a shorter one, naming
  ``spec.maintenance.vacuumRetention``), and ``asOfWindow`` against the table's
  ``delta.logRetentionDuration``, since time travel needs the log as well as the files. Delta's
  own 168-hour floor is switched off for the session: the spec's window is the rule here, and it
  may be shorter than a week on purpose. Delta 4 takes the retention from the table property
  ``delta.deletedFileRetentionDuration``, not from VACUUM's ``RETAIN``, so that property is set to
  ``vacuumRetention`` first (``ensure_file_retention``).
- **Ledger pruning**: ``restlake.postgres.ledger_pruning``, whose docstring states the rule.

Figures before and after (file count, bytes, and the time of a point query by ``external_id``)
are in the summary, and the run is one OpenLineage run of job ``restlake.maintenance.<source>``.
"""

from __future__ import annotations

import json
import logging
import re
import statistics
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from delta.tables import DeltaTable
from pydantic import SecretStr
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from restlake.contracts.maintenance import Maintenance
from restlake.contracts.spec import IngestionSource
from restlake.errors import ConfigError, RestlakeError
from restlake.lineage.datasets import postgres_table
from restlake.lineage.emitter import LineageEmitter
from restlake.lineage.runs import JobRun
from restlake.postgres.ledger_pruning import KEEP_BATCHES, LedgerPruning, prune_ledger

log = logging.getLogger(__name__)

# Delta's defaults for delta.logRetentionDuration and delta.deletedFileRetentionDuration.
_DEFAULT_LOG_RETENTION = timedelta(days=30)
_DEFAULT_FILE_RETENTION = timedelta(days=7)
_FILE_RETENTION = "delta.deletedFileRetentionDuration"
_INTERVAL = re.compile(r"^\s*(?:interval\s+)?(\d+)\s*([a-z]+?)s?\s*$", re.IGNORECASE)
_UNITS = {
    "millisecond": timedelta(milliseconds=1),
    "second": timedelta(seconds=1),
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}
POINT_QUERY_RUNS = 5


def maintenance_job_name(source: str) -> str:
    return f"restlake.maintenance.{source}"


@dataclass(frozen=True)
class TableFigures:
    """A table's current snapshot: data files, their bytes, its version; a point query's median time."""

    files: int
    bytes: int
    version: int
    point_query_s: float | None = None


@dataclass(frozen=True)
class TableMaintenance:
    """What maintenance did to one table."""

    kind: str
    path: str
    before: TableFigures
    after: TableFigures
    files_removed: int
    files_added: int
    files_vacuumed: int
    zorder: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class MaintenanceSummary:
    source: str
    tables: list[TableMaintenance] = field(default_factory=list)
    ledger: LedgerPruning | None = None
    skipped: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "tables": [t.as_dict() for t in self.tables],
            "ledger": self.ledger.as_dict() if self.ledger is not None else None,
            "skipped": self.skipped,
            "duration_s": self.duration_s,
        }


@dataclass(frozen=True)
class MaintenanceTarget:
    """Where one source's maintenance works: its tables (None: that sink is off) and its ledger."""

    source: str
    bronze_path: str | None
    quarantine_path: str | None
    pg_dsn: SecretStr | None
    settings: Maintenance

    @classmethod
    def for_source(
        cls, source: IngestionSource, *, lake_root: str, pg_dsn: SecretStr | None
    ) -> MaintenanceTarget:
        sinks = source.spec.sinks
        return cls(
            source=source.identity,
            bronze_path=source.bronze_path(lake_root) if sinks.bronze.enabled else None,
            quarantine_path=source.quarantine_path(lake_root) if sinks.quarantine.enabled else None,
            pg_dsn=pg_dsn if sinks.postgres.enabled else None,
            settings=source.spec.maintenance or Maintenance(),
        )


def parse_interval(text: str, *, what: str) -> timedelta:
    """A Delta interval property (``interval 30 days``, ``7 days``, ``interval 1 week``) as a timedelta."""
    match = _INTERVAL.match(text)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise ConfigError(f"{what}: cannot read the interval {text!r} (expected e.g. 'interval 30 days')")
    return int(match.group(1)) * unit


def check_time_travel(properties: dict[str, str], settings: Maintenance, path: str) -> None:
    """Refuse when the table's log would be cleaned up before ``asOfWindow`` ends."""
    raw = properties.get("delta.logRetentionDuration")
    log_retention = (
        parse_interval(raw, what=f"{path}: delta.logRetentionDuration") if raw else _DEFAULT_LOG_RETENTION
    )
    window = settings.as_of_window.timedelta
    if log_retention < window:
        raise ConfigError(
            f"spec.maintenance.asOfWindow: {settings.as_of_window} is longer than the table's "
            f"delta.logRetentionDuration ({raw}) at {path}: Delta cleans up the log of older versions, "
            "so time travel that far back fails whatever VACUUM keeps; shorten asOfWindow or raise "
            "the table property"
        )


def ensure_file_retention(
    spark: SparkSession, path: str, properties: dict[str, str], settings: Maintenance
) -> None:
    """Make the table's ``delta.deletedFileRetentionDuration`` the spec's ``vacuumRetention``.

    Delta 4 ignores VACUUM's ``RETAIN`` (but for 0 hours) and keeps files as long as this property
    says, default 7 days: left alone, a 14d retention would be cut to 7d. The property is only
    written when it differs, since a metadata commit makes a concurrent stream append fail (the
    stream's restart replays that batch exactly once).
    """
    wanted = settings.vacuum_retention.timedelta
    current = properties.get(_FILE_RETENTION)
    have = parse_interval(current, what=f"{path}: {_FILE_RETENTION}") if current else _DEFAULT_FILE_RETENTION
    if have == wanted:
        return
    seconds = int(wanted.total_seconds())
    spark.sql(
        f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('{_FILE_RETENTION}' = 'interval {seconds} seconds')"
    )
    log.info("table file retention set path=%s %s=%ss (was %s)", path, _FILE_RETENTION, seconds, current)


def figures(spark: SparkSession, path: str, *, source: str, probe_id: str | None = None) -> TableFigures:
    """File count and bytes of the table's snapshot; with ``probe_id``, the median point-query time."""
    detail = DeltaTable.forPath(spark, path).detail().select("numFiles", "sizeInBytes").first()
    version = DeltaTable.forPath(spark, path).history(1).select("version").first()
    assert detail is not None and version is not None
    timed: float | None = None
    if probe_id is not None:
        timed = point_query_seconds(spark, path, source=source, external_id=probe_id)
    return TableFigures(int(detail[0]), int(detail[1]), int(version[0]), timed)


def point_query_seconds(
    spark: SparkSession, path: str, *, source: str, external_id: str, runs: int = POINT_QUERY_RUNS
) -> float:
    """Median wall time of reading one record by id (the lookup a debugging user runs most)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        spark.read.format("delta").load(path).where(
            (F.col("source") == F.lit(source)) & (F.col("external_id") == F.lit(external_id))
        ).collect()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 4)


def _probe_id(spark: SparkSession, path: str, source: str) -> str | None:
    row = (
        spark.read.format("delta")
        .load(path)
        .where(F.col("source") == F.lit(source))
        .select("external_id")
        .limit(1)
        .first()
    )
    return None if row is None else str(row[0])


def maintain_table(
    spark: SparkSession, path: str, *, kind: str, source: str, settings: Maintenance, time_queries: bool
) -> TableMaintenance:
    """OPTIMIZE then VACUUM one table; figures taken before and after."""
    table = DeltaTable.forPath(spark, path)
    detail = table.detail().select("partitionColumns", "properties").first()
    assert detail is not None
    partitions, properties = list(detail[0] or []), dict(detail[1] or {})
    check_time_travel(properties, settings, path)
    probe = _probe_id(spark, path, source) if time_queries and kind == "bronze" else None
    before = figures(spark, path, source=source, probe_id=probe)

    zorder = settings.zorder and kind == "bronze"
    builder = table.optimize()
    if "source" in partitions:
        # A literal from the spec's own identity (a DNS label or namespace.name): nothing to escape.
        builder = builder.where(f"source = '{source}'")
    metrics_df = builder.executeZOrderBy("external_id") if zorder else builder.executeCompaction()
    metrics = metrics_df.select("metrics.numFilesRemoved", "metrics.numFilesAdded").first()
    removed, added = (int(metrics[0]), int(metrics[1])) if metrics is not None else (0, 0)

    retention_hours = settings.vacuum_retention.milliseconds / 3_600_000
    # Our check (retention against the spec's as-of window) replaces Delta's fixed 168-hour floor.
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    ensure_file_retention(spark, path, properties, settings)
    vacuumed = spark.sql(f"VACUUM delta.`{path}` RETAIN {retention_hours} HOURS DRY RUN").count()
    table.vacuum(retention_hours)
    after = figures(spark, path, source=source, probe_id=probe)
    result = TableMaintenance(kind, path, before, after, removed, added, vacuumed, zorder)
    log.info("table maintained source=%s %s", source, json.dumps(result.as_dict(), sort_keys=True))
    return result


def run_maintenance(
    spark: SparkSession,
    target: MaintenanceTarget,
    *,
    time_queries: bool = True,
    keep_batches: int = KEEP_BATCHES,
    lineage: LineageEmitter | None = None,
) -> MaintenanceSummary:
    """OPTIMIZE and VACUUM the source's tables, prune its ledger; one OpenLineage run around it all."""
    from restlake.lineage.datasets import BRONZE_FIELDS, QUARANTINE_FIELDS, delta_table

    started = time.monotonic()
    paths = {"bronze": target.bronze_path, "quarantine": target.quarantine_path}
    outputs: dict[str, dict[str, Any]] = {}
    for kind, fields in (("bronze", BRONZE_FIELDS), ("quarantine", QUARANTINE_FIELDS)):
        path = paths[kind]
        if path is not None:
            outputs[kind] = delta_table(path, fields)
    if target.pg_dsn is not None:
        outputs["ledger"] = postgres_table(target.pg_dsn.get_secret_value(), "raw.ingest_batches")
    run = JobRun(
        lineage or LineageEmitter.from_settings(),
        maintenance_job_name(target.source),
        inputs=list(outputs.values()),
        outputs=outputs,
    )
    run.start()
    tables: list[TableMaintenance] = []
    skipped: list[str] = []
    ledger: LedgerPruning | None = None
    try:
        for kind, path in paths.items():
            if path is None:
                skipped.append(f"{kind}: the sink is off")
            elif not DeltaTable.isDeltaTable(spark, path):
                skipped.append(f"{kind}: no Delta table at {path} yet")
            else:
                tables.append(
                    maintain_table(
                        spark,
                        path,
                        kind=kind,
                        source=target.source,
                        settings=target.settings,
                        time_queries=time_queries,
                    )
                )
        if target.pg_dsn is not None:
            ledger = prune_ledger(
                target.pg_dsn,
                source=target.source,
                horizon=target.settings.ledger_horizon.timedelta,
                keep_batches=keep_batches,
            )
        else:
            skipped.append("ledger: sinks.postgres is off")
    except Exception as exc:
        run.fail(f"{type(exc).__name__}: {exc}" if isinstance(exc, RestlakeError) else type(exc).__name__)
        raise
    summary = MaintenanceSummary(target.source, tables, ledger, skipped, round(time.monotonic() - started, 3))
    # No outputStatistics: a rewrite changes no row, and its file counts are in the summary.
    run.complete()
    log.info("maintenance done %s", json.dumps(summary.as_dict(), sort_keys=True))
    return summary
