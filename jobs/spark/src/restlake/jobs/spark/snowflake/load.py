"""One ledgered load: the rows a range of bronze versions appended, merged into Snowflake exactly once.

The exactly-once rule (what a rerun or a crash at any point relies on):

1. A load covers the source's bronze versions ``from_version..to_version``, where ``from_version``
   is one past the newest ``TO_VERSION`` the ledger (``RESTLAKE_LOADS``) holds for the source and
   the bronze table's Delta id. The ledger is read before anything is staged.
2. The rows are staged in a temporary table (the session's own, gone with it), then the MERGE
   commits, and only then the ledger row. The ledger never runs ahead of the data: a crash before
   the MERGE's commit loses nothing (the ledger does not cover the range, the next run loads it).
3. A crash between the MERGE's commit and the ledger row makes the next run merge the same range
   again, and that replay changes no row: the MERGE keys on ``(SOURCE, EXTERNAL_ID)`` (no second
   row) and writes a key only when the incoming row is newer by the Postgres merge's rule, where the
   same content is never newer. Replaying an older range after a newer one is as harmless.

Why ordered and not one ``BEGIN … COMMIT``: the rule above needs no transaction, and the emulator
the tests run against (fakesnow) cannot run a MERGE inside an explicit transaction, so a
transactional variant could not be tested here. Two syncs of one source at once merge the same
rows twice (a no-op by rule 3) and may both record the range (the ledger's MAX is unaffected).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import TYPE_CHECKING, Any

from restlake.jobs.spark.snowflake import sql
from restlake.jobs.spark.snowflake.errors import SnowflakeLoadError, SnowflakeUnavailableError
from restlake.postgres.merge import parse_version

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

# NUMBER(38, 9): 29 digits before the point. A numeric version beyond it is treated as opaque (the
# rule then falls back to fetched_at), as the Postgres merge treats an absurd exponent.
_MAX_VERSION_NUM = Decimal(10) ** 29
_NUM_QUANTUM = Decimal("1e-9")
# 29 + 9 digits and room to round: the default context (28 digits) refuses to quantize those.
_NUM_CONTEXT = Context(prec=48)


@dataclass(frozen=True)
class Target:
    """Where a source's loads go: the table, the ledger, and the source and bronze table they cover."""

    table: str
    ledger: str
    source: str
    bronze_path: str
    bronze_table_id: str


@dataclass(frozen=True)
class LoadResult:
    """What one load did: rows staged, keys the MERGE inserted and updated (a replay: both 0)."""

    from_version: int
    to_version: int
    load_id: str
    rows_in: int
    inserted: int
    updated: int
    duration_s: float


def ensure_tables(conn: Any, target: Target) -> None:
    """Create the target table and the ledger when missing (idempotent DDL, each its own commit)."""
    with _translated(f"creating {target.table} and {target.ledger}"):
        cur = conn.cursor()
        cur.execute(sql.create_target(target.table))
        cur.execute(sql.create_ledger(target.ledger))


def loaded_up_to(conn: Any, target: Target) -> int | None:
    """The newest bronze version a committed load of this source and bronze table covered."""
    with _translated(f"reading the ledger {target.ledger}"):
        row = (
            conn.cursor()
            .execute(
                sql.loaded_up_to(target.ledger), {"source": target.source, "table_id": target.bronze_table_id}
            )
            .fetchone()
        )
    return None if row is None or row[0] is None else int(row[0])


def stage_frame(rows: pa.Table) -> pd.DataFrame:
    """The stage's columns as text, versions parsed once per distinct value by ``parse_version``."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    versions = {v: parse_version(v) for v in pc.unique(rows["version"]).to_pylist()}

    def num(raw: str | None) -> str | None:
        parsed = versions[raw].num
        if parsed is None or abs(parsed) >= _MAX_VERSION_NUM:
            return None
        return str(parsed.quantize(_NUM_QUANTUM, context=_NUM_CONTEXT))

    raw_versions = rows["version"].to_pylist()
    # Instants are stored in UTC whatever zone the array carries; format them there (%S carries the
    # microseconds for a microsecond timestamp).
    utc = rows["fetched_at"].cast(pa.timestamp("us", tz="UTC"))
    fetched = pc.strftime(utc, format="%Y-%m-%dT%H:%M:%S+00:00")
    return pd.DataFrame(
        {
            "SOURCE": rows["source"].to_pylist(),
            "EXTERNAL_ID": rows["external_id"].to_pylist(),
            "IDEMPOTENCY_KEY": rows["idempotency_key"].to_pylist(),
            "CONTENT_HASH": rows["content_hash"].to_pylist(),
            "VERSION": raw_versions,
            "VERSION_TS": [_iso(versions[v].ts) for v in raw_versions],
            "VERSION_NUM": [num(v) for v in raw_versions],
            "FETCHED_AT": fetched.to_pylist(),
            "PAYLOAD": rows["payload"].to_pylist(),
            "KAFKA_TOPIC": rows["kafka_topic"].to_pylist(),
            "KAFKA_PARTITION": pd.array(rows["kafka_partition"].to_pylist(), dtype="Int32"),
            "KAFKA_OFFSET": pd.array(rows["kafka_offset"].to_pylist(), dtype="Int64"),
        },
        columns=list(sql.STAGE_COLUMNS),
    )


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def load(
    conn: Any,
    target: Target,
    rows: pa.Table,
    *,
    from_version: int,
    to_version: int,
    before_ledger: Callable[[], None] | None = None,
) -> LoadResult:
    """Merge ``rows`` (bronze versions ``from_version..to_version`` of the source), then record them.

    ``before_ledger`` runs after the MERGE committed and before the ledger row is written: the point
    a crash test injects its fault at. Raises SnowflakeLoadError or SnowflakeUnavailableError.
    """
    from snowflake.connector.pandas_tools import write_pandas

    started = time.monotonic()
    load_id = f"snowflake-{uuid.uuid4().hex}"
    # Unqualified: a temporary table lives in the session's current database and schema, which the
    # connection sets to the target's (and the emulator refuses a qualified temporary name).
    stage = f"RESTLAKE_STAGE_{uuid.uuid4().hex[:12].upper()}"
    cur = conn.cursor()
    doing = f"bronze versions {from_version}..{to_version} of {target.source} into {target.table}"
    frame = stage_frame(rows)
    try:
        with _translated(f"staging {doing}"):
            cur.execute(sql.create_stage(stage))
            if len(frame):
                write_pandas(conn, frame, stage, quote_identifiers=False)
        with _translated(f"merging {doing}"):
            cur.execute(sql.merge(target.table, stage), {"load_id": load_id, "to_version": to_version})
            inserted, updated = _merge_counts(cur)
        if before_ledger is not None:
            before_ledger()
        with _translated(f"recording {doing} in {target.ledger}"):
            cur.execute(
                sql.record_load(target.ledger),
                {
                    "source": target.source,
                    "table_id": target.bronze_table_id,
                    "path": target.bronze_path,
                    "from_version": from_version,
                    "to_version": to_version,
                    "load_id": load_id,
                    "target": target.table,
                    "rows_in": len(frame),
                    "rows_merged": inserted + updated,
                },
            )
    finally:
        _drop_stage(conn, stage)
    result = LoadResult(
        from_version, to_version, load_id, len(frame), inserted, updated, time.monotonic() - started
    )
    log.info(
        "snowflake load committed source=%s versions=%s..%s rows_in=%s inserted=%s updated=%s table=%s "
        "duration_s=%.3f",
        target.source,
        from_version,
        to_version,
        result.rows_in,
        inserted,
        updated,
        target.table,
        result.duration_s,
    )
    return result


def _merge_counts(cur: Any) -> tuple[int, int]:
    """(inserted, updated) from the MERGE's result row, whose columns Snowflake names in words."""
    row = cur.fetchone()
    names = [d[0].lower() for d in (cur.description or ())]
    values = dict(zip(names, row or (), strict=False))
    return int(values.get("number of rows inserted") or 0), int(values.get("number of rows updated") or 0)


def _drop_stage(conn: Any, stage: str) -> None:
    try:
        conn.cursor().execute(sql.drop_stage(stage))
    except Exception as exc:  # a temporary table goes with the session anyway
        log.warning("dropping stage %s failed: %s", stage, type(exc).__name__)


class _translated:
    """Connector errors as restlake's: a retryable outage or a permanent refusal, naming ``doing``."""

    def __init__(self, doing: str) -> None:
        self.doing = doing

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            return
        from snowflake.connector import errors as sf_errors

        from restlake.redaction import redact

        if isinstance(exc, (sf_errors.OperationalError, sf_errors.InterfaceError)):
            raise SnowflakeUnavailableError(f"{self.doing}: {redact(str(exc))}") from exc
        if isinstance(exc, sf_errors.DatabaseError):
            raise SnowflakeLoadError(f"{self.doing}: Snowflake refused it: {redact(str(exc))}") from exc
