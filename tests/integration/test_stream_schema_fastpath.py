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


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"id": {"type": "integer", "minimum": 0}}},
        {"type": "object", "additionalProperties": False},
        {"type": "array"},
        {"type": "object", "properties": {"odd-name": {"type": "string"}}},
    ],
)
def test_schemas_beyond_the_fast_path_get_none(schema) -> None:
    assert fast_accept(schema, F.lit("{}"), F.parse_json(F.lit("{}"))) is None
