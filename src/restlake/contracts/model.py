"""The base of every contract model, and how a model states a cross-field rule.

Keys are camelCase in YAML (the Kubernetes convention) and snake_case in Python; unknown keys are
refused, so a typo is an error naming its path. A cross-field rule is checked twice: by a model
validator raising ``field_error`` and, as the CEL twin given to ``model_rules``, by the API server.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonValue
from pydantic_core import PydanticCustomError


def field_error(field: str, message: str) -> PydanticCustomError:
    """An error for a cross-field rule, reported at ``<model path>.<field>`` (field in camelCase)."""
    return PydanticCustomError("restlake_field", "{message}", {"message": message, "field": field})


def model_rules(*rules: Mapping[str, JsonValue]) -> ConfigDict:
    """Model config carrying CEL rules (``x-kubernetes-validations``) that mirror the model validators."""
    validations: list[JsonValue] = [dict(rule) for rule in rules]
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": validations})


class SpecModel(BaseModel):
    """camelCase aliases, Python names accepted too, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)
