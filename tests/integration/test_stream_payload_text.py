"""The payload's text in bronze and Postgres is the producer's own bytes, sliced out of the Kafka
value by restlake's Spark function (jvm/spark-udfs); what the slice refuses falls back to the
VARIANT written back as JSON."""

from __future__ import annotations

import json
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
    # Parsed from the sliced text by the one pass, from the whole value by from_json: alike.
    kafka = _kafka(spark, KEPT)

    def variants(one_pass: bool) -> list[str]:
        parsed = validation.parse(kafka, max_message_bytes=1024 * 1024, one_pass=one_pass)
        picked = parsed.orderBy("kafka_offset").select(F.to_json(validation.PAYLOAD_VARIANT))
        return [r[0] for r in picked.collect()]

    one_pass = variants(True)
    assert one_pass == variants(False)
    assert None not in one_pass


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
    functions = validation._JAVA_FUNCTIONS
    missing = {name: ("io.restlake.jobs.spark.NotThere", t) for name, (_, t) in functions.items()}
    monkeypatch.setattr(validation, "_JAVA_FUNCTIONS", missing)
    session = spark.newSession()  # a session of its own: the function is registered per session
    with caplog.at_level(logging.WARNING, logger=validation.__name__):
        payloads = _payloads(session, ['{"z":1,"a":1.10}'])
        light = validation.validate(
            _kafka(session, ['{"z":1,"a":1.10}']), source="s", json_schema=None, payload_variant=False
        )
        assert [tuple(r) for r in light.select("payload", validation.REASON).collect()] == [
            ('{"a":1.1,"z":1}', None)
        ]
    assert payloads == ['{"a":1.1,"z":1}']  # keys sorted, the number normalised
    assert "io.restlake.jobs.spark.NotThere is not on the Spark classpath" in caplog.text
    assert validation.payload_function(session) is False
    assert validation.envelope_function(session) is False
    monkeypatch.undo()
    assert validation.payload_function(spark) is True
    assert validation.envelope_function(spark) is True


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


def _verdicts(
    spark: SparkSession, values: list[str], *, payload_variant: bool, one_pass: bool
) -> list[tuple]:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [(None, v.encode("utf-8"), "t", 0, i, at) for i, v in enumerate(values)]
    frame = validation.validate(
        spark.createDataFrame(rows, KAFKA_SCHEMA),
        source="s",
        json_schema=None,
        max_message_bytes=4096,
        payload_variant=payload_variant,
        one_pass=one_pass,
    )
    if one_pass and not payload_variant:
        assert validation.PAYLOAD_VARIANT not in frame.columns
    variant = F.to_json(validation.PAYLOAD_VARIANT) if payload_variant else F.lit(None)
    picked = frame.orderBy("kafka_offset").select(validation.REASON, "payload", "external_id", variant)
    return [tuple(r) for r in picked.collect()]


def test_the_one_pass_gives_every_record_the_same_text_and_verdict(spark: SparkSession) -> None:
    values = [*HOSTILE, (HEAD % (99, 99)) + '{"x":"' + "y" * 5000 + '"}' + TAIL]  # over the cap
    full = _verdicts(spark, values, payload_variant=True, one_pass=False)
    assert _verdicts(spark, values, payload_variant=True, one_pass=True) == full
    light = _verdicts(spark, values, payload_variant=False, one_pass=True)
    assert [r[:3] for r in light] == [r[:3] for r in full]
    reasons = [r for r, *_ in full]
    assert reasons[0] is None and reasons[3] == "malformed_envelope" and reasons[-1] == "too_large"
    assert reasons[6] == "nul_character"
    # An escaped backslash before u0000 is text, not a NUL: kept, and as the producer wrote it.
    assert light[7][:2] == (None, '{"not_nul":"\\\\u0000"}')
    assert reasons.count(None) >= 4  # the corpus keeps some valid records, or it proves little


# Envelopes the one-pass parser (EnvelopeJson) must read exactly as from_json does, or leave to it:
# each field null, of its type, of another type; timestamps in and out of the one spelling it reads;
# duplicate, unknown and nested keys; bytes that are not UTF-8; text after the object.
def _envelope(**fields: object) -> str:
    base: dict[str, object] = {
        "envelope_version": 1,
        "source": "s",
        "external_id": "e",
        "idempotency_key": "k",
        "content_hash": "h",
        "version": "3",
        "fetched_at": "2026-01-01T00:00:00Z",
        "request": {"url": "https://api.example.com/x", "status": 200, "line": 2},
        "parent": {"source": "p", "external_id": "1"},
        "payload": {"a": 1},
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not _DROP}, ensure_ascii=False)


_DROP = object()
ENVELOPES: list[str | bytes] = [
    _envelope(),
    *[
        _envelope(fetched_at=t)
        for t in (
            "2026-01-01T00:00:00.5Z",
            "2026-01-01T00:00:00.123456Z",
            "2026-01-01T00:00:00.1234567Z",
            "2026-01-01T00:00:00.123456789Z",
            "2026-01-01T12:30:00+05:30",
            "2026-01-01T12:30:00-08:00",
            "2026-01-01T00:00:00+18:00",
            "2026-01-01T00:00:00+19:00",
            "2026-01-01T00:00:00",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T23:59:60Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "2026-01-01T00:00:00z",
            "",
            None,
            1767225600,
            1767225600.5,
            {"at": 1},
        )
    ],
    *[_envelope(envelope_version=v) for v in ("1", 1.0, 2147483648, -1, None, True, 2)],
    *[
        _envelope(external_id=v)
        for v in (5, {"id": 1}, "", "a\u0000b", "caf\u00e9 \U0001f600", '"q"\\', None)
    ],
    _envelope(source=None),
    _envelope(source="other"),
    _envelope(content_hash=_DROP, version=_DROP, parent=_DROP, request=_DROP),
    *[
        _envelope(request=r)
        for r in (
            None,
            "x",
            [],
            {},
            {"status": "200"},
            {"status": 2.5},
            {"line": 3, "url": None, "x": {"y": [1]}},
        )
    ],
    *[_envelope(parent=p) for p in (None, {"source": 1}, {"source": "p", "other": [1, {"a": 2}]}, "p")],
    _envelope(extra={"nested": [1, {"payload": 2}]}, Payload="case matters"),
    _envelope(payload=_DROP),
    _envelope(payload=None),
    _envelope(payload="a bare string"),
    _envelope().replace('"source": "s"', '"source": "s", "source": "s"'),
    _envelope().replace('"status": 200', '"status": 200, "status": 201'),
    _envelope() + " trailing",
    _envelope() + _envelope(),
    "\ufeff" + _envelope(),
    "\n  " + _envelope() + "\n",
    _envelope().replace('"external_id": "e"', '"external_id": "e\\ud800"'),
    _envelope().encode("utf-8").replace(b'"e"', b'"e\xff"'),
    _envelope().encode("utf-8").replace(b'"e"', b'"e\xed\xa0\x80"'),  # a surrogate written as UTF-8
    _envelope().encode("utf-8").replace(b'"e"', b'"e\xc0\xaf"'),  # an overlong encoding
]


def test_the_one_pass_parse_reads_every_envelope_column_as_from_json(spark: SparkSession) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    values = [v if isinstance(v, bytes) else v.encode("utf-8") for v in ENVELOPES]
    rows = [(None, v, "t", 0, i, at) for i, v in enumerate(values)]
    kafka = spark.createDataFrame(rows, KAFKA_SCHEMA)

    def parsed(*, payload_variant: bool, one_pass: bool) -> list[dict]:
        frame = validation.validate(
            kafka,
            source="s",
            json_schema=None,
            max_message_bytes=4096,
            payload_variant=payload_variant,
            one_pass=one_pass,
        )
        if payload_variant:
            frame = frame.withColumn(validation.PAYLOAD_VARIANT, F.to_json(validation.PAYLOAD_VARIANT))
        else:
            frame = frame.drop(validation.PAYLOAD_VARIANT)
        # As epoch microseconds: Python's datetime cannot hold year 1 moved to a local time zone.
        frame = frame.withColumn("fetched_at", F.unix_micros("fetched_at"))
        return [r.asDict(recursive=True) for r in frame.orderBy("kafka_offset").collect()]

    for payload_variant in (False, True):
        one_pass = parsed(payload_variant=payload_variant, one_pass=True)
        from_json = parsed(payload_variant=payload_variant, one_pass=False)
        assert len(one_pass) == len(ENVELOPES)
        for index, (got, want) in enumerate(zip(one_pass, from_json, strict=True)):
            assert got == want, f"envelope {index} (payload_variant={payload_variant}): {ENVELOPES[index]!r}"
    # The corpus holds records the one pass reads, valid ones among them, and ones it leaves to
    # from_json, or it proves little.
    read = kafka.orderBy("offset").select(F.call_function(validation.ENVELOPE_FUNCTION, "value").isNotNull())
    fast = [r[0] for r in read.collect()]
    assert 15 <= sum(fast) <= len(ENVELOPES) - 15, fast
    assert sum(r[validation.REASON] is None for r in one_pass) >= 10
