"""The Snowflake sync: the bronze versions the load ledger has not seen, merged into Snowflake.

Bronze is read as the backfill replayer reads it (``bronze_range``): the rows versions N..M
appended are those of snapshot M whose key snapshot N-1 lacks. The sync starts one past the newest
version the ledger holds for the source and the bronze table's Delta id (a table recreated at the
same path starts again at 0), and walks to the latest version in steps of
``max_versions_per_load``, one ledgered transaction each (``restlake.jobs.spark.snowflake.load``, whose
docstring states the exactly-once rule). A version that appended nothing for the source (the
table's creation, another source's batch, an OPTIMIZE) still moves the ledger on.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from restlake.contracts.snowflake_sync import SnowflakeSyncConfig
from restlake.errors import BackfillRangeError, ConfigError
from restlake.jobs.spark.bronze_keys import table_state
from restlake.jobs.spark.bronze_range import BronzeRange, read_history, read_rows
from restlake.jobs.spark.snowflake import load as loads
from restlake.jobs.spark.snowflake.connection import connect
from restlake.postgres.arrow_stage import ARROW_COLUMNS

log = logging.getLogger(__name__)


class BronzeHistoryGoneError(ConfigError):
    """The versions the ledger has not loaded are no longer in bronze's log (cleaned up)."""


@dataclass(frozen=True)
class SyncSummary:
    """What one sync did, per load and in all."""

    source: str
    bronze_path: str
    target: str
    from_version: int | None
    to_version: int | None
    rows_in: int
    inserted: int
    updated: int
    loads: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sync(
    spark: SparkSession,
    cfg: SnowflakeSyncConfig,
    *,
    conn: Any | None = None,
    environ: Mapping[str, str] | None = None,
    before_ledger: Callable[[int], None] | None = None,
) -> SyncSummary:
    """Load every bronze version of ``cfg.source`` the ledger lacks; ``conn`` defaults to a new one.

    ``before_ledger(to_version)`` runs in each load between the MERGE's commit and the ledger row
    (the fault tests' hook).
    """
    started = time.monotonic()
    if not DeltaTable.isDeltaTable(spark, cfg.bronze_path):
        raise ConfigError(
            f"snowflake sync of {cfg.source}: no bronze Delta table at {cfg.bronze_path}: the source has "
            "not streamed anything yet, or spec.sinks.bronze.path names another table"
        )
    state = table_state(spark, cfg.bronze_path)
    target = loads.Target(
        table=cfg.target,
        ledger=cfg.ledger,
        source=cfg.source,
        bronze_path=cfg.bronze_path,
        bronze_table_id=state.id,
    )
    own = conn is None
    connection = conn if conn is not None else connect(cfg, environ=environ)
    results: list[loads.LoadResult] = []
    try:
        loads.ensure_tables(connection, target)
        done = loads.loaded_up_to(connection, target)
        start = 0 if done is None else done + 1
        if start <= state.version:
            history = read_history(spark, cfg.bronze_path, BronzeRange(from_version=start))
            latest = history.latest.version
            for low in range(start, latest + 1, cfg.max_versions_per_load):
                high = min(low + cfg.max_versions_per_load - 1, latest)
                try:
                    snapshots = BronzeRange(from_version=low, to_version=high).resolve(history)
                except BackfillRangeError as exc:
                    raise BronzeHistoryGoneError(
                        f"snowflake sync of {cfg.source}: the ledger {cfg.ledger} has loaded bronze up to "
                        f"version {start - 1}, but {exc}; the versions in between cannot be read any more: "
                        "raise the bronze table's log retention, and reload by deleting the source's "
                        "ledger rows (the MERGE keeps the newest version, so a reload is safe)"
                    ) from None
                rows = read_rows(spark, snapshots, source=cfg.source, option="--from-version")
                arrow = rows.select(*ARROW_COLUMNS).toArrow()
                hook = (lambda v=high: before_ledger(v)) if before_ledger is not None else None
                results.append(
                    loads.load(
                        connection, target, arrow, from_version=low, to_version=high, before_ledger=hook
                    )
                )
    finally:
        if own:
            connection.close()
    summary = SyncSummary(
        source=cfg.source,
        bronze_path=cfg.bronze_path,
        target=cfg.target,
        from_version=results[0].from_version if results else None,
        to_version=results[-1].to_version if results else None,
        rows_in=sum(r.rows_in for r in results),
        inserted=sum(r.inserted for r in results),
        updated=sum(r.updated for r in results),
        loads=[asdict(r) for r in results],
        duration_s=round(time.monotonic() - started, 3),
    )
    log.info(
        "snowflake sync done %s", json.dumps({k: v for k, v in summary.as_dict().items() if k != "loads"})
    )
    return summary
