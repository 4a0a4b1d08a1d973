"""Where each source stands, read from where the pipeline keeps it (``restlake status``).

* Postgres: the fetcher's pass summaries and watermark (``raw.fetch_state``), the stream's batch
  ledger (``raw.ingest_batches``) and the rows of the source's table;
* Kafka: end offsets of the topic and of its dead-letter topic;
* the stream's Spark checkpoint: the offsets of the last committed micro-batch (Spark keeps its
  consumer position there, not in a Kafka consumer group), hence the lag;
* the Delta logs of bronze and quarantine: version and rows.

The checkpoint and the Delta logs are read where the lake is, a local folder or S3 (``lake_files``).

Every reader fails on its own: a service that is down, or a table that is not there, makes its
fields ``unavailable`` with the reason, and the rest are still read.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from restlake.errors import RestlakeError
from restlake.kafka_logging import client_config
from restlake.redaction import redact
from restlake.runtime import delta_log
from restlake.runtime.lake_files import LakeFilesError, lake_files
from restlake.settings import ExternalEndpoints

log = logging.getLogger(__name__)

# Seconds a status waits for one service: it is a glance, not a health check that must succeed.
DEFAULT_TIMEOUT_S = 5.0
_ENDPOINT_VARS = {
    "kafka_bootstrap": "RESTLAKE_KAFKA_BOOTSTRAP",
    "pg_dsn": "RESTLAKE_PG_DSN",
    "lake_root": "RESTLAKE_LAKE_ROOT",
}
_DLQ_SUFFIX = ".dlq"
_BATCH_FILE = re.compile(r"^\d+$")

_FETCH_FIELDS = (
    "last_fetch_at",
    "last_fetch_outcome",
    "last_fetch_error",
    "last_complete_fetch_at",
    "requests",
    "not_modified",
    "not_modified_share",
    "watermark",
    "watermark_age_seconds",
)
FIELDS = (
    *_FETCH_FIELDS,
    "kafka_end_offset",
    "kafka_committed_offset",
    "kafka_lag",
    "last_batch_id",
    "last_batch_at",
    "postgres_rows",
    "bronze_version",
    "bronze_rows",
    "quarantined",
    "dead_letters",
)


@dataclass(frozen=True)
class Endpoints:
    """The services to read; a None one is unknown (its fields say so)."""

    kafka_bootstrap: str | None
    pg_dsn: str | None
    lake_root: str | None
    origin: str  # where they came from, for the reader: "environment", "local stack (…)"


def resolve_endpoints(state_dir: Path | None = None, external: ExternalEndpoints | None = None) -> Endpoints:
    """Each endpoint from its ``RESTLAKE_*`` variable (``external``, read from the environment when
    None), else from the local stack if it is up.

    Unlike ``restlake run`` this never starts anything: status only looks.
    """
    from restlake.stack.manager import LocalStack

    named = (external if external is not None else ExternalEndpoints()).given()
    given = {name: named.get(var) for name, var in _ENDPOINT_VARS.items()}
    origin = "environment"
    if not all(given.values()):
        stack = LocalStack(state_dir)
        try:
            local = stack.endpoints()
        except RestlakeError:
            local = None
        if local is not None:
            origin = (
                f"local stack ({shown_path(stack.paths.root)})"
                if not any(given.values())
                else "environment + local stack"
            )
            given = {
                "kafka_bootstrap": given["kafka_bootstrap"] or local.kafka_bootstrap,
                "pg_dsn": given["pg_dsn"] or local.pg_dsn,
                "lake_root": given["lake_root"] or local.lake_root,
            }
        elif not any(given.values()):
            origin = "none (no RESTLAKE_KAFKA_BOOTSTRAP, RESTLAKE_PG_DSN, RESTLAKE_LAKE_ROOT; stack not up)"
    return Endpoints(origin=origin, **given)


def shown_path(path: Path | str) -> str:
    """``path`` relative to the working directory when it lies below it: shorter, and the same on
    every checkout."""
    try:
        return str(Path(path).absolute().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Target:
    """Where one source's data lives."""

    source: str
    topic: str
    pg_table: str | None  # None: the Postgres sink is off
    bronze_path: str | None  # None: bronze is off, or the lake root is unknown
    quarantine_path: str | None
    checkpoint_path: str | None

    @classmethod
    def of_source(cls, source: Any, lake_root: str | None, topic_prefix: str) -> Target:
        sinks = source.spec.sinks
        return cls(
            source=source.identity,
            topic=source.topic(topic_prefix),
            pg_table=sinks.postgres.table if sinks.postgres.enabled else None,
            bronze_path=source.bronze_path(lake_root) if lake_root and sinks.bronze.enabled else None,
            quarantine_path=(
                source.quarantine_path(lake_root) if lake_root and sinks.quarantine.enabled else None
            ),
            checkpoint_path=source.checkpoint_path(lake_root) if lake_root else None,
        )

    @classmethod
    def of_name(cls, name: str, lake_root: str | None, topic_prefix: str) -> Target:
        """A source known by name only: the layout a spec without overrides gets."""
        from restlake.contracts.spec import API_VERSION, KIND, IngestionSource

        source = IngestionSource.model_validate(
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "metadata": {"name": name},
                "spec": {"request": {"url": "http://unknown.invalid/"}},
            }
        )
        return cls.of_source(source, lake_root, topic_prefix)


@dataclass
class SourceStatus:
    """One source's row: values by field name; a field that could not be read is in ``unavailable``."""

    source: str
    values: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(FIELDS))
    unavailable: dict[str, str] = field(default_factory=dict)
    stale: bool | None = None

    def fail(self, names: Iterable[str], reason: str) -> None:
        for name in names:
            self.values[name] = None
            self.unavailable[name] = reason

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source}
        for name, value in self.values.items():
            out[name] = value.isoformat() if isinstance(value, datetime) else value
        out["stale"] = self.stale
        out["unavailable"] = dict(self.unavailable)
        return out


def collect(
    targets: list[Target],
    endpoints: Endpoints,
    *,
    now: datetime | None = None,
    max_staleness: timedelta | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> list[SourceStatus]:
    """One ``SourceStatus`` per target, every reader run once for all of them."""
    now = now or datetime.now(UTC)
    rows = [SourceStatus(t.source) for t in targets]
    _read_postgres(targets, rows, endpoints.pg_dsn, now, timeout)
    _read_kafka(targets, rows, endpoints.kafka_bootstrap, timeout)
    for target, row in zip(targets, rows, strict=True):
        _read_checkpoint(target, row, timeout)
        bronze = ("bronze_version", "bronze_rows")
        _read_table(row, target.bronze_path, target.source, bronze, "bronze", timeout)
        _read_table(row, target.quarantine_path, target.source, (None, "quarantined"), "quarantine", timeout)
        end, committed = row.values["kafka_end_offset"], row.values["kafka_committed_offset"]
        if end is not None and committed is not None:
            row.values["kafka_lag"] = max(0, end - committed)
        else:
            reason = row.unavailable.get("kafka_end_offset") or row.unavailable.get("kafka_committed_offset")
            if reason:
                row.fail(["kafka_lag"], reason)
        row.stale = _stale(row, now, max_staleness)
    return rows


def known_sources(dsn: str, timeout: float = DEFAULT_TIMEOUT_S) -> list[str]:
    """Every source the fetcher or the stream has written about."""
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout)), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT source FROM raw.fetch_state UNION SELECT source FROM raw.ingest_batches ORDER BY 1"
            ).fetchall()
    except psycopg.Error as exc:
        raise StatusError(f"cannot list sources from Postgres: {_reason(exc)}") from None
    return [r[0] for r in rows]


class StatusError(RestlakeError):
    """Status cannot even say which sources there are; the message says what was tried."""


# -- readers ---------------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    error = exc.args[0] if exc.args else None
    if error is not None and callable(getattr(error, "str", None)):  # a KafkaError: its text, not its repr
        return redact(str(error.str()))
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact(text)


def _read_postgres(
    targets: list[Target], rows: list[SourceStatus], dsn: str | None, now: datetime, timeout: float
) -> None:
    pg_fields = (*_FETCH_FIELDS, "last_batch_id", "last_batch_at", "postgres_rows")
    if not dsn:
        for row in rows:
            row.fail(pg_fields, "no Postgres configured (RESTLAKE_PG_DSN or the local stack)")
        return
    import psycopg
    from psycopg import sql

    from restlake.postgres.identifiers import TableName

    try:
        conn = psycopg.connect(dsn, connect_timeout=max(1, int(timeout)), autocommit=True)
    except psycopg.Error as exc:
        for row in rows:
            row.fail(pg_fields, f"Postgres unreachable: {_reason(exc)}")
        return
    with conn:
        for target, row in zip(targets, rows, strict=True):
            _guarded(row, _FETCH_FIELDS, partial(_fetch_fields, conn, target, row, now))
            _guarded(row, ("last_batch_id", "last_batch_at"), partial(_ledger, conn, target, row))
            if target.pg_table is None:
                row.fail(["postgres_rows"], "the Postgres sink is disabled")
                continue

            def count_rows(t: Target = target, r: SourceStatus = row) -> None:
                query = sql.SQL("SELECT count(*) FROM {} WHERE source = %s").format(
                    TableName.parse(t.pg_table or "").identifier()
                )
                r.values["postgres_rows"] = conn.execute(query, (t.source,)).fetchone()[0]  # type: ignore[index]

            _guarded(row, ("postgres_rows",), count_rows)


def _guarded(row: SourceStatus, names: Iterable[str], read: Callable[[], None]) -> None:
    import psycopg

    try:
        read()
    except (psycopg.Error, RestlakeError, ValueError) as exc:
        row.fail(names, _reason(exc))


def _fetch_fields(conn: Any, target: Target, row: SourceStatus, now: datetime) -> None:
    from restlake.fetcher.state import LAST_COMPLETE_PASS_KEY, LAST_PASS_KEY, PAGE_PREFIX, WATERMARK_KEY

    found = dict(
        conn.execute(
            "SELECT key, value FROM raw.fetch_state WHERE source = %s AND key = ANY(%s)",
            (target.source, [LAST_PASS_KEY, LAST_COMPLETE_PASS_KEY, WATERMARK_KEY]),
        ).fetchall()
    )
    last = found.get(LAST_PASS_KEY)
    v = row.values
    if last is not None:
        v["last_fetch_at"] = datetime.fromisoformat(last["finished_at"])
        v["last_fetch_outcome"] = last.get("outcome")
        v["last_fetch_error"] = last.get("error")
        v["requests"] = last.get("requests")
        v["not_modified"] = last.get("not_modified")
        if v["requests"]:
            v["not_modified_share"] = round((v["not_modified"] or 0) / v["requests"], 4)
    else:
        # A fetcher older than pass summaries: its last state commit is the best clue there is.
        latest = conn.execute(
            "SELECT max(updated_at) FROM raw.fetch_state WHERE source = %s AND key LIKE %s",
            (target.source, PAGE_PREFIX + "%"),
        ).fetchone()[0]
        v["last_fetch_at"] = latest
    complete = found.get(LAST_COMPLETE_PASS_KEY)
    v["last_complete_fetch_at"] = datetime.fromisoformat(complete["finished_at"]) if complete else None
    watermark = (found.get(WATERMARK_KEY) or {}).get("value")
    v["watermark"] = watermark
    if watermark is not None:
        from restlake.fetcher.watermark import sort_key

        kind, value = sort_key(watermark)
        if kind == 2:  # a timestamp: its distance from now means something
            v["watermark_age_seconds"] = round((now - value).total_seconds(), 3)  # type: ignore[operator]


def _ledger(conn: Any, target: Target, row: SourceStatus) -> None:
    found = conn.execute(
        "SELECT batch_id, committed_at FROM raw.ingest_batches WHERE source = %s "
        "ORDER BY committed_at DESC, batch_id DESC LIMIT 1",
        (target.source,),
    ).fetchone()
    if found is not None:
        row.values["last_batch_id"], row.values["last_batch_at"] = found


def _read_kafka(
    targets: list[Target], rows: list[SourceStatus], bootstrap: str | None, timeout: float
) -> None:
    kafka_fields = ("kafka_end_offset", "dead_letters")
    if not bootstrap:
        for row in rows:
            row.fail(kafka_fields, "no Kafka configured (RESTLAKE_KAFKA_BOOTSTRAP or the local stack)")
        return
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer(
        client_config(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "restlake-status",  # never joined: only offsets are asked for
                "enable.auto.commit": False,
                "socket.timeout.ms": int(timeout * 1000),
                # An unreachable broker is reported once as "unavailable", not logged per retry.
                "log_level": 0,
            },
            log,
        )
    )
    try:
        try:
            topics = consumer.list_topics(timeout=timeout).topics
        except KafkaException as exc:
            for row in rows:
                row.fail(kafka_fields, f"Kafka unreachable at {bootstrap}: {_reason(exc)}")
            return

        def records(topic: str, *, since_start: bool) -> int:
            total = 0
            for partition in topics[topic].partitions if topic in topics else {}:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout, cached=False
                )
                total += high - low if since_start else high
            return total

        for target, row in zip(targets, rows, strict=True):
            try:
                row.values["kafka_end_offset"] = records(target.topic, since_start=False)
                row.values["dead_letters"] = records(target.topic + _DLQ_SUFFIX, since_start=True)
            except KafkaException as exc:
                row.fail(kafka_fields, f"Kafka offsets of {target.topic}: {_reason(exc)}")
    finally:
        consumer.close()


def _read_checkpoint(target: Target, row: SourceStatus, timeout: float) -> None:
    """Offsets of the last micro-batch the stream committed: ``commits/<n>`` marks it, ``offsets/<n>``
    holds where it ended per partition."""
    name = "kafka_committed_offset"
    if target.checkpoint_path is None:
        row.fail([name], "no lake root configured (RESTLAKE_LAKE_ROOT or the local stack)")
        return
    offsets_file = ""
    try:
        files = lake_files(target.checkpoint_path, timeout=timeout)
        batches = [int(n) for n in files.names("commits") or [] if _BATCH_FILE.match(n)]
        if not batches:
            row.values[name] = 0  # the stream has not committed a batch: nothing is consumed yet
            return
        offsets_file = f"offsets/{max(batches)}"
        lines = files.read_text(offsets_file).splitlines()
        per_topic = [json.loads(line) for line in lines[2:] if line.strip()]
    except LakeFilesError as exc:
        row.fail([name], str(exc))
        return
    except (OSError, ValueError) as exc:
        where = f"unreadable checkpoint {target.checkpoint_path}/{offsets_file}".rstrip("/")
        row.fail([name], f"{where}: {_reason(exc)}")
        return
    total = 0
    for source_offsets in per_topic:
        if isinstance(source_offsets, dict):
            total += sum(int(o) for o in (source_offsets.get(target.topic) or {}).values())
    row.values[name] = total


def _read_table(
    row: SourceStatus, uri: str | None, source: str, names: tuple[str | None, str], kind: str, timeout: float
) -> None:
    version_field, rows_field = names
    wanted = [n for n in names if n is not None]
    if uri is None:
        row.fail(wanted, f"no {kind} table (the sink is disabled or the lake root is unknown)")
        return
    try:
        counted = delta_log.count(lake_files(uri, timeout=timeout), source=source)
    except (RestlakeError, OSError, ValueError, KeyError) as exc:
        row.fail(wanted, f"{kind} table {uri}: {_reason(exc)}")
        return
    if version_field is not None:
        row.values[version_field] = counted.version if counted else None
    row.values[rows_field] = counted.rows if counted else 0


def _stale(row: SourceStatus, now: datetime, max_staleness: timedelta | None) -> bool | None:
    """Stale: no complete fetch pass within ``max_staleness``; None when that cannot be told."""
    if max_staleness is None:
        return None
    if "last_complete_fetch_at" in row.unavailable:
        return None
    last = row.values["last_complete_fetch_at"]
    return last is None or now - last > max_staleness
