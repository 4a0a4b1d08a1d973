"""The explicit Spark schema of the event envelope (restlake.contracts.envelope); never inferred.

``payload`` is declared VARIANT so that any JSON value survives parsing (a nested object, an
array, a bare string or number, an explicit null); its text is sliced from the Kafka value as it
came (validation.parse) or, failing that, written back with ``to_json``. A STRING declaration
would turn the bare string ``"x"`` into the invalid JSON ``x``.
A record that is not a JSON object, or whose field has the wrong type (an unparseable
``fetched_at``, a non-integer ``status``), sets ``_corrupt_record`` instead of failing the batch.
"""

from __future__ import annotations

from pyspark.sql import types as T

CORRUPT_COLUMN = "_corrupt_record"

REQUEST_SCHEMA = T.StructType(
    [
        T.StructField("url", T.StringType()),
        T.StructField("status", T.IntegerType()),
        T.StructField("etag", T.StringType()),
        T.StructField("last_modified", T.StringType()),
        T.StructField("cursor", T.StringType()),
        # Added later, nullable: older envelopes parse with a null line; bronze tables created before
        # it gain it on their next append (jobs/spark/sinks.py, BronzeSink.write: mergeSchema).
        T.StructField("line", T.IntegerType()),
    ]
)

# spec.parent: the parent record a child source's record was fetched for; null for other sources.
PARENT_SCHEMA = T.StructType(
    [
        T.StructField("source", T.StringType()),
        T.StructField("external_id", T.StringType()),
    ]
)

ENVELOPE_SCHEMA = T.StructType(
    [
        T.StructField("envelope_version", T.IntegerType()),
        T.StructField("source", T.StringType()),
        T.StructField("external_id", T.StringType()),
        T.StructField("idempotency_key", T.StringType()),
        T.StructField("content_hash", T.StringType()),
        T.StructField("version", T.StringType()),
        T.StructField("fetched_at", T.TimestampType()),
        T.StructField("request", REQUEST_SCHEMA),
        T.StructField("payload", T.VariantType()),
        T.StructField("parent", PARENT_SCHEMA),
        T.StructField(CORRUPT_COLUMN, T.StringType()),
    ]
)

# from_json options: keep going on a bad record and say which one was bad.
FROM_JSON_OPTIONS = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT_COLUMN}

# Fields a record cannot be routed or deduplicated without.
REQUIRED_FIELDS = ("source", "external_id", "idempotency_key", "content_hash", "fetched_at", "payload")

# What restlake's one-pass envelope parser returns (jvm/spark-udfs EnvelopeJson; validation.parse):
# the envelope's fields in this order, the payload as the producer's bytes, no corrupt column (a
# record it is not sure of comes back NULL and goes to from_json).
FAST_ENVELOPE_SCHEMA = T.StructType(
    [f for f in ENVELOPE_SCHEMA.fields if f.name not in ("payload", CORRUPT_COLUMN)]
    + [T.StructField("payload", T.BinaryType())]
)
