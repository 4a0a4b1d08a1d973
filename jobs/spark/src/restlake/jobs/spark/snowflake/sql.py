"""The Snowflake SQL of the sync: the target table, the load ledger, the stage and the MERGE.

Standard Snowflake SQL only (no emulator-only syntax): ``CREATE TABLE IF NOT EXISTS``, ``QUALIFY``,
``MERGE … WHEN MATCHED AND … THEN UPDATE … WHEN NOT MATCHED THEN INSERT``, ``IS DISTINCT FROM``.
Identifiers come from the spec, whose patterns allow only unquoted Snowflake identifiers, so they
are interpolated as they are; every value is a bind parameter (pyformat, the connector's default).

The MERGE's "newer" rule is ``restlake.postgres.merge``'s, column for column: the same content hash
is never newer; else two timestamp versions compare, else two numeric versions, else the later
``fetched_at`` wins. The survivor per key inside one load is the first by (version_ts desc,
version_num desc, fetched_at desc, content_hash), as in the Postgres merge.
"""

from __future__ import annotations

import re

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*){0,2}$")

# The staged columns, in the stage table's order (upper case: write_pandas quotes column names).
STAGE_COLUMNS = (
    "SOURCE",
    "EXTERNAL_ID",
    "IDEMPOTENCY_KEY",
    "CONTENT_HASH",
    "VERSION",
    "VERSION_TS",
    "VERSION_NUM",
    "FETCHED_AT",
    "PAYLOAD",
    "KAFKA_TOPIC",
    "KAFKA_PARTITION",
    "KAFKA_OFFSET",
)


def identifier(name: str) -> str:
    """``name`` (``T``, ``S.T`` or ``D.S.T``) if every part is an unquoted identifier; else ValueError."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not an unquoted Snowflake identifier: {name!r}")
    return name


def create_target(target: str) -> str:
    """raw.api_events' columns in Snowflake types; the UNIQUE constraint is informational there (the
    MERGE on the key is what keeps one row per record)."""
    return f"""CREATE TABLE IF NOT EXISTS {identifier(target)} (
    ID NUMBER(38, 0) AUTOINCREMENT,
    SOURCE VARCHAR NOT NULL,
    EXTERNAL_ID VARCHAR NOT NULL,
    PAYLOAD VARIANT NOT NULL,
    PULLED_AT TIMESTAMP_TZ NOT NULL,
    CONTENT_HASH VARCHAR,
    VERSION VARCHAR,
    VERSION_TS TIMESTAMP_TZ,
    VERSION_NUM NUMBER(38, 9),
    FETCHED_AT TIMESTAMP_TZ,
    UPDATED_AT TIMESTAMP_TZ NOT NULL,
    IDEMPOTENCY_KEY VARCHAR,
    KAFKA_TOPIC VARCHAR,
    KAFKA_PARTITION INTEGER,
    KAFKA_OFFSET BIGINT,
    INGEST_QUERY_ID VARCHAR,
    INGEST_BATCH_ID BIGINT,
    UNIQUE (SOURCE, EXTERNAL_ID)
)"""


def create_ledger(ledger: str) -> str:
    """One row per committed load: the source's bronze versions FROM_VERSION..TO_VERSION are in."""
    return f"""CREATE TABLE IF NOT EXISTS {identifier(ledger)} (
    SOURCE VARCHAR NOT NULL,
    BRONZE_TABLE_ID VARCHAR NOT NULL,
    BRONZE_PATH VARCHAR NOT NULL,
    FROM_VERSION BIGINT NOT NULL,
    TO_VERSION BIGINT NOT NULL,
    LOAD_ID VARCHAR NOT NULL,
    TARGET_TABLE VARCHAR NOT NULL,
    ROWS_IN BIGINT NOT NULL,
    ROWS_MERGED BIGINT NOT NULL,
    LOADED_AT TIMESTAMP_TZ NOT NULL
)"""


def create_stage(stage: str) -> str:
    """A temporary table (the session's alone, dropped with it) that write_pandas fills."""
    return f"""CREATE TEMPORARY TABLE {identifier(stage)} (
    SOURCE VARCHAR NOT NULL,
    EXTERNAL_ID VARCHAR NOT NULL,
    IDEMPOTENCY_KEY VARCHAR NOT NULL,
    CONTENT_HASH VARCHAR NOT NULL,
    VERSION VARCHAR,
    VERSION_TS VARCHAR,
    VERSION_NUM VARCHAR,
    FETCHED_AT VARCHAR NOT NULL,
    PAYLOAD VARCHAR NOT NULL,
    KAFKA_TOPIC VARCHAR,
    KAFKA_PARTITION INTEGER,
    KAFKA_OFFSET BIGINT
)"""


def drop_stage(stage: str) -> str:
    return f"DROP TABLE IF EXISTS {identifier(stage)}"


def loaded_up_to(ledger: str) -> str:
    """The newest bronze version a committed load covered, for one source and bronze table (or NULL)."""
    return (
        f"SELECT MAX(TO_VERSION) FROM {identifier(ledger)}"
        " WHERE SOURCE = %(source)s AND BRONZE_TABLE_ID = %(table_id)s"
    )


def record_load(ledger: str) -> str:
    return (
        f"INSERT INTO {identifier(ledger)} (SOURCE, BRONZE_TABLE_ID, BRONZE_PATH, FROM_VERSION, TO_VERSION,"
        " LOAD_ID, TARGET_TABLE, ROWS_IN, ROWS_MERGED, LOADED_AT)"
        " VALUES (%(source)s, %(table_id)s, %(path)s, %(from_version)s, %(to_version)s, %(load_id)s,"
        " %(target)s, %(rows_in)s, %(rows_merged)s, CURRENT_TIMESTAMP())"
    )


# Typed once in the USING subquery: the stage holds text so the bulk load never guesses a type.
_TYPED = """SELECT SOURCE, EXTERNAL_ID, IDEMPOTENCY_KEY, CONTENT_HASH, VERSION,
           CAST(VERSION_TS AS TIMESTAMP_TZ) AS VERSION_TS,
           CAST(VERSION_NUM AS NUMBER(38, 9)) AS VERSION_NUM,
           CAST(FETCHED_AT AS TIMESTAMP_TZ) AS FETCHED_AT,
           PARSE_JSON(PAYLOAD) AS PAYLOAD, KAFKA_TOPIC, KAFKA_PARTITION, KAFKA_OFFSET
        FROM {stage}"""

_NEWEST_PER_KEY = """SELECT * FROM ({typed})
    QUALIFY ROW_NUMBER() OVER (
        PARTITION BY SOURCE, EXTERNAL_ID
        ORDER BY VERSION_TS DESC NULLS LAST, VERSION_NUM DESC NULLS LAST, FETCHED_AT DESC, CONTENT_HASH
    ) = 1"""

_MERGE = """MERGE INTO {target} AS t
USING ({newest}) AS s
ON t.SOURCE = s.SOURCE AND t.EXTERNAL_ID = s.EXTERNAL_ID
WHEN MATCHED
    AND t.CONTENT_HASH IS DISTINCT FROM s.CONTENT_HASH
    AND (CASE
            WHEN s.VERSION_TS IS NOT NULL AND t.VERSION_TS IS NOT NULL AND s.VERSION_TS <> t.VERSION_TS
                THEN s.VERSION_TS > t.VERSION_TS
            WHEN s.VERSION_NUM IS NOT NULL AND t.VERSION_NUM IS NOT NULL AND s.VERSION_NUM <> t.VERSION_NUM
                THEN s.VERSION_NUM > t.VERSION_NUM
            ELSE t.FETCHED_AT IS NULL OR s.FETCHED_AT > t.FETCHED_AT
        END)
THEN UPDATE SET
    PAYLOAD = s.PAYLOAD,
    PULLED_AT = s.FETCHED_AT,
    CONTENT_HASH = s.CONTENT_HASH,
    VERSION = s.VERSION,
    VERSION_TS = s.VERSION_TS,
    VERSION_NUM = s.VERSION_NUM,
    FETCHED_AT = s.FETCHED_AT,
    UPDATED_AT = CURRENT_TIMESTAMP(),
    IDEMPOTENCY_KEY = s.IDEMPOTENCY_KEY,
    KAFKA_TOPIC = s.KAFKA_TOPIC,
    KAFKA_PARTITION = s.KAFKA_PARTITION,
    KAFKA_OFFSET = s.KAFKA_OFFSET,
    INGEST_QUERY_ID = %(load_id)s,
    INGEST_BATCH_ID = %(to_version)s
WHEN NOT MATCHED THEN INSERT (
    SOURCE, EXTERNAL_ID, PAYLOAD, PULLED_AT, CONTENT_HASH, VERSION, VERSION_TS, VERSION_NUM,
    FETCHED_AT, UPDATED_AT, IDEMPOTENCY_KEY, KAFKA_TOPIC, KAFKA_PARTITION, KAFKA_OFFSET,
    INGEST_QUERY_ID, INGEST_BATCH_ID)
VALUES (
    s.SOURCE, s.EXTERNAL_ID, s.PAYLOAD, s.FETCHED_AT, s.CONTENT_HASH, s.VERSION, s.VERSION_TS,
    s.VERSION_NUM, s.FETCHED_AT, CURRENT_TIMESTAMP(), s.IDEMPOTENCY_KEY, s.KAFKA_TOPIC,
    s.KAFKA_PARTITION, s.KAFKA_OFFSET, %(load_id)s, %(to_version)s)"""


def merge(target: str, stage: str) -> str:
    """Upsert the newest staged row per key into ``target`` where it is newer than the stored one."""
    typed = _TYPED.format(stage=identifier(stage))
    return _MERGE.format(target=identifier(target), newest=_NEWEST_PER_KEY.format(typed=typed))
