"""Bronze as a backfill origin: the rows a range of table versions appended, or a whole snapshot.

``--from-version N [--to-version M]`` selects the rows that versions N..M appended; ``--as-of V|T``
selects every row of the snapshot at version V, or at the latest version committed at or before
time T (Delta time travel). Both are read for one source, whose rows bronze keeps apart.

Bronze is append-only with one row per ``idempotency_key``, so the rows versions N..M appended are
the rows of snapshot M whose key snapshot N-1 does not hold. That is computed from two snapshots
rather than from the Change Data Feed, which the table does not enable (and which would cover only
versions written after enabling it), or from the ``add`` actions of the commit files, which would
tie the replay to the log's format (checkpoints, deletion vectors) and count files an OPTIMIZE
rewrote as new. Reading snapshot N-1's key column is the cost every stream batch already pays for
its own anti-join. A time is resolved to a version here, from the commit history, so that the
summary names the snapshot that was read and a time after the last commit means the latest one.

Bounds are checked against the history before any row is read, and every refusal is a
``BackfillRangeError`` naming the option. The history is read newest first and only as far back as
the range needs, since a streaming table commits once per micro-batch and keeps 30 days of them.

``python -m restlake.jobs.spark.bronze_range TABLE`` lists a table's newest versions, to pick a range.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from delta.tables import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from restlake.errors import BackfillRangeError
from restlake.jobs.spark.settings import SparkSettings, classpath_jars

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Commits fetched per round when walking the history back; small first, for the common recent range.
_HISTORY_LIMITS: tuple[int | None, ...] = (64, 4096, None)
# Delta's error conditions for a snapshot it cannot rebuild (log cleaned up, files vacuumed, no table).
_UNREADABLE = frozenset(
    {
        "DELTA_VERSION_NOT_FOUND",
        "DELTA_TIMESTAMP_EARLIER_THAN_COMMIT_RETENTION",
        "DELTA_MISSING_DELTA_TABLE",
        "DELTA_TABLE_NOT_FOUND",
        "PATH_NOT_FOUND",
    }
)


def parse_as_of(text: str) -> int | datetime:
    """``--as-of``: digits are a table version, anything else an ISO 8601 time (no zone means UTC)."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    try:
        when = datetime.fromisoformat(value[:-1] + "Z" if value.endswith("z") else value)
    except ValueError:
        raise BackfillRangeError(
            "--as-of", f"expected a table version (0, 1, ...) or an ISO 8601 time, got {text!r}"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Commit:
    """One version of the table as DESCRIBE HISTORY shows it."""

    version: int
    timestamp: datetime
    operation: str
    rows_added: int | None = None


@dataclass(frozen=True)
class History:
    """The newest commits of ``table``, newest first; ``complete`` when the oldest one kept is among them."""

    table: str
    commits: tuple[Commit, ...]
    complete: bool

    @property
    def latest(self) -> Commit:
        return self.commits[0]

    @property
    def oldest(self) -> Commit | None:
        """The oldest commit the table still keeps, if the walk reached it."""
        return self.commits[-1] if self.complete else None


@dataclass(frozen=True)
class Snapshots:
    """What to read: the rows of snapshot ``upto`` whose key snapshot ``before`` lacks (None: all of them)."""

    table: str
    upto: int
    before: int | None
    described: dict[str, object]


@dataclass(frozen=True)
class BronzeRange:
    """Versions ``from_version``..``to_version`` (inclusive, default latest), or one ``as_of`` snapshot."""

    from_version: int | None = None
    to_version: int | None = None
    as_of: int | datetime | None = None

    def __post_init__(self) -> None:
        if self.from_version is not None and self.as_of is not None:
            raise BackfillRangeError("--as-of", "cannot be combined with --from-version; give one of them")
        if self.to_version is not None and self.from_version is None:
            raise BackfillRangeError("--to-version", "needs --from-version (--as-of reads one snapshot)")
        if self.from_version is None and self.as_of is None:
            raise BackfillRangeError("--from-version", "give --from-version or --as-of for a bronze backfill")
        for option, version in (
            ("--from-version", self.from_version),
            ("--to-version", self.to_version),
            ("--as-of", self.as_of if isinstance(self.as_of, int) else None),
        ):
            if version is not None and version < 0:
                raise BackfillRangeError(option, f"a table version is 0 or more, got {version}")
        if (
            self.to_version is not None
            and self.from_version is not None
            and self.to_version < self.from_version
        ):
            raise BackfillRangeError(
                "--to-version", f"{self.to_version} is before --from-version {self.from_version}"
            )

    @property
    def option(self) -> str:
        """The option that selected bronze, for errors about the table as a whole."""
        return "--as-of" if self.as_of is not None else "--from-version"

    def needs_history_back_to(self) -> tuple[int | None, datetime | None]:
        """The oldest version, or time, whose commit the resolution has to see."""
        if self.from_version is not None:
            return max(self.from_version - 1, 0), None
        if isinstance(self.as_of, datetime):
            return None, self.as_of
        return self.as_of, None

    def resolve(self, history: History) -> Snapshots:
        """Check the range against ``history`` and say which snapshots to read."""
        table, latest, oldest = history.table, history.latest, history.oldest
        if self.from_version is not None:
            upto = latest.version if self.to_version is None else self.to_version
            for option, version in (("--from-version", self.from_version), ("--to-version", upto)):
                if version > latest.version:
                    raise BackfillRangeError(
                        option, f"version {version} is after the latest version {latest.version} of {table}"
                    )
            before = self.from_version - 1 if self.from_version > 0 else None
            # From version 0 nothing is subtracted, so a cleaned-up log start does not matter.
            if before is not None and oldest is not None and before < oldest.version:
                raise BackfillRangeError(
                    "--from-version",
                    f"version {self.from_version} is read as the difference to version {before}, but the "
                    f"oldest version {table} keeps is {oldest.version} (older commits were cleaned up); "
                    f"give --from-version {oldest.version + 1} or later, or --as-of",
                )
            return Snapshots(
                table, upto, before, {"table": table, "from_version": self.from_version, "to_version": upto}
            )
        if isinstance(self.as_of, int):
            if self.as_of > latest.version:
                raise BackfillRangeError(
                    "--as-of", f"version {self.as_of} is after the latest version {latest.version} of {table}"
                )
            if oldest is not None and self.as_of < oldest.version:
                raise BackfillRangeError(
                    "--as-of",
                    f"version {self.as_of} is before the oldest version {oldest.version} {table} keeps "
                    "(older commits were cleaned up)",
                )
            commit = next(c for c in history.commits if c.version == self.as_of)
            return Snapshots(table, commit.version, None, _as_of_described(table, commit, None))
        if self.as_of is None:  # __post_init__ refuses a range with neither
            raise BackfillRangeError("--from-version", "give --from-version or --as-of for a bronze backfill")
        at = next((c for c in history.commits if c.timestamp <= self.as_of), None)
        if at is None:
            first = history.commits[-1]
            if first.version == 0:
                why = f"is before {table} existed: its version 0 was committed at {_iso(first.timestamp)}"
            else:
                why = (
                    f"is before the oldest version {first.version} {table} keeps, committed at "
                    f"{_iso(first.timestamp)} (older commits were cleaned up)"
                )
            raise BackfillRangeError("--as-of", f"{_iso(self.as_of)} {why}")
        return Snapshots(table, at.version, None, _as_of_described(table, at, self.as_of))


def _as_of_described(table: str, commit: Commit, when: datetime | None) -> dict[str, object]:
    described: dict[str, object] = {"table": table, "as_of_version": commit.version}
    if when is not None:
        described["as_of_time"] = _iso(when)
    described["committed_at"] = _iso(commit.timestamp)
    return described


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def read_history(spark: SparkSession, path: str, brange: BronzeRange) -> History:
    """The table's commits, newest first, back to what ``brange`` needs (or to the oldest one kept)."""
    if not DeltaTable.isDeltaTable(spark, path):
        raise BackfillRangeError(
            brange.option,
            f"no bronze Delta table at {path}: the source has not streamed anything yet, or "
            "spec.sinks.bronze.path names another table",
        )
    back_to_version, back_to_time = brange.needs_history_back_to()
    table = DeltaTable.forPath(spark, path)
    commits: list[Commit] = []
    complete = False
    for limit in _HISTORY_LIMITS:
        history = table.history(limit) if limit is not None else table.history()
        commits = list(_commits(history))
        complete = limit is None or len(commits) < limit
        oldest = commits[-1]
        if complete or (
            (back_to_version is not None and oldest.version <= back_to_version)
            or (back_to_time is not None and oldest.timestamp <= back_to_time)
        ):
            break
    return History(path, tuple(commits), complete)


def _commits(history: DataFrame) -> Iterator[Commit]:
    # Epoch micros: pyspark turns a TIMESTAMP into a naive local-zone datetime whatever the session zone.
    rows = history.select(
        "version",
        F.unix_micros("timestamp").alias("ts_us"),
        "operation",
        F.col("operationMetrics").getItem("numOutputRows").alias("rows_added"),
    ).collect()
    for row in sorted(rows, key=lambda r: -int(r.version)):
        yield Commit(
            version=int(row.version),
            timestamp=_EPOCH + timedelta(microseconds=int(row.ts_us)),
            operation=str(row.operation),
            rows_added=int(row.rows_added) if row.rows_added is not None else None,
        )


def read_rows(spark: SparkSession, snapshots: Snapshots, *, source: str, option: str) -> DataFrame:
    """The source's bronze rows ``snapshots`` selects, with every bronze column."""
    upto = _snapshot(spark, snapshots.table, snapshots.upto, option).where(F.col("source") == F.lit(source))
    if snapshots.before is None:
        return upto
    before = (
        _snapshot(spark, snapshots.table, snapshots.before, option)
        .where(F.col("source") == F.lit(source))
        .select("idempotency_key")
    )
    return upto.join(before, on="idempotency_key", how="left_anti")


def _snapshot(spark: SparkSession, path: str, version: int, option: str) -> DataFrame:
    try:
        df = spark.read.format("delta").option("versionAsOf", version).load(path)
        df.schema  # noqa: B018 -- resolves the snapshot now, so a missing one fails here, typed
    except AnalysisException as exc:
        if exc.getCondition() not in _UNREADABLE:
            raise
        raise BackfillRangeError(
            option, f"version {version} of {path} cannot be read: {exc.getMessage()}"
        ) from None
    return df


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m restlake.jobs.spark.bronze_range",
        description="List a bronze table's newest versions (DESCRIBE HISTORY), to choose a backfill range.",
    )
    parser.add_argument("table", help="Path or URI of the bronze Delta table.")
    parser.add_argument("--limit", type=int, default=20, help="Newest versions to list.")
    settings = SparkSettings()
    # The caller names the jars (on the local stack: `restlake stack jars --classpath`): resolving
    # them is the local stack's business, which a job on a cluster image does not have.
    parser.add_argument(
        "--jars",
        default=settings.jars,
        help="Connector jars (Delta), separated by os.pathsep (RESTLAKE_SPARK_JARS); empty when the "
        "image provides them.",
    )
    args = parser.parse_args(argv)

    from restlake.jobs.spark.session import build_spark

    spark = build_spark(
        "restlake-bronze-history", jars=classpath_jars(args.jars), master="local[1]", settings=settings
    )
    try:
        if not DeltaTable.isDeltaTable(spark, args.table):
            print(f"error: no Delta table at {args.table}", file=sys.stderr)
            return 2
        commits = list(_commits(DeltaTable.forPath(spark, args.table).history(args.limit)))
    finally:
        spark.stop()
    print(f"{args.table}: {len(commits)} newest versions")
    for c in commits:
        added = "" if c.rows_added is None else f"+{c.rows_added} rows"
        print(f"  version {c.version:>5}  {_iso(c.timestamp)}  {c.operation:<14} {added}".rstrip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
