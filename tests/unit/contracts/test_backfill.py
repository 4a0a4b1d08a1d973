"""The Backfill model: one origin, its rules, field-path errors, and the CLI options it becomes."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from restlake.contracts import crd
from restlake.contracts.backfill import InvalidBackfill, parse_backfill


def document(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "restlake.io/v1alpha1",
        "kind": "Backfill",
        "metadata": {"name": "replay", "namespace": "team-a", "uid": "u-1", "generation": 1},
        "spec": {"source": "github-issues", **spec},
    }


@pytest.mark.parametrize(
    ("spec", "args"),
    [
        (
            {"kafka": {"fromTime": "2030-01-01T00:00:00Z", "toTime": "2030-01-02T00:00:00Z"}},
            ["--from-time", "2030-01-01T00:00:00+00:00", "--to-time", "2030-01-02T00:00:00+00:00"],
        ),
        (
            {"kafka": {"fromOffsets": {"1": 95, "0": 120, "10": 7}, "toOffsets": {"0": 500}}},
            ["--from-offsets", "0:120,1:95,10:7", "--to-offsets", "0:500"],
        ),
        ({"bronze": {"fromVersion": 3, "toVersion": 9}}, ["--from-version", "3", "--to-version", "9"]),
        ({"bronze": {"fromVersion": 0}}, ["--from-version", "0"]),
        ({"bronze": {"asOf": 12}}, ["--as-of", "12"]),
        ({"bronze": {"asOf": "2030-01-01T10:00:00+02:00"}}, ["--as-of", "2030-01-01T10:00:00+02:00"]),
        ({"bronze": {"asOf": 4}, "chunkRows": 500}, ["--as-of", "4", "--chunk-rows", "500"]),
    ],
)
def test_origin_becomes_cli_options(spec: dict[str, Any], args: list[str]) -> None:
    assert parse_backfill(document(**spec), "t").spec.cli_args() == args


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({}, ("spec.kafka", "an origin is required: set kafka or bronze")),
        (
            {"kafka": {"fromTime": "2030-01-01T00:00:00Z"}, "bronze": {"fromVersion": 1}},
            ("spec.bronze", "cannot be combined with kafka; set exactly one origin"),
        ),
        ({"kafka": {}}, ("spec.kafka.fromTime", "required: set exactly one of fromTime or fromOffsets")),
        (
            {"kafka": {"fromTime": "2030-01-01T00:00:00Z", "fromOffsets": {"0": 1}}},
            ("spec.kafka.fromOffsets", "cannot be combined with fromTime; set exactly one"),
        ),
        (
            {"kafka": {"fromOffsets": {"0": 1}, "toTime": "2030-01-01T00:00:00Z", "toOffsets": {"0": 9}}},
            ("spec.kafka.toOffsets", "cannot be combined with toTime; set at most one"),
        ),
        (
            {"kafka": {"fromTime": "2030-01-01T00:00:00"}},
            ("spec.kafka.fromTime", "needs its offset (Z or +hh:mm), got '2030-01-01T00:00:00'"),
        ),
        (
            {"kafka": {"fromOffsets": {"zero": 1}}},
            ("spec.kafka.fromOffsets.zero", "key must match pattern '^[0-9]+$'"),
        ),
        ({"bronze": {}}, ("spec.bronze.fromVersion", "required: set exactly one of fromVersion or asOf")),
        ({"bronze": {"asOf": 3, "toVersion": 4}}, ("spec.bronze.toVersion", "only allowed with fromVersion")),
        (
            {"bronze": {"fromVersion": 5, "toVersion": 4}},
            ("spec.bronze.toVersion", "must not be less than fromVersion (5), got 4"),
        ),
        (
            {"bronze": {"asOf": "last week"}},
            (
                "spec.bronze.asOf",
                "must be a table version or an RFC 3339 time such as 2030-01-01T00:00:00Z, got 'last week'",
            ),
        ),
        ({"bronze": {"asOf": -1}}, ("spec.bronze.asOf", "a version must be 0 or more, got -1")),
        ({"bronze": {"fromVersion": 1}, "chunkrows": 5}, ("spec.chunkrows", "unknown field")),
    ],
)
def test_invalid_backfills_name_the_field(spec: dict[str, Any], problem: tuple[str, str]) -> None:
    with pytest.raises(InvalidBackfill) as caught:
        parse_backfill(document(**spec), "team-a/replay")
    assert caught.value.problems == [problem]
    assert str(caught.value).startswith("invalid Backfill team-a/replay:\n")


def test_the_crd_schema_accepts_and_rejects_like_the_model() -> None:
    schema = crd.build_crd(crd.BACKFILL)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    validator = jsonschema.Draft4Validator(schema)
    validator.validate(document(kafka={"fromOffsets": {"0": 1}}))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(document(kafka={"fromOffsets": {"0": -1}}))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(document(bronze={"fromVersion": -2}))
