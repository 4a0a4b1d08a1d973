"""The bronze checkpoint's suite, built from the spec: defaults, schema checks, inline and GX expectations."""

from __future__ import annotations

from typing import Any

import pytest

from restlake.contracts.spec import IngestionSource, parse_source
from restlake.errors import SpecError
from restlake.quality.suite import KEY_ROWS, BronzeSuite, SuiteError, build_suite, referenced_columns

DEFAULTS = [
    ("not_null:source", "expect_column_values_to_not_be_null", {"column": "source"}),
    ("not_null:external_id", "expect_column_values_to_not_be_null", {"column": "external_id"}),
    ("not_null:idempotency_key", "expect_column_values_to_not_be_null", {"column": "idempotency_key"}),
    (
        "unique:source,external_id,version",
        "expect_column_values_to_be_between",
        {"column": KEY_ROWS, "min_value": 1, "max_value": 1},
    ),
]


def source(**spec: Any) -> IngestionSource:
    return parse_source(
        {
            "apiVersion": "restlake.io/v1alpha1",
            "kind": "IngestionSource",
            "metadata": {"name": "orders"},
            "spec": {"request": {"url": "https://api.example.test/orders"}, **spec},
        },
        "test.yaml",
    )


def described(suite: BronzeSuite) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (c.name, c.expectation.expectation_type, c.expectation.configuration.kwargs) for c in suite.checks
    ]


def test_a_source_without_schema_or_quality_gets_the_default_suite() -> None:
    suite = build_suite(source())
    assert described(suite) == DEFAULTS
    assert suite.projections == []
    assert suite.name == "restlake.bronze.orders"
    assert [c.origin for c in suite.checks] == ["default"] * 4
    gx_suite = suite.gx_suite()
    assert gx_suite.name == "restlake.bronze.orders"
    assert len(gx_suite.expectations) == 4
    assert gx_suite.expectations[0].meta == {"name": "not_null:source", "origin": "default"}


def test_the_schema_adds_required_and_type_checks_nested_ones_where_the_parent_is_an_object() -> None:
    schema = {
        "type": "object",
        "required": ["id", "customer"],
        "properties": {
            "id": {"type": "integer"},
            "score": {"type": ["number", "null"]},
            "tags": {"type": "array"},
            "note": {"description": "untyped: no type check"},
            "Customer Name": {"type": "string"},
            "customer": {
                "type": "object",
                "required": ["email"],
                "properties": {"email": {"type": "string"}},
            },
        },
    }
    suite = build_suite(source(schema={"jsonSchema": schema}))
    assert described(suite)[4:] == [
        ("required:id", "expect_column_values_to_not_be_null", {"column": "f_id"}),
        ("required:customer", "expect_column_values_to_not_be_null", {"column": "f_customer"}),
        (
            "type:Customer Name",
            "expect_column_values_to_be_in_set",
            {"column": "t_customer_name", "value_set": ["string"]},
        ),
        (
            "type:customer",
            "expect_column_values_to_be_in_set",
            {"column": "t_customer", "value_set": ["object"]},
        ),
        (
            "required:customer.email",
            "expect_column_values_to_not_be_null",
            {
                "column": "f_customer__email",
                "row_condition": {
                    "column": {"name": "t_customer"},
                    "operator": "==",
                    "parameter": "object",
                    "type": "comparison",
                },
            },
        ),
        (
            "type:customer.email",
            "expect_column_values_to_be_in_set",
            {"column": "t_customer__email", "value_set": ["string"]},
        ),
        ("type:id", "expect_column_values_to_be_in_set", {"column": "t_id", "value_set": ["integer"]}),
        (
            "type:score",
            "expect_column_values_to_be_in_set",
            {"column": "t_score", "value_set": ["integer", "number"]},
        ),
        ("type:tags", "expect_column_values_to_be_in_set", {"column": "t_tags", "value_set": ["array"]}),
    ]
    assert {(p.column, p.field, p.kind) for p in suite.projections} == {
        ("f_id", "id", "text"),
        ("f_customer", "customer", "text"),
        ("t_customer_name", "Customer Name", "json_type"),
        ("t_customer", "customer", "json_type"),
        ("f_customer__email", "customer.email", "text"),
        ("t_customer__email", "customer.email", "json_type"),
        ("t_id", "id", "json_type"),
        ("t_score", "score", "json_type"),
        ("t_tags", "tags", "json_type"),
    }
    assert {c.column for c in suite.checks[4:]} == {
        "payload.id",
        "payload.customer",
        "payload.Customer Name",
        "payload.customer.email",
        "payload.score",
        "payload.tags",
    }


def test_projection_names_never_collide() -> None:
    suite = BronzeSuite("s")
    a = suite.projection(("a.b",), "text")
    b = suite.projection(("a", "b"), "text")
    c = suite.projection(("A_B",), "text")
    assert (a.column, b.column, c.column) == ("f_a_b", "f_a__b", "f_a_b_2")
    assert suite.projection(("a.b",), "text") is a


def test_inline_expectations_map_to_gx_and_unique_is_not_mapped() -> None:
    quality = {
        "expectations": [
            {"type": "notNull", "field": "score", "name": "has_score"},
            {"type": "range", "field": "amount.value", "min": 0},
            {"type": "unique", "fields": ["name"]},
            {"type": "inSet", "field": "kind", "values": ["a", 2]},
            {"type": "regex", "field": "name", "pattern": "^item "},
        ]
    }
    suite = build_suite(source(quality=quality))
    assert described(suite)[4:] == [
        ("has_score", "expect_column_values_to_not_be_null", {"column": "f_score"}),
        (
            "range:amount.value",
            "expect_column_values_to_be_between",
            {"column": "n_amount__value", "min_value": 0.0},
        ),
        ("inSet:kind", "expect_column_values_to_be_in_set", {"column": "f_kind", "value_set": ["a", "2"]}),
        ("regex:name", "expect_column_values_to_match_regex", {"column": "f_name", "regex": "^item "}),
    ]
    assert [c.origin for c in suite.checks[4:]] == [
        "spec.quality.expectations[0]",
        "spec.quality.expectations[1]",
        "spec.quality.expectations[3]",
        "spec.quality.expectations[4]",
    ]
    assert suite.not_mapped == ["unique:name"]


def test_bronze_expectations_are_built_from_type_and_kwargs() -> None:
    quality = {
        "bronze": {
            "expectations": [
                {
                    "type": "expect_column_values_to_be_between",
                    "kwargs": {"column": "p_score", "min_value": 0},
                },
                {
                    "type": "expect_compound_columns_to_be_unique",
                    "kwargs": {"column_list": ["p_id", "version"]},
                    "name": "one row per id and version",
                },
                {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
            ]
        }
    }
    suite = build_suite(source(quality=quality))
    checks = suite.checks[4:]
    assert [(c.name, c.origin, c.column) for c in checks] == [
        ("expect_column_values_to_be_between", "spec.quality.bronze.expectations[0]", "p_score"),
        ("one row per id and version", "spec.quality.bronze.expectations[1]", None),
        ("expect_table_row_count_to_be_between", "spec.quality.bronze.expectations[2]", None),
    ]
    assert [referenced_columns(c.expectation) for c in checks] == [["p_score"], ["p_id", "version"], []]


@pytest.mark.parametrize(
    ("declared", "path", "message"),
    [
        (
            {"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "x"}},
            "spec.quality.bronze.expectations[1].type",
            "unknown Great Expectations expectation type 'expect_column_values_to_be_betwen'; "
            "did you mean expect_column_values_to_be_between?",
        ),
        (
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "x", "colour": "red"}},
            "spec.quality.bronze.expectations[1].kwargs.colour",
            "not an argument of this expectation",
        ),
        (
            {"type": "expect_column_values_to_not_be_null", "kwargs": {}},
            "spec.quality.bronze.expectations[1].kwargs.column",
            "field required",
        ),
        (
            {"type": "expect_column_values_to_be_between", "kwargs": {"column": "x"}},
            "spec.quality.bronze.expectations[1].kwargs",
            "min_value and max_value cannot both be None",
        ),
    ],
)
def test_a_bad_bronze_expectation_names_its_field(declared: dict[str, Any], path: str, message: str) -> None:
    good = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "p_id"}}
    with pytest.raises(SuiteError) as err:
        build_suite(source(quality={"bronze": {"expectations": [good, declared]}}))
    assert isinstance(err.value, SpecError)
    assert err.value.problems == [(path, message)]
    assert str(err.value) == f"invalid IngestionSource orders:\n  {path}: {message}"


def test_every_bad_bronze_expectation_is_reported_at_once() -> None:
    bad = [
        {"type": "expect_nothing_at_all", "kwargs": {}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": 3}},
    ]
    with pytest.raises(SuiteError) as err:
        build_suite(source(quality={"bronze": {"expectations": bad}}))
    assert [path for path, _ in err.value.problems] == [
        "spec.quality.bronze.expectations[0].type",
        "spec.quality.bronze.expectations[1].kwargs.column",
    ]
