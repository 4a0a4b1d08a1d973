"""The Spark-native schema pre-check never accepts a payload that jsonschema rejects."""

from __future__ import annotations

import json

import pytest
from jsonschema.validators import validator_for
from pyspark.sql import functions as F

from restlake.jobs.spark.schema_fastpath import fast_accept

pytestmark = pytest.mark.integration

SCHEMA = {
    "type": "object",
    "required": ["id", "updated_at"],
    "properties": {
        "id": {"type": "integer"},
        "updated_at": {"type": "string", "format": "date-time"},
        "amount": {"type": ["number", "null"]},
        "tags": {"type": "array"},
        "owner": {"type": "object"},
        "ok": {"type": "boolean"},
    },
}
PAYLOADS = [
    {"id": 1, "updated_at": "2024-01-01T00:00:00Z"},
    {"id": 1, "updated_at": "x", "amount": 1.5, "tags": [1, "a"], "owner": {"k": 1}, "ok": True, "extra": 3},
    {"id": 1, "updated_at": "x", "amount": None},
    {"id": 1.0, "updated_at": "x"},  # an integer to jsonschema, and DECIMAL(1,0) to Spark
    {"id": "1", "updated_at": "x"},
    {"id": 1},
    {"id": None, "updated_at": "x"},
    {"id": True, "updated_at": "x"},
    {"id": 1, "updated_at": 5},
    {"id": 1, "updated_at": "x", "amount": "cheap"},
    {"id": 1, "updated_at": "x", "tags": {"a": 1}},
    {"id": 1, "updated_at": "x", "owner": [1]},
    {"id": 1, "updated_at": "x", "ok": 0},
    [1, 2],
    "text",
    None,
]


def test_fast_path_accepts_only_what_jsonschema_accepts(spark) -> None:
    texts = [json.dumps(p) for p in PAYLOADS]
    df = spark.createDataFrame([(t,) for t in texts], "payload string")
    variant = F.parse_json("payload")
    accepted = fast_accept(SCHEMA, F.to_json(variant), variant)
    assert accepted is not None
    got = [row.ok for row in df.select(accepted.alias("ok")).collect()]
    validator = validator_for(SCHEMA)(SCHEMA)
    valid = [validator.is_valid(p) for p in PAYLOADS]
    assert all(v for g, v in zip(got, valid, strict=True) if g), list(zip(texts, got, valid, strict=True))
    # It must also be worth having: every valid payload of the common shapes is accepted.
    assert (
        got
        == [True, True, True, True, False, False, False, False, False, False, False, False, False]
        + [False] * 3
    )


# Schemas with the keywords the compiler translates, and payloads on both sides of each rule.
RICH_SCHEMA = {
    "type": "object",
    "required": ["id", "status"],
    "properties": {
        "id": {"type": "integer", "minimum": 1, "maximum": 1000000},
        "status": {"enum": ["open", "closed", None]},
        "kind": {"const": "issue"},
        "score": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 10},
        "code": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[A-Z]{2}[0-9]*$"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 3}, "minItems": 1, "maxItems": 3},
        "owner": {
            "type": "object",
            "required": ["login"],
            "properties": {"login": {"type": "string"}, "id": {"type": ["integer", "null"]}},
        },
        "flags": {"type": "array", "items": {"enum": [True, 1, "x"]}},
        "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
    },
}
RICH_PAYLOADS = [
    {"id": 1, "status": "open"},
    {"id": 1, "status": None, "kind": "issue", "score": 9.5, "code": "AB12", "tags": ["a", "bc"]},
    {"id": 5, "status": "closed", "owner": {"login": "x", "id": None}, "flags": [True, 1, "x"]},
    {"id": 5, "status": "closed", "matrix": [[1, 2], [], [3]]},
    {"id": 0, "status": "open"},
    {"id": 1000001, "status": "open"},
    {"id": 2.5, "status": "open"},
    {"id": 1, "status": "pending"},
    {"id": 1, "status": "open", "kind": "pr"},
    {"id": 1, "status": "open", "score": 0},
    {"id": 1, "status": "open", "score": 10},
    {"id": 1, "status": "open", "code": "A"},
    {"id": 1, "status": "open", "code": "ABCDEF"},
    {"id": 1, "status": "open", "code": "ab1"},
    {"id": 1, "status": "open", "code": "AB1\r"},
    {"id": 1, "status": "open", "code": "AB\n"},
    {"id": 1, "status": "open", "tags": []},
    {"id": 1, "status": "open", "tags": ["a", "b", "c", "d"]},
    {"id": 1, "status": "open", "tags": ["long"]},
    {"id": 1, "status": "open", "tags": [1]},
    {"id": 1, "status": "open", "owner": {"id": 3}},
    {"id": 1, "status": "open", "owner": {"login": 3}},
    {"id": 1, "status": "open", "owner": {"login": "x", "id": 1.5}},
    {"id": 1, "status": "open", "flags": [False]},
    {"id": 1, "status": "open", "flags": [2]},
    {"id": 1, "status": "open", "matrix": [[1, "2"]]},
    {"id": 1, "status": "open", "matrix": [1]},
    {"id": 9007199254740993, "status": "open"},
    {"id": 1, "status": "open", "score": True},
    {"id": 1, "status": "open", "tags": ["ab", None]},
    {"status": "open"},
]
# Valid payloads the fast path must accept, so that it is worth having: the first four.
RICH_ACCEPTED = 4


def test_compiled_schema_accepts_only_what_jsonschema_accepts(spark) -> None:
    texts = [json.dumps(p) for p in RICH_PAYLOADS]
    df = spark.createDataFrame([(t,) for t in texts], "payload string")
    variant = F.parse_json("payload")
    accepted = fast_accept(RICH_SCHEMA, F.to_json(variant), variant)
    assert accepted is not None
    got = [row.ok for row in df.select(accepted.alias("ok")).collect()]
    validator = validator_for(RICH_SCHEMA)(RICH_SCHEMA)
    valid = [validator.is_valid(p) for p in RICH_PAYLOADS]
    wrong = [t for t, g, v in zip(texts, got, valid, strict=True) if g and not v]
    assert wrong == [], "accepted although jsonschema rejects them"
    assert valid[:RICH_ACCEPTED] == [True] * RICH_ACCEPTED
    assert got[:RICH_ACCEPTED] == [True] * RICH_ACCEPTED, list(zip(texts, got, strict=True))
    # Every payload after those breaks one rule, but for the one with the trailing newline.
    assert [t for t, v in zip(texts[RICH_ACCEPTED:], valid[RICH_ACCEPTED:], strict=True) if v] == [
        json.dumps({"id": 1, "status": "open", "code": "AB\n"})
    ]


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "additionalProperties": False},
        {"type": "array"},
        {"type": "object", "properties": {"odd-name": {"type": "string"}}},
        {"type": "object", "properties": {"a": {"$ref": "#/definitions/x"}}},
        {"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}]}}},
        {"type": "object", "properties": {"a": {"enum": [1.5]}}},
        {"type": "object", "properties": {"a": {"pattern": "^\\p{L}+$"}}},
        {"type": "object", "properties": {"a": {"type": "array", "items": [{"type": "string"}]}}},
        {"type": "object", "properties": {"a": {"type": "array", "items": {"not": {}}}}},
    ],
)
def test_schemas_beyond_the_fast_path_get_none(schema) -> None:
    assert fast_accept(schema, F.lit("{}"), F.parse_json(F.lit("{}"))) is None
