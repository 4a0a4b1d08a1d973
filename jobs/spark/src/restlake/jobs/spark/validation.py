"""Split a micro-batch of Kafka records into valid envelopes and quarantined ones, with a reason.

Reasons are stable codes a dashboard can group by: ``empty_value``, ``too_large`` (the Kafka value
exceeds ``max_message_bytes``; it is not parsed, and its raw value is kept truncated to the cap),
``malformed_envelope`` (not a JSON object, or a field of the wrong type),
``unsupported_envelope_version``, ``missing_field:<name>``, ``source_mismatch``,
``nul_character`` and ``schema_violation: <json path>: <message>``.

``nul_character``: Postgres can store U+0000 neither in ``text`` nor in ``jsonb`` (``\u0000`` is
rejected), so one such record would fail the whole batch's COPY. Stripping it would change the
record under its content hash and idempotency key, so the record is quarantined as it came, with
the Kafka coordinates, rather than silently altered. It applies to the payload (any string or key)
and to the envelope's text fields.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from restlake.contracts.envelope import ENVELOPE_VERSION
from restlake.jobs.spark.envelope_schema import (
    CORRUPT_COLUMN,
    ENVELOPE_SCHEMA,
    FAST_ENVELOPE_SCHEMA,
    FROM_JSON_OPTIONS,
    REQUIRED_FIELDS,
)
from restlake.jobs.spark.schema_fastpath import fast_accept

REASON = "reason"
# True where the payload went to jsonschema (the compiled check could not accept it); internal.
SCHEMA_FALLBACK = "_schema_fallback"
# True where the payload's text was sliced out of the Kafka value (parse); internal.
SLICED = "_sliced"
# The payload as VARIANT, kept next to its JSON text for typed columns and expectations; internal.
PAYLOAD_VARIANT = "_payload_v"
# An escaped NUL in JSON text: "\u0000" preceded by an even number of backslashes (Java regex).
_ESCAPED_NUL = r"(?<!\\)(?:\\\\)*\\u0000"
_NUL_ESCAPE = "\\u0000"
_TEXT_FIELDS = ("source", "external_id", "idempotency_key", "content_hash", "version")
# restlake's own Spark functions (jvm/spark-udfs): the payload's bytes sliced out of the Kafka
# value; the whole envelope read in one pass over it.
PAYLOAD_FUNCTION = "restlake_payload_json"
ENVELOPE_FUNCTION = "restlake_envelope_json"
_JAVA_FUNCTIONS = {
    PAYLOAD_FUNCTION: ("io.restlake.jobs.spark.PayloadJson", T.BinaryType()),
    ENVELOPE_FUNCTION: ("io.restlake.jobs.spark.EnvelopeJson", FAST_ENVELOPE_SCHEMA),
}
_loaded: weakref.WeakKeyDictionary[SparkSession, dict[str, bool]] = weakref.WeakKeyDictionary()

log = logging.getLogger(__name__)


def payload_function(spark: SparkSession) -> bool:
    """Register ``PAYLOAD_FUNCTION`` in ``spark`` (once); False when its jar is not on the classpath."""
    return _java_function(spark, PAYLOAD_FUNCTION)


def envelope_function(spark: SparkSession) -> bool:
    """Register ``ENVELOPE_FUNCTION`` in ``spark`` (once); False when its jar is not on the classpath."""
    return _java_function(spark, ENVELOPE_FUNCTION)


def _java_function(spark: SparkSession, name: str) -> bool:
    loaded = _loaded.setdefault(spark, {})
    if name not in loaded:
        class_name, return_type = _JAVA_FUNCTIONS[name]
        try:
            spark.udf.registerJavaFunction(name, class_name, return_type)
            loaded[name] = True
        except Exception as exc:  # py4j's or an AnalysisException: the class did not load
            log.warning(
                "%s is not on the Spark classpath (jar bundle spark-udfs; `restlake stack jars` "
                "compiles it when a JDK is installed): records are parsed by Spark's from_json alone, "
                "slower, and payloads re-serialised from VARIANT with sorted keys: %s",
                class_name,
                str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            )
            loaded[name] = False
    return loaded[name]


def parse(
    kafka_df: DataFrame,
    *,
    max_message_bytes: int,
    slice_payload: bool = True,
    payload_variant: bool = True,
    one_pass: bool = True,
) -> DataFrame:
    """Kafka rows → envelope columns plus the Kafka coordinates, payload as JSON text.

    A value over ``max_message_bytes`` is not parsed (its envelope columns are NULL,
    ``too_large`` is true) and its ``raw_value`` is cut to the cap.

    The payload's text is the producer's own bytes (key order, number spelling, spacing) when
    ``PAYLOAD_FUNCTION`` is on the classpath and the record is strict JSON that Postgres's jsonb
    takes as it is; otherwise it is the VARIANT written back as JSON, which sorts keys.
    ``slice_payload=False`` always takes the VARIANT's text: the baseline of ``bench/case_parse.py``.

    Each record is read once by ``ENVELOPE_FUNCTION``, envelope and payload bytes together, where
    it is loaded (``from_json`` and the slice were two passes over the value); the records it is
    not sure of are parsed by ``from_json`` as before, and only they. Every column, the payload's
    text and the verdict are the same either way (see ``_parse_in_one_pass``). ``one_pass=False``
    parses every record with ``from_json``: the reference of the parity tests and benchmarks.

    ``payload_variant=False``: the caller reads no ``PAYLOAD_VARIANT`` (no typed columns, no
    expectations, no JSON Schema), so none is built where the one pass read the record (it was
    two fifths of ``from_json``'s time).
    """
    too_large = F.coalesce(F.length("value") > F.lit(max_message_bytes), F.lit(False))
    text = F.when(~too_large, F.col("value").cast("string"))
    sliced = F.lit(None).cast("binary")
    sliceable = slice_payload and payload_function(kafka_df.sparkSession)
    if sliceable:
        sliced = F.call_function(PAYLOAD_FUNCTION, F.when(~too_large, F.col("value")))
    if sliceable and one_pass and envelope_function(kafka_df.sparkSession):
        return _parse_in_one_pass(
            kafka_df,
            too_large=too_large,
            max_message_bytes=max_message_bytes,
            payload_variant=payload_variant,
        )
    parsed = kafka_df.select(
        *_kafka_columns(too_large, max_message_bytes),
        F.from_json(text, ENVELOPE_SCHEMA, FROM_JSON_OPTIONS).alias("env"),
        sliced.alias("_payload_bytes"),
    )
    # Whether the payload's text is the slice, which holds no NUL escape (see validate).
    is_sliced = F.col("_payload_bytes").isNotNull().alias(SLICED)
    envelope = [
        F.col(f"env.{f.name}").alias(f.name)
        for f in ENVELOPE_SCHEMA.fields
        if f.name not in ("payload", CORRUPT_COLUMN)
    ]
    # to_json of the VARIANT keeps bare strings quoted; an explicit JSON null stays "null". It is
    # also a fifth of the executors' time (a JsonFactory per string), so it is only the fallback
    # where the function is loaded: coalesce evaluates it only for the rows the slice refused.
    payload = F.to_json(F.col("env.payload"))
    if sliceable:
        payload = F.coalesce(F.col("_payload_bytes").cast("string"), payload)
    return parsed.select(
        "*",
        *envelope,
        payload.alias("payload"),
        F.col(f"env.{CORRUPT_COLUMN}").alias(CORRUPT_COLUMN),
        F.col("env.payload").alias(PAYLOAD_VARIANT),
        is_sliced,
    ).drop("env", "_payload_bytes")


def _kafka_columns(too_large: Column, max_message_bytes: int) -> list[Column]:
    """The Kafka record's own columns; a value over the cap is kept cut to it."""
    return [
        F.col("key").cast("string").alias("kafka_key"),
        F.when(too_large, F.substring("value", 1, max_message_bytes))
        .otherwise(F.col("value"))
        .alias("raw_value"),
        too_large.alias("_too_large"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
    ]


def _parse_in_one_pass(
    kafka_df: DataFrame, *, too_large: Column, max_message_bytes: int, payload_variant: bool
) -> DataFrame:
    """``parse``, reading each record once with ``ENVELOPE_FUNCTION``.

    The function answers only for records it is certain ``from_json`` reads the same way (see
    EnvelopeJson.java); the others are parsed as before, ``from_json`` with the payload as VARIANT
    and its text sliced where ``PAYLOAD_FUNCTION`` can, in a CASE branch evaluated for them alone.
    Either way every column, the payload's text and the verdict are those of ``from_json``.

    ``payload_variant``: the payload's VARIANT is parsed from its sliced text, strict JSON with no
    duplicate key (the one pass refuses anything else), which both parsers build alike.
    """
    parsed = kafka_df.select(
        *_kafka_columns(too_large, max_message_bytes),
        F.call_function(ENVELOPE_FUNCTION, F.when(~too_large, F.col("value"))).alias("_fast"),
    )
    # A separate projection, so that from_json and the slice run only where the one pass refused.
    refused = F.col("_fast").isNull() & ~F.col("_too_large") & F.col("raw_value").isNotNull()
    full = F.from_json(F.col("raw_value").cast("string"), ENVELOPE_SCHEMA, FROM_JSON_OPTIONS)
    parsed = parsed.select(
        "*",
        F.when(refused, full).alias("_full"),
        F.when(refused, F.call_function(PAYLOAD_FUNCTION, F.col("raw_value"))).alias("_slice"),
    )
    fast = F.col("_fast").isNotNull()
    envelope = [
        F.when(fast, F.col(f"_fast.{f.name}")).otherwise(F.col(f"_full.{f.name}")).alias(f.name)
        for f in ENVELOPE_SCHEMA.fields
        if f.name not in ("payload", CORRUPT_COLUMN)
    ]
    payload = F.when(fast, F.col("_fast.payload").cast("string")).otherwise(
        F.coalesce(F.col("_slice").cast("string"), F.to_json(F.col("_full.payload")))
    )
    variant = []
    if payload_variant:
        from_text = F.try_parse_json(F.col("_fast.payload").cast("string"))
        variant = [F.when(fast, from_text).otherwise(F.col("_full.payload")).alias(PAYLOAD_VARIANT)]
    return parsed.select(
        *[c for c in parsed.columns if c not in ("_fast", "_full", "_slice")],
        *envelope,
        payload.alias("payload"),
        F.col(f"_full.{CORRUPT_COLUMN}").alias(CORRUPT_COLUMN),
        *variant,
        (fast | F.col("_slice").isNotNull()).alias(SLICED),
    )


def validate(
    kafka_df: DataFrame,
    *,
    source: str,
    json_schema: dict[str, Any] | None,
    max_message_bytes: int = 1024 * 1024,
    defer_schema_check: bool = False,
    slice_payload: bool = True,
    payload_variant: bool = True,
    one_pass: bool = True,
) -> DataFrame:
    """``parse`` plus a ``reason`` column: NULL for a valid record, else why it is quarantined.

    ``defer_schema_check``: when the schema compiles into a Spark-native check, leave out the
    jsonschema UDF. The reason is then final except where ``SCHEMA_FALLBACK`` is true, and the
    caller applies ``check_fallback`` only if some row needs it. A Python UDF in the plan costs
    every row a trip through Arrow and the Python worker even when its input is NULL (measured:
    a third of the validation job), and most batches have no doubtful row at all.

    ``payload_variant=False``: see ``parse``; a JSON Schema needs the VARIANT whatever it says.
    """
    parsed = parse(
        kafka_df,
        max_message_bytes=max_message_bytes,
        slice_payload=slice_payload,
        one_pass=one_pass,
        # The compiled JSON Schema check reads the VARIANT.
        payload_variant=payload_variant or json_schema is not None,
    )
    reason: Any = (
        F.when(F.col("raw_value").isNull(), F.lit("empty_value"))
        .when(F.col("_too_large"), F.lit("too_large"))
        .when(F.col(CORRUPT_COLUMN).isNotNull(), F.lit("malformed_envelope"))
    )
    reason = reason.when(F.col("envelope_version") > ENVELOPE_VERSION, F.lit("unsupported_envelope_version"))
    for name in REQUIRED_FIELDS:
        column = F.col(name)
        missing = column.isNull() if name == "fetched_at" else column.isNull() | (F.trim(column) == "")
        reason = reason.when(missing, F.lit(f"missing_field:{name}"))
    reason = reason.when(F.col("source") != F.lit(source), F.lit("source_mismatch"))
    # A sliced payload holds no NUL escape (the slice refuses one); elsewhere the regex (a
    # look-behind over the whole payload) only where a plain substring search finds the escape.
    payload = F.col("payload")
    has_nul = F.when(~F.col(SLICED) & payload.contains(_NUL_ESCAPE), payload.rlike(_ESCAPED_NUL)).otherwise(
        F.lit(False)
    )
    for name in _TEXT_FIELDS:
        has_nul = has_nul | F.coalesce(F.col(name).contains(F.lit("\x00")), F.lit(False))
    reason = reason.when(has_nul, F.lit("nul_character"))
    with_reason = parsed.withColumn(REASON, reason).drop("_too_large", SLICED)
    if json_schema is None:
        return with_reason
    accepted = fast_accept(json_schema, F.col("payload"), F.col(PAYLOAD_VARIANT))
    doubtful = F.col(REASON).isNull() & (F.lit(True) if accepted is None else ~accepted)
    flagged = with_reason.withColumn(SCHEMA_FALLBACK, doubtful)
    if defer_schema_check and accepted is not None:
        return flagged
    return check_fallback(flagged, json_schema)


def check_fallback(flagged: DataFrame, json_schema: dict[str, Any]) -> DataFrame:
    """Give the rows ``SCHEMA_FALLBACK`` marks their jsonschema verdict as ``reason``."""
    # Imported here: the checker needs pandas (36 MiB of the driver's memory), and only a batch
    # holding a payload the compiled check could not accept gets this far.
    from restlake.jobs.spark.jsonschema_udf import payload_checker

    check = payload_checker(json_schema)
    # Spark evaluates a Python UDF for every row whatever guards it, so the check sees envelopes
    # already rejected too; coalesce keeps their first reason. Payloads the Spark-native pre-check
    # accepts reach the UDF as NULL, which it passes without parsing: only doubtful ones cost.
    return flagged.withColumn(
        REASON, F.coalesce(F.col(REASON), check(F.when(F.col(SCHEMA_FALLBACK), F.col("payload"))))
    )
