"""``spec.quality``: per-batch expectations on records, and the Great Expectations checkpoint over bronze."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, Strict, field_validator, model_validator

from restlake.contracts.model import SpecModel, field_error, model_rules
from restlake.contracts.patterns import CRON, GX_EXPECTATION
from restlake.contracts.problems import short

FieldName = Annotated[str, Field(min_length=1, description="A record field; dotted for nested fields.")]


def _set_member(value: Any) -> Any:
    # One clear message instead of one per union member ("not an int", "not a str").
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"must be a string or an integer, got {short(value)}")
    return value


SetMember = Annotated[Annotated[int, Strict()] | str, BeforeValidator(_set_member)]


class _Expectation(SpecModel):
    name: str | None = Field(None, min_length=1, description="Name in reports; defaults to type and field.")


class NotNullExpectation(_Expectation):
    """The field is present and not null."""

    type: Literal["notNull"] = Field(description="notNull: the field is present and not null.")
    field: FieldName = Field(description="Record field the expectation is about; dotted for nested fields.")


class UniqueExpectation(_Expectation):
    """No two records of a batch share the combination of fields (versions of one record never do)."""

    type: Literal["unique"] = Field(
        description="unique: no two records of a batch share the fields; versions of one record "
        "(the same id) are one record."
    )
    fields: list[FieldName] = Field(
        min_length=1, max_length=16, description="Record fields whose combination is unique."
    )


class InSetExpectation(_Expectation):
    """The field's value is one of a list."""

    type: Literal["inSet"] = Field(description="inSet: the field's value is one of values.")
    field: FieldName = Field(description="Record field the expectation is about; dotted for nested fields.")
    values: list[SetMember] = Field(
        min_length=1, max_length=1000, description="Allowed values (strings or integers)."
    )


class RangeExpectation(_Expectation):
    """The field's numeric value is within bounds (inclusive)."""

    model_config = model_rules(
        {"rule": "has(self.min) || has(self.max)", "message": "set min, max or both", "fieldPath": ".min"},
        {
            "rule": "!has(self.min) || !has(self.max) || self.min <= self.max",
            "message": "min must not exceed max",
            "fieldPath": ".max",
        },
    )

    type: Literal["range"] = Field(description="range: the field's number is between min and max.")
    field: FieldName = Field(description="Record field the expectation is about; dotted for nested fields.")
    min: float | None = Field(None, description="Inclusive lower bound.")
    max: float | None = Field(None, description="Inclusive upper bound.")

    @model_validator(mode="after")
    def _bounds(self) -> RangeExpectation:
        if self.min is None and self.max is None:
            raise field_error("min", "set min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise field_error("max", f"must not be less than min ({self.min:g}), got {self.max:g}")
        return self


class RegexExpectation(_Expectation):
    """The field's string value matches a regular expression."""

    type: Literal["regex"] = Field(description="regex: the field's string matches pattern.")
    field: FieldName = Field(description="Record field the expectation is about; dotted for nested fields.")
    pattern: str = Field(min_length=1, description="Regular expression (Python syntax) the value must match.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression ({exc}), got {value!r}") from None
        return value


Expectation = Annotated[
    NotNullExpectation | UniqueExpectation | InSetExpectation | RangeExpectation | RegexExpectation,
    Field(discriminator="type"),
]


class GxExpectation(SpecModel):
    """One Great Expectations expectation on the bronze table, in GX's own suite format."""

    type: str = Field(
        pattern=GX_EXPECTATION,
        description="GX expectation type in snake case, e.g. expect_column_values_to_be_between.",
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="The expectation's arguments; column names are bronze columns (p_<property> for "
        "typed properties, or source, external_id, version, fetched_at, ...).",
    )
    name: str | None = Field(None, min_length=1, description="Name in reports; defaults to the type.")


class BronzeQuality(SpecModel):
    """The Great Expectations checkpoint over the bronze Delta table (restlake quality run)."""

    schedule: str | None = Field(
        None,
        pattern=CRON,
        description="Cron schedule (5 fields or @hourly, @daily, ...) of the Kubernetes CronJob that "
        "runs the checkpoint; absent means no CronJob (run it with restlake quality run).",
    )
    since_last_run: bool = Field(
        True,
        description="Validate only the bronze rows written since the last successful run; false "
        "validates the source's whole partition of the table.",
    )
    expectations: list[GxExpectation] = Field(
        default_factory=list,
        max_length=100,
        description="Expectations added to the suite defaulted from the spec (non-null ids, unique "
        "(source, external_id, version), the schema's required fields and types).",
    )


class Quality(SpecModel):
    """Data-quality expectations checked on every batch, and the bronze checkpoint."""

    on_violation: Literal["warn", "drop", "fail"] = Field(
        "warn",
        description="warn: count and keep; drop: quarantine violating records; fail: stop the stream.",
    )
    expectations: list[Expectation] = Field(
        default_factory=list, max_length=100, description="Expectations, checked in order."
    )
    bronze: BronzeQuality = Field(
        default_factory=BronzeQuality,
        description="The Great Expectations checkpoint over the bronze table.",
    )


def expectation_name(expectation: Expectation) -> str:
    """What reports, metrics and quarantine reasons call an expectation: its ``name``, else
    ``<type>:<field>`` (``unique:a,b`` for several fields)."""
    if expectation.name:
        return expectation.name
    if isinstance(expectation, UniqueExpectation):
        return f"unique:{','.join(expectation.fields)}"
    return f"{expectation.type}:{expectation.field}"
