"""``spec.schema``: the JSON Schema a source's records must satisfy."""

from __future__ import annotations

from typing import Any, Literal

import jsonschema.exceptions
import jsonschema.validators
from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from restlake.contracts.model import SpecModel
from restlake.contracts.problems import subpath


class SchemaSpec(SpecModel):
    """The JSON Schema records must satisfy; a record that does not goes to quarantine."""

    json_schema: dict[str, Any] = Field(
        description="A JSON Schema (draft 2020-12 unless $schema says otherwise)."
    )
    compatibility: Literal["NONE", "BACKWARD", "FORWARD", "FULL"] = Field(
        "BACKWARD", description="Which changes to jsonSchema are allowed when the spec is updated."
    )

    @field_validator("json_schema")
    @classmethod
    def _valid_json_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        validator = jsonschema.validators.validator_for(
            value, default=jsonschema.validators.Draft202012Validator
        )
        try:
            validator.check_schema(value)
        except jsonschema.exceptions.SchemaError as exc:
            raise PydanticCustomError(
                "restlake_field",
                "{message}",
                {"message": f"not a valid JSON Schema: {exc.message}", "subpath": subpath(exc.path)},
            ) from None
        return value
