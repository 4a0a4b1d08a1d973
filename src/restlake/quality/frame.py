"""The frame the bronze checkpoint validates: the source's bronze rows, plus what the suite projects."""

from __future__ import annotations

import logging
from datetime import datetime

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from restlake.errors import PermanentError
from restlake.quality.suite import KEY_ROWS, BronzeSuite, Projection

log = logging.getLogger(__name__)

_VERSION_KEY = "_version_key"


def read_bronze(spark: SparkSession, path: str, source: str) -> DataFrame:
    """The source's rows of the bronze Delta table at ``path``; a missing table is a PermanentError."""
    try:
        table = spark.read.format("delta").load(path)
        table.schema  # noqa: B018 - resolves the table now, so a missing one fails here, not in GX
    except AnalysisException as exc:
        raise PermanentError(
            f"no bronze Delta table for source {source} at {path} ({exc.getCondition() or 'unreadable'}); "
            "run the source first"
        ) from None
    return table.where(F.col("source") == F.lit(source))


def since(rows: DataFrame, watermark: datetime | None) -> DataFrame:
    """The rows ingested after ``watermark`` (all when None).

    The ingest_date bound is implied by the timestamp one (both come from one current_timestamp
    in UTC) but is what lets Delta skip the older partitions without reading their files.
    """
    if watermark is None:
        return rows
    return rows.where(F.col("ingest_date") >= F.lit(watermark.date())).where(
        F.col("ingested_at") > F.lit(watermark)
    )


def _version_key() -> Column:
    return F.coalesce(F.col("version"), F.col("content_hash"))


def with_key_rows(rows: DataFrame, all_rows: DataFrame) -> DataFrame:
    """``rows`` with ``KEY_ROWS``: how many of ``all_rows`` share its (external_id, version key)."""
    counts = (
        all_rows.select("external_id", _version_key().alias(_VERSION_KEY))
        .groupBy("external_id", _VERSION_KEY)
        .agg(F.count(F.lit(1)).alias(KEY_ROWS))
    )
    return (
        rows.withColumn(_VERSION_KEY, _version_key())
        .join(counts, on=["external_id", _VERSION_KEY], how="left")
        .drop(_VERSION_KEY)
    )


def _json_path(path: tuple[str, ...]) -> str:
    parts = [p.replace("\\", "\\\\").replace("'", "\\'") for p in path]
    return "$" + "".join(f"['{p}']" for p in parts)


def projection_column(payload: Column, projection: Projection) -> Column:
    """The column of one ``Projection`` over the parsed payload (a VARIANT)."""
    path = _json_path(projection.path)
    if projection.kind == "text":
        # Objects and arrays come out as their JSON text, JSON null as NULL: present means non-null.
        return F.try_variant_get(payload, path, "string").alias(projection.column)
    if projection.kind == "number":
        return F.try_variant_get(payload, path, "double").alias(projection.column)
    value = F.try_variant_get(payload, path, "variant")
    kind = F.schema_of_variant(value)
    number = F.try_variant_get(value, "$", "double")
    # JSON Schema counts 1.0 as an integer (and the stream's validation accepted it as one), while
    # parse_json types it DECIMAL(2,1): an integral decimal or double is an integer here too.
    json_type = (
        F.when(value.isNull() | F.is_variant_null(value), F.lit(None).cast("string"))
        .when(kind.isin("BIGINT", "INT", "SMALLINT", "TINYINT"), "integer")
        .when(kind.rlike(r"^(DECIMAL|DOUBLE|FLOAT)") & (number == F.floor(number)), "integer")
        .when(kind.rlike(r"^(DECIMAL|DOUBLE|FLOAT)"), "number")
        .when(kind == "STRING", "string")
        .when(kind == "BOOLEAN", "boolean")
        .when(kind.startswith("OBJECT"), "object")
        .when(kind.startswith("ARRAY"), "array")
        .otherwise(F.lower(kind))
    )
    return json_type.alias(projection.column)


def validation_frame(
    spark: SparkSession, path: str, suite: BronzeSuite, watermark: datetime | None
) -> DataFrame:
    """Bronze rows of the suite's source since ``watermark``, with the key count and projections."""
    all_rows = read_bronze(spark, path, suite.source)
    rows = with_key_rows(since(all_rows, watermark), all_rows)
    if suite.projections:
        payload = F.try_parse_json(F.col("payload"))
        rows = rows.select("*", *[projection_column(payload, p) for p in suite.projections])
    return rows
