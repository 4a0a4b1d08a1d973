"""Scalar types of the contracts that keep their YAML spelling but also parse.

A ``Duration`` is still the string ``"5m"`` when serialised and also knows its milliseconds; a
``JsonPath`` is checked when read and compiles once. Each carries its JSON Schema (and where a bound
needs it, a CEL rule), so the CRD checks what the model checks.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Annotated, Any
from urllib.parse import urlsplit

import jsonpath_ng.ext
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from restlake.contracts import guards
from restlake.contracts.patterns import HTTP_URL, QUANTITY
from restlake.contracts.problems import short

# CEL's int64), so an absurd one is a field error rather than an OverflowError.
_DURATION_RE = re.compile(r"^(?:[0-9]{1,9}(?:ms|s|m|h|d))+$")
_DURATION_LOOSE = re.compile(r"^(?:[0-9]+(?:ms|s|m|h|d))+$")
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d)")
_DURATION_MAX_LENGTH = 32
_DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class Duration(str):
    """A duration such as ``500ms``, ``30s``, ``5m``, ``1h30m`` or ``1d``; still the string as written."""

    __slots__ = ()

    def __new__(cls, value: str) -> Duration:
        if not isinstance(value, str) or not _DURATION_LOOSE.match(value):
            raise ValueError(f"must be a duration such as 500ms, 30s, 5m, 1h or 1d, got {short(value)}")
        if not _DURATION_RE.match(value) or len(value) > _DURATION_MAX_LENGTH:
            raise ValueError(
                f"is too long a duration (at most 9 digits per number, {_DURATION_MAX_LENGTH} characters),"
                f" got {short(value)}"
            )
        return super().__new__(cls, value)

    @property
    def milliseconds(self) -> int:
        """The parsed value in whole milliseconds (exact, whatever the size)."""
        return sum(int(n) * _DURATION_MS[unit] for n, unit in _DURATION_PART.findall(self))

    @property
    def timedelta(self) -> dt.timedelta:
        """The parsed value."""
        return dt.timedelta(milliseconds=self.milliseconds)

    def total_seconds(self) -> float:
        return self.timedelta.total_seconds()

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls, core_schema.str_schema(), serialization=core_schema.to_string_ser_schema()
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "maxLength": _DURATION_MAX_LENGTH, "pattern": _DURATION_RE.pattern}


def bounded_duration(at_most: str, at_least: str | None = None, *, positive: bool = False) -> Any:
    """A ``Duration`` type with bounds, checked by the model and (as CEL) by the API server."""
    high = Duration(at_most)
    low = Duration(at_least) if at_least is not None else None

    def check(value: Duration) -> Duration:
        if positive and value.milliseconds <= 0:
            raise ValueError(f"must be greater than 0s, got {value!r}")
        if low is not None and value.milliseconds < low.milliseconds:
            raise ValueError(f"must be at least {low}, got {value!r}")
        if value.milliseconds > high.milliseconds:
            raise ValueError(f"must be at most {high}, got {value!r}")
        return value

    if positive:
        rules = guards.duration_rules((0, "0s"), (high.milliseconds, high), exclusive_minimum=True)
    else:
        minimum = (low.milliseconds, str(low)) if low is not None else None
        rules = guards.duration_rules(minimum, (high.milliseconds, high))
    return Annotated[
        Duration, AfterValidator(check), Field(json_schema_extra={"x-kubernetes-validations": rules})
    ]


@functools.lru_cache(maxsize=256)
def _compile_jsonpath(expression: str) -> Any:
    return jsonpath_ng.ext.parse(expression)


class JsonPath(str):
    """A JSONPath expression (jsonpath-ng's extended syntax, filters included), checked when parsed."""

    __slots__ = ()

    def __new__(cls, value: str) -> JsonPath:
        try:
            _compile_jsonpath(value)
        except Exception as exc:  # jsonpath-ng raises several unrelated types (lexer, parser, ply)
            raise ValueError(f"not a valid JSONPath ({exc}), got {value!r}") from None
        return super().__new__(cls, value)

    def compile(self) -> Any:
        """The parsed ``jsonpath_ng`` expression (cached); ``.find(document)`` evaluates it."""
        return _compile_jsonpath(self)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(
            cls, core_schema.str_schema(min_length=1), serialization=core_schema.to_string_ser_schema()
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "minLength": 1}


def _int_to_str(value: Any) -> Any:
    # YAML turns `cpu: 2` into an int; Kubernetes accepts it as a quantity, so do we.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Quantity = Annotated[
    str,
    BeforeValidator(_int_to_str),
    Field(pattern=QUANTITY),
    WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string"}], "pattern": QUANTITY}),
]


def _no_credentials(value: Any) -> Any:
    # Before the pattern check, whose message would repeat the URL and so the secret in it.
    problem = guards.url_credentials_problem(value) if isinstance(value, str) else None
    if problem is not None:
        raise ValueError(problem)
    return value


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL with a host, got {value!r}")
    return value


# Where a URL is configured: a scheme and host, no credential in user info or query string.
Url = Annotated[
    str,
    Field(max_length=guards.URL_MAX_LENGTH, pattern=HTTP_URL),
    BeforeValidator(_no_credentials),
    AfterValidator(_check_url),
]
# Query parameters and headers: bounded (CEL cost) and checked for credential-looking names.
NameMap = Annotated[
    dict[
        Annotated[str, Field(min_length=1, max_length=guards.NAME_MAX_LENGTH)],
        Annotated[str, Field(max_length=guards.VALUE_MAX_LENGTH)],
    ],
    Field(max_length=guards.MAP_MAX_ENTRIES),
]
