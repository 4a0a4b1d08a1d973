"""The Postgres sink's rows COPYed by the executors that hold them, not collected to the driver.

``io.restlake.jobs.spark.PostgresStage`` (jar bundle spark-udfs) COPYs each partition of a
micro-batch into a ``restlake.postgres.partition_stage`` table over JDBC; the driver then merges
that table in the batch's one transaction. The Arrow path (collect to the driver, COPY from
Python) stays for what this path does not cover: no spark-udfs jar (no JDK where it was built),
a DSN that JDBC cannot reach the same way libpq does (a Unix socket, client certificates), and a
batch holding one record twice (bronze's first-per-key rule is applied in Arrow there).
"""

from __future__ import annotations

import logging
import re
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from py4j.protocol import Py4JError, Py4JJavaError
from pydantic import SecretStr
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from restlake.errors import PermanentError, TransientError
from restlake.jobs.spark.session import jvm_of
from restlake.postgres.connection import connection
from restlake.postgres.errors import is_transient_state
from restlake.postgres.merge import MergeResult, Staged, Stager
from restlake.postgres.partition_stage import PartitionStage, partition_stager

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

STAGE_CLASS = "io.restlake.jobs.spark.PostgresStage"
# PostgresStage reads its input by position: these, then the source.
_STRINGS_FIRST = ("external_id", "idempotency_key", "content_hash", "version")


def _columns() -> list[Column]:
    """PostgresStage's input, by position (Columns need the running SparkContext: built per call)."""
    return [
        *(F.col(name).cast("string") for name in _STRINGS_FIRST),
        F.unix_micros("fetched_at"),
        F.col("payload").cast("string"),
        F.col("kafka_topic").cast("string"),
        F.col("kafka_partition").cast("int"),
        F.col("kafka_offset").cast("long"),
        F.col("source").cast("string"),
    ]


_FAILURE = re.compile(r"restlake-postgres-stage SQLSTATE=(\w*): ([^\n]*)")
# Client-side libpq settings that JDBC spells differently or reads in another format (pgjdbc wants
# its keys as PKCS-8 or PKCS-12): such a DSN keeps the Arrow path rather than connect otherwise.
_LIBPQ_ONLY = ("sslcert", "sslkey", "sslrootcert", "sslcrl", "sslpassword", "service", "passfile")
_SSL_MODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})

_available: weakref.WeakKeyDictionary[SparkSession, bool] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class JdbcTarget:
    """Where the executors connect: the server the driver's libpq connection reached."""

    url: str
    properties: dict[str, str] = field(repr=False)


def available(spark: SparkSession) -> bool:
    """Whether ``STAGE_CLASS`` loads in ``spark``'s JVM (once per session)."""
    if spark not in _available:
        jvm = jvm_of(spark)
        try:
            loader = jvm.java.lang.Thread.currentThread().getContextClassLoader()
            jvm.java.lang.Class.forName(STAGE_CLASS, True, loader)
            jvm.java.lang.Class.forName("org.postgresql.Driver", True, loader)
            _available[spark] = True
        except Py4JError as exc:
            log.warning(
                "%s or the Postgres JDBC driver is not on the Spark classpath (jar bundles spark-udfs "
                "and spark): the Postgres sink collects each batch to the driver instead: %s",
                STAGE_CLASS,
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )
            _available[spark] = False
    return _available[spark]


def jdbc_target(dsn: str | SecretStr) -> JdbcTarget | None:
    """The JDBC URL and properties reaching the server ``dsn`` reaches, or None (see module doc).

    Resolved by connecting once with libpq, so environment variables and defaults count the same."""
    with connection(dsn, "resolving the Postgres sink's server for the executors") as conn:
        info = conn.info
        params = info.get_parameters()
        host, port, dbname, user = info.host, info.port, info.dbname, info.user
        password = info.password
    libpq_only = [key for key in _LIBPQ_ONLY if params.get(key)]
    sslmode = params.get("sslmode", "prefer")
    if not host or host.startswith("/") or libpq_only or sslmode not in _SSL_MODES or not user:
        log.info(
            "Postgres sink stays on the driver's COPY: the DSN uses a Unix socket or libpq-only "
            "settings (%s)",
            ", ".join(libpq_only) or "socket",
        )
        return None
    literal = f"[{host}]" if ":" in host else host
    properties = {"user": user, "sslmode": sslmode, "ApplicationName": "restlake-stage"}
    if password:
        properties["password"] = password
    if params.get("options"):
        properties["options"] = params["options"]
    return JdbcTarget(f"jdbc:postgresql://{literal}:{port}/{_url_path(dbname)}", properties)


def _url_path(dbname: str) -> str:
    return quote(dbname, safe="")


def copy_partitions(valid: DataFrame, target: JdbcTarget, stage: PartitionStage, *, batch_id: int) -> int:
    """COPY ``valid``'s rows into ``stage`` from the executors; how many rows it holds now.

    Raises PermanentError for a row of another source or data Postgres refuses, TransientError
    for what a retry may get past (a connection lost, Postgres restarting, an executor lost)."""
    spark = valid.sparkSession
    jvm = jvm_of(spark)
    properties = jvm.java.util.Properties()
    for key, value in target.properties.items():
        properties.setProperty(key, value)
    selected = valid.select(*_columns())
    stager = jvm.io.restlake.jobs.spark.PostgresStage
    try:
        result = stager.copy(selected._jdf, target.url, properties, stage.quoted(), stage.source)
    except Py4JJavaError as exc:
        raise _translated(exc, stage.source, batch_id) from None
    written, foreign, first_source, first_id = int(result[0]), int(result[1]), result[2], result[3]
    if foreign:
        more = f" and {foreign - 1} more of other sources" if foreign > 1 else ""
        raise PermanentError(
            f"batch {batch_id} of source {stage.source} holds a record of source {first_source!r} "
            f"(external_id {first_id!r}){more}; one batch merges one source"
        )
    return written


def merged_from_executors(
    merge: Callable[[Stager], MergeResult],
    valid: DataFrame,
    target: JdbcTarget,
    dsn: str | SecretStr,
    stage: PartitionStage,
    *,
    batch_id: int,
    rows: int,
    keys: int,
    versions: Callable[[], pa.Table],
    staging: list[float] | None = None,
) -> MergeResult:
    """``merge`` (one merge transaction, given its ``Stager``) with ``valid`` staged into ``stage``
    by the executors: the stager creates the table, COPYs into it and hands it over. ``rows`` and
    ``keys`` are what ``valid`` holds (counted before; the COPY is checked against them),
    ``versions`` its ``version_readings`` (asked for only when the batch is not a replay). The seconds the
    staging took are appended to ``staging``. The merge drops the table when it commits; after a
    failure nothing reads it, so it is dropped here."""

    def staged(conn: Any) -> Staged:
        started = time.monotonic()
        stage.create(dsn)
        written = copy_partitions(valid, target, stage, batch_id=batch_id)
        if staging is not None:
            staging.append(time.monotonic() - started)
        if written != rows:
            raise PermanentError(
                f"batch {batch_id} of source {stage.source}: the executors staged {written} rows of "
                f"{rows} valid ones"
            )
        return partition_stager(stage, batch_id=batch_id, rows=rows, keys=keys, versions=versions())(conn)

    try:
        return merge(staged)
    except BaseException:
        stage.drop_quietly(dsn)
        raise


def _translated(exc: Py4JJavaError, source: str, batch_id: int) -> PermanentError | TransientError:
    doing = f"staging batch {batch_id} of source {source} from the executors"
    found = _FAILURE.search(str(exc.java_exception))
    if found is None:
        # Not Postgres's answer: a task or an executor failed (lost, out of memory). The batch is
        # staged again into a new table; a failure that repeats ends it after the retries.
        first = str(exc.java_exception).splitlines()[0] if str(exc.java_exception) else "unknown"
        return TransientError(f"{doing} failed in Spark: {first[:500]}")
    state, message = found.group(1), found.group(2)
    if not state or state.startswith("08"):
        # A connection failure's text may name the host or the user: keep the state alone.
        return TransientError(f"postgres error while {doing}: SQLSTATE {state or 'none'} (connection)")
    text = f"postgres error while {doing}: SQLSTATE {state}: {message[:500]}"
    return TransientError(text) if is_transient_state(state) else PermanentError(text)
