"""The payload's text in bronze and Postgres is the producer's own bytes, sliced out of the Kafka
value by restlake's Spark function (jvm/spark-udfs); what the slice refuses falls back to the
VARIANT written back as JSON."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from restlake.jobs.spark import validation

pytestmark = pytest.mark.integration

KAFKA_SCHEMA = "key binary, value binary, topic string, partition int, offset long, timestamp timestamp"
HEAD = (
    '{"envelope_version":1,"source":"s","external_id":"e%d","idempotency_key":"k%d",'
    '"content_hash":"h","fetched_at":"2026-01-01T00:00:00Z","payload":'
)
TAIL = ',"request":{"url":"https://api.example.com/x","status":200}}'


def _kafka(spark: SparkSession, payload_texts: list[str]) -> DataFrame:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        (None, ((HEAD % (i, i)) + text + TAIL).encode("utf-8"), "t", 0, i, at)
        for i, text in enumerate(payload_texts)
    ]
    return spark.createDataFrame(rows, KAFKA_SCHEMA)


def _payloads(spark: SparkSession, payload_texts: list[str]) -> list[str | None]:
    parsed = validation.validate(_kafka(spark, payload_texts), source="s", json_schema=None)
    rows = parsed.orderBy("kafka_offset").select("payload", validation.REASON).collect()
    assert [r[validation.REASON] for r in rows] == [None] * len(payload_texts)
    return [r.payload for r in rows]


# Each as the producer wrote it, which a VARIANT would have changed: keys out of order, a
# trailing zero, exponents, a decimal beyond a double, spacing, escapes, non-ASCII as UTF-8.
KEPT = [
    '{"z":1,"a":{"y":[1,2,{"c":"x\\"y"}],"b":1.10}}',
    '{"amount":12345678901234567890.123456789,"e":1e3,"neg":-0.0}',
    '{ "spaced" : [ 1 , 2 ] }',
    '{"name":"caf\u00e9 \u20ac \U0001f600","escaped":"\\u00e9\\n\\ud83d\\ude00"}',
    '"a bare string"',
    "42",
    "null",
    "[]",
]


def test_the_payload_text_is_the_producers_bytes(spark: SparkSession) -> None:
    assert _payloads(spark, KEPT) == KEPT


def test_the_variant_beside_it_is_the_same_value(spark: SparkSession) -> None:
    parsed = validation.parse(_kafka(spark, KEPT), max_message_bytes=1024 * 1024)
    rows = (
        parsed.orderBy("kafka_offset")
        .select(
            F.to_json(validation.PAYLOAD_VARIANT).alias("from_variant"),
            F.to_json(F.parse_json("payload")).alias("from_text"),
        )
        .collect()
    )
    assert [r.from_variant for r in rows] == [r.from_text for r in rows]


def test_what_the_slice_refuses_is_written_back_from_the_variant(spark: SparkSession) -> None:
    refused = [
        "{'single':'quotes'}",  # Spark's parser takes it; Postgres's jsonb does not
        '{"b":2,"a":1},"payload":{"b":3,"a":2}',  # two payload members
    ]
    payloads = _payloads(spark, refused)
    assert payloads[0] == '{"single":"quotes"}'
    # Which of the two counts is the envelope parser's call; the text is that one's, keys sorted.
    assert payloads[1] in ('{"a":1,"b":2}', '{"a":2,"b":3}')


def test_an_unpaired_surrogate_escape_is_quarantined_not_sliced(spark: SparkSession) -> None:
    # jsonb refuses it, so it must never reach the COPY: one such record would fail the batch.
    frame = validation.validate(_kafka(spark, ['{"lone":"\\ud800"}']), source="s", json_schema=None)
    (row,) = frame.select(validation.REASON).collect()
    assert row[validation.REASON] == "malformed_envelope"


def test_without_the_function_the_variant_text_is_used_and_a_warning_says_why(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(validation, "_PAYLOAD_CLASS", "io.restlake.jobs.spark.NotThere")
    session = spark.newSession()  # a session of its own: the function is registered per session
    with caplog.at_level(logging.WARNING, logger=validation.__name__):
        payloads = _payloads(session, ['{"z":1,"a":1.10}'])
    assert payloads == ['{"a":1.1,"z":1}']  # keys sorted, the number normalised
    assert "io.restlake.jobs.spark.NotThere is not on the Spark classpath" in caplog.text
    assert validation.payload_function(session) is False
    assert validation.payload_function(spark) is True


# Kafka values the envelope parse and the slice disagree about, or refuse: the payload as text,
# as the VARIANT would refuse it, missing, doubled, or the record not an envelope at all.
HOSTILE = [
    (HEAD % (0, 0)) + '{"a":1}' + TAIL,
    (HEAD % (1, 1)) + "{'single':'quotes'}" + TAIL,
    (HEAD % (2, 2)) + '{"b":2,"a":1},"payload":{"b":3}' + TAIL,
    (HEAD % (3, 3)) + '{"lone":"\\ud800"}' + TAIL,
    (HEAD % (4, 4)) + '{"dup":1,"dup":2}' + TAIL,
    (HEAD % (5, 5)) + '{"deep":' * 40 + "1" + "}" * 40 + TAIL,
    (HEAD % (6, 6)) + '{"nul":"a\\u0000b"}' + TAIL,
    (HEAD % (16, 16)) + '{"not_nul":"\\\\u0000"}' + TAIL,
    (HEAD % (7, 7)) + '{"n":NaN}' + TAIL,
    (HEAD % (8, 8)) + '{"big":1e400,"long":123456789012345678901234567890}' + TAIL,
    (HEAD % (9, 9)) + "null" + TAIL,
    (HEAD % (10, 10)) + '{"unterminated":' + TAIL,
    '{"envelope_version":1,"source":"s","external_id":"e11","idempotency_key":"k11","content_hash":"h",'
    '"fetched_at":"2026-01-01T00:00:00Z"}',
    '{"envelope_version":1,"source":"s","external_id":"e12","idempotency_key":"k12","content_hash":"h",'
    '"fetched_at":"yesterday","payload":{"a":1}}',
    "[1,2,3]",
    "not json",
    "",
]


def _verdicts(spark: SparkSession, values: list[str], *, payload_variant: bool) -> list[tuple]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [(None, v.encode("utf-8"), "t", 0, i, at) for i, v in enumerate(values)]
    frame = validation.validate(
        spark.createDataFrame(rows, KAFKA_SCHEMA),
        source="s",
        json_schema=None,
        max_message_bytes=4096,
        payload_variant=payload_variant,
    )
    if not payload_variant:
        assert validation.PAYLOAD_VARIANT not in frame.columns
    picked = frame.orderBy("kafka_offset").select(validation.REASON, "payload", "external_id")
    return [tuple(r) for r in picked.collect()]


def test_without_the_variant_every_record_gets_the_same_text_and_verdict(spark: SparkSession) -> None:
    values = [*HOSTILE, (HEAD % (99, 99)) + '{"x":"' + "y" * 5000 + '"}' + TAIL]  # over the cap
    light = _verdicts(spark, values, payload_variant=False)
    full = _verdicts(spark, values, payload_variant=True)
    # Envelope fields of a record the VARIANT made corrupt may be kept without it (the quarantine
    # then says more about the record); the verdict and the payload text may not differ.
    assert [(r, p) for r, p, _ in light] == [(r, p) for r, p, _ in full]
    reasons = [r for r, _, _ in full]
    assert reasons[0] is None and reasons[3] == "malformed_envelope" and reasons[-1] == "too_large"
    assert reasons[6] == "nul_character"
    # An escaped backslash before u0000 is text, not a NUL: kept, and as the producer wrote it.
    assert light[7][:2] == (None, '{"not_nul":"\\\\u0000"}')
    assert reasons.count(None) >= 4  # the corpus keeps some valid records, or it proves little
