"""The IngestionSource contract: one pydantic model read by `restlake run -f`, the operator and the CRD.

YAML keys are camelCase (the Kubernetes convention), Python attributes snake_case. Every model forbids
unknown keys, so a typo is an error naming its path. The CRD in ``crds/`` is generated from these models
(``restlake.contracts.crd``), so descriptions here are the user documentation and cross-field rules come
with a CEL twin in ``x-kubernetes-validations`` that the API server enforces.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import ipaddress
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import jsonpath_ng.ext
import jsonschema.exceptions
import jsonschema.validators
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    SecretStr,
    Strict,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel, to_snake
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema
from yaml.reader import ReaderError

from restlake.contracts import guards, secrets, strict_yaml
from restlake.errors import SpecError
from restlake.settings import LakeSettings

API_GROUP = "restlake.io"
API_VERSION = "restlake.io/v1alpha1"
KIND = "IngestionSource"
# Set by the operator on the source document it renders: the name every data-plane artefact (topic,
# lake paths, checkpoint, fetch state, the Postgres `source` value, metric labels) is keyed by.
IDENTITY_ANNOTATION = "restlake.io/identity"

# It names a Kafka topic, Kubernetes objects and label values, hence a DNS-1123 label (≤ 63).
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
PG_TABLE = r"^[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}$"
KAFKA_TOPIC = r"^[a-zA-Z0-9._-]+$"
COLUMN = r"^[a-z_][a-z0-9_]*$"
HTTP_URL = r"^https?://[^\s/?#]+[^\s]*$"
CIDR = r"^[0-9a-fA-F:.]+/[0-9]{1,3}$"
# Kubernetes resource.Quantity, as in the built-in OpenAPI schemas.
QUANTITY = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
_CRON_FIELD = r"[0-9A-Za-z*?/,\-]+"
CRON = rf"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|{_CRON_FIELD}( +{_CRON_FIELD}){{4}})$"
GX_EXPECTATION = r"^expect_[a-z0-9_]+$"
# metav1.Condition's reason: CamelCase, one word.
CONDITION_REASON = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

# Human wording for patterns, so an error does not make users read a regular expression.
_PATTERN_HINTS = {
    DNS1123_LABEL: "must be a DNS-1123 label (lowercase letters, digits and '-', starting and ending "
    "with a letter or digit)",
    DNS1123_SUBDOMAIN: "must be a Kubernetes object name (lowercase letters, digits, '-' and '.')",
    SECRET_KEY: "must be a Secret key (letters, digits, '-', '_' and '.')",
    PG_TABLE: "must be a lowercase schema.table identifier such as raw.api_events",
    KAFKA_TOPIC: "must be a Kafka topic name (letters, digits, '.', '_' and '-')",
    COLUMN: "must be a lowercase column name (letters, digits and '_')",
    HTTP_URL: "must be an http:// or https:// URL",
    CIDR: "must be an IP range in CIDR notation such as 203.0.113.0/24",
    QUANTITY: "must be a Kubernetes quantity such as 500m, 2, 512Mi or 1Gi",
    CONDITION_REASON: "must be one CamelCase word",
    CRON: "must be a cron schedule of 5 fields (such as '*/15 * * * *') or @hourly, @daily, ...",
    GX_EXPECTATION: "must be a Great Expectations expectation type in snake case, such as "
    "expect_column_values_to_not_be_null",
    guards.LAKE_PATH: "must be a path relative to the lake root: segments of letters, digits, '.', '_', "
    "'=' and '-' separated by '/', each starting with a letter or digit",
}


# ---------------------------------------------------------------------------------------------------
# Scalar types that keep their YAML spelling but also parse
# ---------------------------------------------------------------------------------------------------

# Nine digits per number and 32 characters keep every duration far inside timedelta's range (and
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
            raise ValueError(f"must be a duration such as 500ms, 30s, 5m, 1h or 1d, got {_short(value)}")
        if not _DURATION_RE.match(value) or len(value) > _DURATION_MAX_LENGTH:
            raise ValueError(
                f"is too long a duration (at most 9 digits per number, {_DURATION_MAX_LENGTH} characters),"
                f" got {_short(value)}"
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


# The dead-letter topic of a source is its topic plus this suffix (fetcher writes it, operator creates it).
DEAD_LETTER_SUFFIX = ".dlq"


def field_error(field: str, message: str) -> PydanticCustomError:
    """An error for a cross-field rule, reported at ``<model path>.<field>`` (field in camelCase)."""
    return PydanticCustomError("restlake_field", "{message}", {"message": message, "field": field})


def _rules(*rules: dict[str, str]) -> ConfigDict:
    """Model config carrying CEL rules (``x-kubernetes-validations``) that mirror the model validators."""
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": list(rules)})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)


# ---------------------------------------------------------------------------------------------------
# spec.request
# ---------------------------------------------------------------------------------------------------


class SecretRef(_Model):
    """A key of a Kubernetes Secret in the source's namespace."""

    name: str = Field(max_length=253, pattern=DNS1123_SUBDOMAIN, description="Name of the Secret.")
    key: str = Field(max_length=253, pattern=SECRET_KEY, description="Key within the Secret.")

    def env_var(self) -> str:
        """The environment variable that provides this secret locally: ``RESTLAKE_SECRET_<NAME>_<KEY>``."""
        return secrets.secret_env_var(self.name, self.key)

    def resolve(
        self, *, directory: Path | None = None, environ: Mapping[str, str] | None = None
    ) -> SecretStr:
        """The value: env var ``RESTLAKE_SECRET_<NAME>_<KEY>``, else file ``<secrets dir>/<name>/<key>``."""
        return secrets.resolve_secret(self.name, self.key, directory=directory, environ=environ)


class BearerAuth(_Model):
    """Send ``Authorization: Bearer <token>``."""

    type: Literal["bearer"] = Field(description="bearer: send `Authorization: Bearer <token>`.")
    secret_ref: SecretRef = Field(
        description="Secret key holding the token (bearer) or the API key (apiKey)."
    )


class BasicAuth(_Model):
    """HTTP basic authentication."""

    model_config = _rules(
        {
            "rule": "has(self.username) != has(self.usernameSecretRef)",
            "message": "set exactly one of username or usernameSecretRef",
            "fieldPath": ".username",
        }
    )

    type: Literal["basic"] = Field(description="basic: HTTP basic authentication.")
    username: str | None = Field(
        None, min_length=1, description="User name, in clear (or usernameSecretRef)."
    )
    username_secret_ref: SecretRef | None = Field(None, description="Secret key holding the user name.")
    password_secret_ref: SecretRef = Field(description="Secret key holding the password.")

    @model_validator(mode="after")
    def _one_username(self) -> BasicAuth:
        if self.username is None and self.username_secret_ref is None:
            raise field_error("username", "required when auth.type is basic (or set usernameSecretRef)")
        if self.username is not None and self.username_secret_ref is not None:
            raise field_error("usernameSecretRef", "cannot be combined with username; set exactly one")
        return self


class ApiKeyAuth(_Model):
    """Send an API key in a header or a query parameter."""

    type: Literal["apiKey"] = Field(description="apiKey: send an API key in a header or query parameter.")
    in_: Literal["header", "query", "cookie"] = Field(
        "header",
        alias="in",
        description="Where the key goes: a request header, a query parameter or a cookie.",
    )
    name: str = Field(min_length=1, description="Header, query parameter or cookie name, e.g. X-API-Key.")
    secret_ref: SecretRef = Field(
        description="Secret key holding the token (bearer) or the API key (apiKey)."
    )


class OAuth2ClientCredentialsAuth(_Model):
    """OAuth 2.0 client-credentials grant; the token is fetched, cached and refreshed before expiry."""

    model_config = _rules(*guards.url_rules("tokenUrl"))

    type: Literal["oauth2ClientCredentials"] = Field(
        description="oauth2ClientCredentials: OAuth 2.0 client-credentials grant."
    )
    token_url: Url = Field(
        description="Token endpoint of the authorization server; no credentials in it (the client "
        "secret comes from clientSecretRef)."
    )
    client_id: str = Field(min_length=1, description="OAuth client id.")
    client_secret_ref: SecretRef = Field(description="Secret key holding the OAuth client secret.")
    scopes: list[str] = Field(
        default_factory=list, max_length=64, description="Scopes to request; none means the server's default."
    )


Auth = Annotated[
    BearerAuth | BasicAuth | ApiKeyAuth | OAuth2ClientCredentialsAuth,
    Field(discriminator="type"),
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


def _credential_names(values: dict[str, str], field: str, what: str) -> None:
    for name in values:
        if guards.is_secret_name(name):
            raise field_error(
                f"{field}.{name}", f"{what} {name!r} looks like a credential; {guards.CREDENTIALS_ADVICE}"
            )


class Request(_Model):
    """The HTTP request that returns the first page."""

    model_config = _rules(
        {
            "rule": "!has(self.body) || (has(self.method) && self.method == 'POST')",
            "message": "body is only allowed when method is POST",
            "fieldPath": ".body",
        },
        *guards.url_rules("url"),
    )

    url: Url = Field(
        description="URL of the first page (http or https, at most 2048 characters); no user:password@ "
        "and no credential-looking query parameter (api_key, token, signature, ...): use auth."
    )
    method: Literal["GET", "POST"] = Field(
        "GET",
        description="HTTP method. Conditional requests (If-None-Match, If-Modified-Since) are sent "
        "with GET only: a POST is answered afresh every poll.",
    )
    params: NameMap = Field(
        default_factory=dict,
        description="Query parameters added to the URL (at most 64); values are strings (quote "
        "numbers); a credential-looking name (api_key, token, ...) is refused: use auth.",
        json_schema_extra={"x-kubernetes-validations": [guards.name_map_rule("query parameter")]},
    )
    headers: NameMap = Field(
        default_factory=dict,
        description="Request headers (at most 64); credential headers (Authorization, Cookie, "
        "X-API-Key, ...) are refused: put credentials in auth.",
        json_schema_extra={"x-kubernetes-validations": [guards.name_map_rule("header")]},
    )
    body: dict[str, Any] | None = Field(
        None,
        description="JSON object sent with POST; pagination with in: body sets its parameters as "
        "top-level keys of it.",
    )
    timeout: bounded_duration("10m", positive=True) = Field(  # type: ignore[valid-type]
        Duration("30s"), description="Timeout of one HTTP request, e.g. 30s; more than 0s, at most 10m."
    )
    auth: Auth | None = Field(None, description="How to authenticate; credentials come from Secrets.")
    redirects: Literal["sameOrigin", "allow"] = Field(
        "sameOrigin",
        description="Redirects to another origin (scheme, host, port) than url's: sameOrigin refuses them "
        "(a bad page); allow follows them without credentials. Credentials only ever go to url's origin.",
    )

    @model_validator(mode="after")
    def _check_body_and_names(self) -> Request:
        if self.body is not None and self.method != "POST":
            raise field_error("body", f"only allowed when method is POST, got method {self.method!r}")
        _credential_names(self.params, "params", "query parameter")
        _credential_names(self.headers, "headers", "header")
        return self


# ---------------------------------------------------------------------------------------------------
# spec.records, spec.pagination, spec.incremental
# ---------------------------------------------------------------------------------------------------


class Records(_Model):
    """Where the records are in a response body and how to identify them."""

    model_config = _rules(
        {
            "rule": "!has(self.format) || self.format == 'json' || !has(self.path) || self.path == '$'",
            "message": "path must be $ when format is jsonl or csv (every line is a record)",
            "fieldPath": ".path",
        }
    )

    format: Literal["json", "jsonl", "csv"] = Field(
        "json",
        description="Body format: json (one JSON document), jsonl (one JSON value per line) or csv "
        "(a header row, then one record per row, every value a string).",
    )
    path: JsonPath = Field(
        JsonPath("$"), description="JSONPath to the list of records in the body; `$` is the body."
    )
    id_path: JsonPath | None = Field(
        None, description="JSONPath to a record's external id; absent means the sha256 of the record."
    )
    version_path: JsonPath | None = Field(
        None,
        description="JSONPath to a record's version (e.g. `$.updated_at`); the newer one wins in Postgres.",
    )
    on_missing_id: Literal["hash", "quarantine", "fail"] = Field(
        "quarantine",
        description=(
            "What to do with a record whose idPath is missing or null: `quarantine` publishes it with an "
            "empty external id, which the stream job quarantines as `missing_field:external_id` with its "
            "Kafka coordinates; `hash` uses the content hash as the id (each version becomes a new row); "
            "`fail` makes the page a bad page (retried, then dead-lettered)."
        ),
    )

    @model_validator(mode="after")
    def _path_of_line_formats(self) -> Records:
        if self.format != "json" and self.path != "$":
            raise field_error(
                "path", f"must be $ when format is {self.format} (every line is a record), got {self.path!r}"
            )
        return self


# Generous on purpose: a real chain this long is rare, an endpoint that ignores its page parameter is not.
DEFAULT_MAX_PAGES = 10_000


class _Paged(_Model):
    max_pages: int = Field(
        DEFAULT_MAX_PAGES,
        ge=1,
        description=(
            "Pages per poll before the pass stops with an error (a safety bound against endpoints that "
            "never stop paging); raise it for longer chains."
        ),
    )
    total_path: JsonPath | None = Field(
        None, description="JSONPath to the total record count in the body, to stop without an extra request."
    )


_HAS_MORE = "JSONPath to a boolean in the body; false ends pagination (e.g. `$.has_more`)."
_IN = (
    "Where the pagination parameters go: query (the URL) or body (top-level keys of the JSON body; "
    "needs request.method POST)."
)


class LinkHeaderPagination(_Paged):
    """Follow the URL of the RFC 8288 ``Link`` header with the given rel."""

    type: Literal["linkHeader"] = Field(description="linkHeader: follow the `Link` header's rel URL.")
    rel: str = Field("next", min_length=1, description="Link relation of the next page.")


class NextUrlPagination(_Model):
    """Follow the next page's URL found in the body (DRF's `next`, HAL's `_links.next.href`)."""

    type: Literal["nextUrl"] = Field(description="nextUrl: follow the URL the body names for the next page.")
    next_url_path: JsonPath = Field(
        description="JSONPath to the next page's URL in the body, absolute or relative to the URL "
        "requested; null or absent ends pagination."
    )
    has_more_path: JsonPath | None = Field(None, description=_HAS_MORE)
    max_pages: int = Field(
        DEFAULT_MAX_PAGES,
        ge=1,
        description=(
            "Pages per poll before the pass stops with an error (a safety bound against endpoints that "
            "never stop paging); raise it for longer chains."
        ),
    )


class CursorPagination(_Paged):
    """Send the cursor the previous page returned (in its body, a header or its last record)."""

    model_config = _rules(
        {
            "rule": "has(self.cursorPath) || has(self.cursorHeader) || has(self.cursorFromLastRecord)",
            "message": "cursorPath, cursorHeader or cursorFromLastRecord is required when type is cursor",
            "fieldPath": ".cursorPath",
        },
        {
            "rule": "(has(self.cursorPath) ? 1 : 0) + (has(self.cursorHeader) ? 1 : 0)"
            " + (has(self.cursorFromLastRecord) ? 1 : 0) <= 1",
            "message": "set exactly one of cursorPath, cursorHeader or cursorFromLastRecord",
            "fieldPath": ".cursorHeader",
        },
    )

    type: Literal["cursor"] = Field(description="cursor: send the cursor returned by the previous page.")
    cursor_path: JsonPath | None = Field(
        None, description="JSONPath to the next cursor in the body; null or absent ends pagination."
    )
    cursor_header: str | None = Field(
        None, min_length=1, description="Response header carrying the next cursor."
    )
    cursor_from_last_record: JsonPath | None = Field(
        None,
        description="JSONPath into the page's last record whose value is the next cursor (e.g. `$.id` "
        "for Stripe's starting_after); an empty page ends pagination.",
    )
    has_more_path: JsonPath | None = Field(None, description=_HAS_MORE)
    param: str = Field(
        "cursor",
        min_length=1,
        description="Query parameter that carries the cursor (cursor) or page (pageNumber).",
    )
    in_: Literal["query", "body"] = Field("query", alias="in", description=_IN)

    @model_validator(mode="after")
    def _one_cursor_source(self) -> CursorPagination:
        named = [
            alias
            for alias, value in (
                ("cursorPath", self.cursor_path),
                ("cursorHeader", self.cursor_header),
                ("cursorFromLastRecord", self.cursor_from_last_record),
            )
            if value is not None
        ]
        if not named:
            raise field_error(
                "cursorPath",
                "required when pagination.type is cursor (or cursorHeader, cursorFromLastRecord)",
            )
        if len(named) > 1:
            raise field_error(named[1], f"cannot be combined with {named[0]}; set exactly one")
        return self


class PageNumberPagination(_Paged):
    """Request page 1, 2, 3, ... until a page comes back short or empty."""

    model_config = _rules(
        {
            "rule": "!has(self.sizeParam) || has(self.size)",
            "message": "size is required when sizeParam is set",
            "fieldPath": ".size",
        }
    )

    type: Literal["pageNumber"] = Field(description="pageNumber: request page 1, 2, 3, ...")
    param: str = Field(
        "page",
        min_length=1,
        description="Query parameter that carries the cursor (cursor) or page (pageNumber).",
    )
    size_param: str | None = Field(
        None, min_length=1, description="Query parameter that carries the page size."
    )
    size: int | None = Field(
        None, ge=1, le=100_000, description="Page size, at most 100000; a shorter page is the last one."
    )
    start_at: int = Field(1, ge=0, description="Number of the first page.")
    has_more_path: JsonPath | None = Field(None, description=_HAS_MORE)
    in_: Literal["query", "body"] = Field("query", alias="in", description=_IN)

    @model_validator(mode="after")
    def _size_with_param(self) -> PageNumberPagination:
        if self.size_param is not None and self.size is None:
            raise field_error("size", "required when sizeParam is set")
        return self


class OffsetPagination(_Paged):
    """Request offset 0, limit, 2*limit, ... until a page comes back short or empty."""

    type: Literal["offset"] = Field(description="offset: request offset 0, limit, 2*limit, ...")
    offset_param: str = Field("offset", min_length=1, description="Query parameter that carries the offset.")
    limit_param: str = Field("limit", min_length=1, description="Query parameter that carries the limit.")
    limit: int = Field(
        ge=1, le=100_000, description="Records per page, at most 100000; a shorter page is the last one."
    )
    has_more_path: JsonPath | None = Field(None, description=_HAS_MORE)
    in_: Literal["query", "body"] = Field("query", alias="in", description=_IN)


class NoPagination(_Model):
    """One request per poll."""

    type: Literal["none"] = Field(description="none: one request per poll.")


Pagination = Annotated[
    LinkHeaderPagination
    | NextUrlPagination
    | CursorPagination
    | PageNumberPagination
    | OffsetPagination
    | NoPagination,
    Field(discriminator="type"),
]


# A window's first value: an ISO 8601 date or timestamp (with or without a zone) or a whole epoch
# number; the common subset of Python's re and RE2, so the CRD refuses the same strings.
WINDOW_START = (
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,9})?)?"
    r"(Z|z|[+-][0-9]{2}:?[0-9]{2})?)?|[0-9]{1,16})$"
)
_PATTERN_HINTS[WINDOW_START] = (
    "must be an ISO 8601 date or timestamp such as 2024-01-01T00:00:00Z, or a whole epoch number "
    "(seconds, or milliseconds from 12 digits on)"
)


class Incremental(_Model):
    """Ask only for records changed since the last poll, using a watermark taken from the records.

    With ``window``, ``start`` and ``endParam`` the first load walks time windows
    ``[start, start+window)``, ``[start+window, start+2*window)``, ... up to now, each paginated,
    and the watermark advances only when a window is complete; afterwards polling goes on from the
    watermark as without them.
    """

    model_config = _rules(
        {
            "rule": "has(self.window) == has(self.start) && has(self.window) == has(self.endParam)",
            "message": "window, start and endParam go together: set all three for a windowed first load",
            "fieldPath": ".window",
        },
        {
            "rule": "!has(self.start) || !has(self.initialValue)",
            "message": "initialValue cannot be combined with start (start is the first value of a "
            "windowed first load)",
            "fieldPath": ".initialValue",
        },
        {
            "rule": "!has(self.endParam) || self.endParam != self.param",
            "message": "endParam must differ from param",
            "fieldPath": ".endParam",
        },
    )

    # Bounded: the CEL rule comparing it with endParam is costed from the longest string allowed.
    param: str = Field(
        min_length=1,
        max_length=guards.NAME_MAX_LENGTH,
        description="Query parameter that carries the watermark, e.g. since.",
    )
    cursor_path: JsonPath = Field(description="JSONPath to the watermark in a record, e.g. `$.updated_at`.")
    lookback: bounded_duration("30d") = Field(  # type: ignore[valid-type]
        Duration("0s"),
        description="Subtracted from a timestamp watermark, to catch late writes upstream; at most 30d.",
    )
    initial_value: str | None = Field(
        None, description="Watermark of the very first poll; absent fetches all."
    )
    max_future_skew: Duration = Field(
        Duration("1h"),
        description=(
            "A timestamp cursor later than now plus this is not used for the watermark (the record is "
            "still delivered): one record dated 9999-12-31 would otherwise stop ingestion for good."
        ),
    )
    window: bounded_duration("3660d", "1s") | None = Field(  # type: ignore[valid-type]
        None,
        description="Length of each time window of the first load, e.g. 1d or 1h (at least 1s, at most "
        "3660d); for epoch-number cursors it is counted in the start's unit (seconds or milliseconds). "
        "Needs start and endParam.",
    )
    start: str | None = Field(
        None,
        max_length=40,
        pattern=WINDOW_START,
        description="First value of the windowed first load: an ISO 8601 timestamp (a value without a "
        "zone is UTC, and windows are sent without a zone too) or a whole epoch number (12 digits or "
        "more are milliseconds). Needs window and endParam; replaces initialValue.",
    )
    end_param: str | None = Field(
        None,
        min_length=1,
        max_length=guards.NAME_MAX_LENGTH,
        description="Query parameter that carries a window's (exclusive) end, e.g. until; sent only "
        "during the windowed first load.",
    )

    @model_validator(mode="after")
    def _windows_fit(self) -> Incremental:
        named = {"window": self.window, "start": self.start, "endParam": self.end_param}
        present = [k for k, v in named.items() if v is not None]
        if present and len(present) < 3:
            missing = [k for k in named if k not in present]
            raise field_error(
                missing[0],
                f"required with {', '.join(present)}: window, start and endParam go together for a "
                "windowed first load",
            )
        if self.start is not None:
            if self.initial_value is not None:
                raise field_error(
                    "initialValue",
                    "cannot be combined with start: start is the first value of the windowed first load",
                )
            if not self.start.isdigit():
                try:
                    dt.datetime.fromisoformat(
                        self.start[:-1] + "+00:00" if self.start[-1:] in "Zz" else self.start
                    )
                except ValueError as exc:
                    raise field_error("start", f"is not a valid ISO 8601 timestamp ({exc})") from None
        if self.end_param is not None and self.end_param == self.param:
            raise field_error("endParam", f"must differ from param, got {self.end_param!r} for both")
        return self


# ---------------------------------------------------------------------------------------------------
# spec.parent (a child source: one request.url per record of another source)
# ---------------------------------------------------------------------------------------------------

# `{name}` in request.url: a URL template variable filled from a parent record. The class is spelled
# with brackets, not backslashes, so the same expression serves Python and CEL (RE2).
URL_VARIABLE = r"[{][A-Za-z_][A-Za-z0-9_]*[}]"
BIND_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_URL_VARIABLE_RE = re.compile(URL_VARIABLE)
_PATTERN_HINTS[BIND_NAME] = (
    "must be a URL template variable name (letters, digits and '_', not first a digit)"
)
BIND_MAX_ENTRIES = 16


def url_variables(url: str) -> list[str]:
    """The template variables of a URL in order of appearance, each once: ``{repo}`` gives ``repo``."""
    names = [m[1:-1] for m in _URL_VARIABLE_RE.findall(url)]
    return list(dict.fromkeys(names))


class Parent(_Model):
    """Fetch this source once per record of another source (a substream, a dependent resource).

    request.url is a template: each ``{name}`` in it is filled, URL-escaped, with the value the
    matching ``bind`` JSONPath finds in a parent record. The parent's records are read from Postgres
    (its ``sinks.postgres`` must stay enabled); children are fetched for every parent record at
    first, later only for parent records that are new or changed, and for all of them again every
    ``refreshEvery``. Each child URL keeps its own validators and watermark; all of them share this
    source's rate limit. A child record's envelope names the parent record it came from.
    """

    source: str = Field(
        max_length=63,
        pattern=DNS1123_LABEL,
        description="Name of the parent IngestionSource (in the same namespace; in the same file or "
        "files for restlake run and restlake fetcher run).",
    )
    bind: dict[Annotated[str, Field(max_length=63, pattern=BIND_NAME)], JsonPath] = Field(
        min_length=1,
        max_length=BIND_MAX_ENTRIES,
        description="URL template variable -> JSONPath into a parent record, e.g. {repo: $.full_name} "
        "for request.url https://api.example.com/repos/{repo}/issues. Every {variable} of request.url "
        "must be bound, and every binding used. A parent record without a value is dead-lettered.",
    )
    refresh_every: bounded_duration("365d", "1m") | None = Field(  # type: ignore[valid-type]
        None,
        description="Fetch the children of every parent record again when their last fetch is older "
        "than this (at least 1m, at most 365d); absent: only new or changed parent records.",
    )


# ---------------------------------------------------------------------------------------------------
# spec.poll, spec.rateLimit, spec.schema, spec.quality
# ---------------------------------------------------------------------------------------------------


class Poll(_Model):
    """How often to poll."""

    interval: bounded_duration("30d", "1s") = Field(  # type: ignore[valid-type]
        Duration("60s"), description="Time between the starts of two polls, at least 1s, at most 30d."
    )
    jitter: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Random fraction of the interval added, so sources do not poll in lockstep.",
    )


class RateLimit(_Model):
    """Client-side rate limit (token bucket) on requests to the API."""

    requests_per_second: float = Field(
        5, gt=0, le=1000, description="Sustained request rate, at most 1000 requests per second."
    )
    burst: int = Field(1, ge=1, le=1000, description="Requests that may go out back to back, at most 1000.")
    respect_headers: bool = Field(
        True, description="Honour Retry-After and X-RateLimit-* headers by slowing down further."
    )


class SchemaSpec(_Model):
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
                {"message": f"not a valid JSON Schema: {exc.message}", "subpath": _subpath(exc.path)},
            ) from None
        return value


FieldName = Annotated[str, Field(min_length=1, description="A record field; dotted for nested fields.")]


def _set_member(value: Any) -> Any:
    # One clear message instead of one per union member ("not an int", "not a str").
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"must be a string or an integer, got {_short(value)}")
    return value


SetMember = Annotated[Annotated[int, Strict()] | str, BeforeValidator(_set_member)]


class _Expectation(_Model):
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

    model_config = _rules(
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


class GxExpectation(_Model):
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


class BronzeQuality(_Model):
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


class Quality(_Model):
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


# ---------------------------------------------------------------------------------------------------
# spec.sinks, spec.kafka, spec.resources
# ---------------------------------------------------------------------------------------------------


def _writable_table(value: str) -> str:
    problem = guards.postgres_table_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _inside_lake(value: Any) -> Any:
    # Before the pattern, so an absolute path or a URL gets its own message, not the charset's.
    problem = guards.lake_path_problem(value) if isinstance(value, str) else None
    if problem is not None:
        raise ValueError(f"{problem}, got {_short(value)}")
    return value


LakePath = Annotated[
    str,
    Field(
        min_length=1,
        max_length=guards.LAKE_PATH_MAX_LENGTH,
        pattern=guards.LAKE_PATH,
        json_schema_extra={"x-kubernetes-validations": guards.LAKE_PATH_RULES},
    ),
    BeforeValidator(_inside_lake),
]


class PostgresSink(_Model):
    """Upsert the latest version of every record into Postgres."""

    enabled: bool = Field(True, description="Write to Postgres.")
    table: Annotated[str, AfterValidator(_writable_table)] = Field(
        "raw.api_events",
        max_length=127,
        pattern=PG_TABLE,
        description="Target table, schema-qualified; not in pg_* or information_schema, and not one "
        "of restlake's own tables (" + ", ".join(guards.RESTLAKE_TABLES) + ").",
        json_schema_extra={"x-kubernetes-validations": guards.POSTGRES_TABLE_RULES},
    )


class BronzeSink(_Model):
    """Append every record version to a Delta table."""

    enabled: bool = Field(True, description="Write the bronze Delta table.")
    path: LakePath | None = Field(
        None,
        description="Table location relative to the lake root (no scheme, no leading /, no '..'); "
        "absent means <lake root>/bronze/<name>.",
    )
    partition_by: list[Annotated[str, Field(pattern=COLUMN)]] = Field(
        ["source", "ingest_date"], min_length=1, max_length=8, description="Partition columns."
    )


class QuarantineSink(_Model):
    """Where records that fail the schema (or quality, with onViolation drop) go, with the reason."""

    enabled: bool = Field(True, description="Write the quarantine Delta table.")
    path: LakePath | None = Field(
        None,
        description="Table location relative to the lake root (no scheme, no leading /, no '..'); "
        "absent means <lake root>/quarantine/<name>.",
    )


class Sinks(_Model):
    """Where records land."""

    model_config = _rules(
        {
            "rule": "!has(self.postgres) || !has(self.postgres.enabled) || self.postgres.enabled"
            " || !has(self.bronze) || !has(self.bronze.enabled) || self.bronze.enabled",
            "message": "at least one of postgres or bronze must be enabled",
        }
    )

    postgres: PostgresSink = Field(default_factory=PostgresSink, description="The Postgres upsert sink.")
    bronze: BronzeSink = Field(default_factory=BronzeSink, description="The bronze Delta sink.")
    quarantine: QuarantineSink = Field(
        default_factory=QuarantineSink, description="The quarantine Delta sink."
    )

    @model_validator(mode="after")
    def _something_enabled(self) -> Sinks:
        if not (self.postgres.enabled or self.bronze.enabled):
            raise field_error("bronze.enabled", "at least one of postgres or bronze must be enabled")
        return self


class Kafka(_Model):
    """Overrides for the source's Kafka topic."""

    topic: str | None = Field(
        None, max_length=249, pattern=KAFKA_TOPIC, description="Topic name; absent means <prefix><name>."
    )
    partitions: int | None = Field(
        None, ge=1, le=1000, description="Partitions when the topic is created, at most 1000."
    )


def _check_cidr(value: str) -> str:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(
            f"must be an IP range in CIDR notation such as 203.0.113.0/24, got {value!r}"
        ) from None
    return value


class Egress(_Model):
    """Where the fetcher may connect when the installation renders egress NetworkPolicies.

    A NetworkPolicy matches IP addresses, not host names, so the API's hosts are given as IP ranges.
    """

    cidrs: list[Annotated[str, Field(max_length=43, pattern=CIDR), AfterValidator(_check_cidr)]] = Field(
        default_factory=list,
        max_length=32,
        description="IP ranges (CIDR) of the API's hosts, and of the OAuth token endpoint's; the fetcher "
        "may reach them on the ports of request.url and auth.tokenUrl only. Empty allows those ports on "
        "any address outside the installation's excluded ranges (networkPolicy.exceptCidrs).",
    )


class ResourceQuantities(_Model):
    """CPU and memory quantities."""

    cpu: Quantity | None = Field(None, description="CPU, e.g. 500m or 2.")
    memory: Quantity | None = Field(None, description="Memory, e.g. 512Mi or 2Gi.")


class ContainerResources(_Model):
    """Requests and limits of one container."""

    requests: ResourceQuantities | None = Field(None, description="Resources the scheduler reserves.")
    limits: ResourceQuantities | None = Field(None, description="Resources the container may not exceed.")


SPARK_MEMORY = r"^[1-9][0-9]*[kmgtKMGT]?$"


class SparkExecutors(_Model):
    """What the source's stream job takes from the standalone Spark cluster.

    Standalone Spark gives an application every free core unless ``spark.cores.max`` caps it, so
    without a cap the first source would hold the whole cluster and the next would never get an
    executor. Absent fields use the operator's defaults (one core, 512m).
    """

    model_config = _rules(
        {
            "rule": "!has(self.cores) || !has(self.coresPerExecutor) || self.coresPerExecutor <= self.cores",
            "message": "coresPerExecutor must not exceed cores",
        }
    )

    cores: int | None = Field(
        None, ge=1, le=1024, description="Cores the job may hold across the cluster (spark.cores.max)."
    )
    cores_per_executor: int | None = Field(
        None, ge=1, le=64, description="Cores of each executor (spark.executor.cores); at most cores."
    )
    memory: str | None = Field(
        None,
        pattern=SPARK_MEMORY,
        description="Heap of each executor in Spark notation, e.g. 512m or 2g (spark.executor.memory).",
    )

    @model_validator(mode="after")
    def _fits(self) -> SparkExecutors:
        if self.cores and self.cores_per_executor and self.cores_per_executor > self.cores:
            raise field_error(
                "coresPerExecutor",
                f"{self.cores_per_executor} cores per executor exceed the job's {self.cores} cores",
            )
        return self


class Resources(_Model):
    """Kubernetes resources of the pods the operator creates, and the job's share of Spark."""

    fetcher: ContainerResources | None = Field(None, description="The fetcher container.")
    driver: ContainerResources | None = Field(None, description="The Spark driver container.")
    executors: SparkExecutors | None = Field(
        None, description="Cores and memory of the stream job's executors on the standalone cluster."
    )


# ---------------------------------------------------------------------------------------------------
# The resource
# ---------------------------------------------------------------------------------------------------


# Pagination fields that read a JSON document; a jsonl or csv body has none to read.
_BODY_PATHS = ("cursorPath", "nextUrlPath", "totalPath", "hasMorePath")


class IngestionSourceSpec(_Model):
    """What to fetch, how, and where it lands."""

    model_config = _rules(
        {
            "rule": "!has(self.quality) || !has(self.quality.bronze) || !has(self.sinks)"
            " || !has(self.sinks.bronze) || !has(self.sinks.bronze.enabled) || self.sinks.bronze.enabled"
            " || (!has(self.quality.bronze.schedule) && (!has(self.quality.bronze.expectations)"
            " || size(self.quality.bronze.expectations) == 0))",
            "message": "quality.bronze checks the bronze table, and sinks.bronze.enabled is false",
        },
        {
            # `in` is a CEL keyword; the API server exposes the property as __in__.
            "rule": "!has(self.pagination) || !has(self.pagination.__in__)"
            " || self.pagination.__in__ != 'body'"
            " || (has(self.request.method) && self.request.method == 'POST')",
            "message": "pagination.in body needs request.method POST",
            "fieldPath": ".pagination",
        },
        {
            "rule": "has(self.parent) || !self.request.url.matches('" + URL_VARIABLE + "')",
            "message": "request.url has a {variable}, which needs spec.parent",
            "fieldPath": ".request.url",
        },
        {
            "rule": "!has(self.parent) || self.request.url.findAll('" + URL_VARIABLE + "')"
            ".all(v, self.parent.bind.exists(k, '{' + k + '}' == v))",
            "message": "every {variable} of request.url must be bound in parent.bind",
            "fieldPath": ".parent.bind",
        },
        {
            "rule": "!has(self.parent) || self.parent.bind.all(k, self.request.url.contains('{' + k + '}'))",
            "message": "every parent.bind entry must be used as a {variable} in request.url",
            "fieldPath": ".parent.bind",
        },
        {
            "rule": "!has(self.parent) || !has(self.incremental) || !has(self.incremental.window)",
            "message": "a child source (spec.parent) cannot use incremental.window: each child URL "
            "starts from its own watermark",
            "fieldPath": ".incremental.window",
        },
        {
            "rule": "!self.request.url.matches('^[a-zA-Z]+://[^/?#]*[{}]')",
            "message": "a {variable} may only stand in the path or query of request.url, not in its host",
            "fieldPath": ".request.url",
        },
        {
            "rule": "!has(self.records) || !has(self.records.format) || self.records.format == 'json'"
            " || !has(self.pagination) || !("
            + " || ".join(f"has(self.pagination.{name})" for name in _BODY_PATHS)
            + ")",
            "message": "cursorPath, nextUrlPath, totalPath and hasMorePath need records.format json",
            "fieldPath": ".pagination",
        },
    )

    request: Request = Field(description="The HTTP request that returns the first page.")
    records: Records = Field(
        default_factory=Records, description="Where records are in a body, how to identify them."
    )
    pagination: Pagination = Field(
        default_factory=lambda: NoPagination(type="none"), description="How to get the next page."
    )
    incremental: Incremental | None = Field(None, description="Fetch only what changed since the last poll.")
    poll: Poll = Field(default_factory=Poll, description="How often to poll.")
    rate_limit: RateLimit = Field(default_factory=RateLimit, description="Client-side rate limit.")
    schema_: SchemaSpec | None = Field(
        None, alias="schema", description="JSON Schema the records must satisfy."
    )
    quality: Quality | None = Field(None, description="Data-quality expectations.")
    sinks: Sinks = Field(default_factory=Sinks, description="Where records land.")
    kafka: Kafka | None = Field(None, description="Overrides for the Kafka topic.")
    egress: Egress | None = Field(
        None,
        description="IP ranges the fetcher may reach when the installation renders egress NetworkPolicies.",
    )
    resources: Resources | None = Field(
        None, description="Kubernetes resources of the fetcher and Spark driver."
    )
    parent: Parent | None = Field(
        None,
        description="Makes this a child source: request.url is fetched once per record of the parent "
        "source, its {variables} filled from the record.",
    )
    maintenance: maintenance_model.Maintenance | None = Field(
        None,
        description="OPTIMIZE, VACUUM and batch-ledger pruning of this source (restlake maintenance run, "
        "or on a schedule with restlake flows serve).",
    )

    @model_validator(mode="after")
    def _bronze_checks_need_bronze(self) -> IngestionSourceSpec:
        checks = self.quality.bronze if self.quality is not None else None
        if checks is not None and (checks.schedule or checks.expectations) and not self.sinks.bronze.enabled:
            raise field_error(
                "quality.bronze",
                "checks the bronze table, and sinks.bronze.enabled is false: enable the bronze sink "
                "or remove quality.bronze",
            )
        return self

    @model_validator(mode="after")
    def _url_variables_bound(self) -> IngestionSourceSpec:
        url = self.request.url
        names = url_variables(url)
        if urlsplit(url).netloc.find("{") >= 0 or urlsplit(url).netloc.find("}") >= 0:
            # Credentials go to request.url's origin: a parent record must never choose the host.
            raise field_error(
                "request.url",
                "a {variable} may only stand in the path or query, not in the host: credentials go "
                "to request.url's origin, which a parent record must not choose",
            )
        if self.parent is None:
            if names:
                raise field_error(
                    "request.url",
                    f"has the template variable {{{names[0]}}}, which needs spec.parent (its bind "
                    "says where a parent record holds the value)",
                )
            return self
        if self.incremental is not None and self.incremental.window is not None:
            # A windowed first load walks one URL's history; a child has one URL per parent record,
            # each with its own watermark, and windows per child are not defined (yet).
            raise field_error(
                "incremental.window",
                "a child source (spec.parent) cannot use incremental.window: each child URL starts "
                "from its own watermark; remove window, start and endParam",
            )
        unbound = [n for n in names if n not in self.parent.bind]
        if unbound:
            raise field_error(
                "parent.bind",
                f"has no entry for {{{unbound[0]}}} of request.url; bind it to a JSONPath into the "
                f"parent's records, e.g. {unbound[0]}: $.{unbound[0]}",
            )
        unused = [k for k in self.parent.bind if k not in names]
        if unused:
            raise field_error(
                f"parent.bind.{unused[0]}",
                f"is not used: request.url has no {{{unused[0]}}}; remove the entry or use it in the URL",
            )
        return self

    @model_validator(mode="after")
    def _pagination_fits_request_and_format(self) -> IngestionSourceSpec:
        pagination = self.pagination
        if getattr(pagination, "in_", "query") == "body" and self.request.method != "POST":
            raise field_error(
                "pagination.in",
                f"body needs request.method POST, got {self.request.method!r} (or use in: query)",
            )
        if self.records.format != "json":
            for name in _BODY_PATHS:
                field = to_snake(name)
                if getattr(pagination, field, None) is not None:
                    raise field_error(
                        f"pagination.{name}",
                        f"reads a JSON body, but records.format is {self.records.format}; "
                        "use linkHeader, pageNumber, offset or cursorHeader/cursorFromLastRecord",
                    )
        return self


# Fields the API server fills in; accepted (and dropped) so `kubectl get -o yaml` output parses.
_SERVER_METADATA = frozenset(
    {
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "ownerReferences",
        "finalizers",
        "selfLink",
        "generateName",
    }
)


class ObjectMeta(_Model):
    """The part of Kubernetes object metadata a source uses."""

    name: str = Field(
        max_length=63,
        pattern=DNS1123_LABEL,
        description="Source name; names the Kafka topic and Kubernetes objects.",
    )
    namespace: str | None = Field(
        None, max_length=63, pattern=DNS1123_LABEL, description="Kubernetes namespace."
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Kubernetes labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Kubernetes annotations.")

    @model_validator(mode="before")
    @classmethod
    def _drop_server_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in _SERVER_METADATA}
        return data


class Condition(_Model):
    """One aspect of the source's state (Kubernetes condition conventions)."""

    type: str = Field(
        max_length=64,
        pattern=CONDITION_REASON,
        description="Condition type: Ready, FetcherReady, StreamReady or QualityPassing.",
    )
    status: Literal["True", "False", "Unknown"] = Field(description="Status of the condition.")
    reason: str | None = Field(
        None, max_length=128, pattern=CONDITION_REASON, description="Why it last changed, one CamelCase word."
    )
    message: str | None = Field(
        None, max_length=4096, description="Human-readable detail of the last change."
    )
    last_transition_time: dt.datetime | None = Field(None, description="When status last changed (UTC).")
    observed_generation: int | None = Field(
        None, ge=0, description="metadata.generation the condition was computed from."
    )


class IngestionSourceStatus(_Model):
    """What the operator observed; written only by the operator."""

    phase: Literal["Pending", "Provisioning", "Running", "Degraded", "Paused", "Failed"] | None = Field(
        None,
        description='Summary of the conditions; Paused while restlake.io/pause-reconciliation is "true".',
    )
    observed_generation: int | None = Field(None, ge=0, description="metadata.generation last reconciled.")
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Conditions: Ready, FetcherReady, StreamReady, TopicReady, CredentialsAllowed, "
        "ParentResolved, SchemaCompatible, QualityPassing, ReconciliationPaused.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    last_fetch_time: dt.datetime | None = Field(None, description="When the last page was fetched (UTC).")
    events_produced: int | None = Field(None, ge=0, description="Records published to Kafka, in total.")
    consumer_lag: int | None = Field(
        None, ge=0, description="Kafka messages not yet processed by the stream job."
    )


class IngestionSource(_Model):
    """A REST API ingested into Kafka, a bronze Delta table and Postgres."""

    api_version: Literal["restlake.io/v1alpha1"] = Field(description="restlake.io/v1alpha1.")
    kind: Literal["IngestionSource"] = Field(description="IngestionSource.")
    metadata: ObjectMeta = Field(description="Name, namespace, labels and annotations.")
    spec: IngestionSourceSpec = Field(description="What to fetch, how, and where it lands.")
    status: IngestionSourceStatus | None = Field(None, description="What the operator observed.")

    @model_validator(mode="after")
    def _own_identity(self) -> IngestionSource:
        # Only the two identities the object itself can have: an annotation naming another
        # namespace's source would share its topic, lake paths and Postgres rows.
        claimed = self.metadata.annotations.get(IDENTITY_ANNOTATION)
        allowed = {self.metadata.name, qualified_identity(self.metadata.namespace or "", self.metadata.name)}
        if claimed is not None and claimed not in allowed:
            raise field_error(
                f"metadata.annotations.{IDENTITY_ANNOTATION}",
                f"must be {self.metadata.name!r} or <namespace>.{self.metadata.name}, got {claimed!r}; "
                "leave it out, the operator sets it",
            )
        return self

    @model_validator(mode="after")
    def _not_its_own_parent(self) -> IngestionSource:
        parent = self.spec.parent
        if parent is not None and parent.source == self.metadata.name:
            raise field_error(
                "spec.parent.source",
                f"names this source itself ({parent.source!r}); a parent is another IngestionSource",
            )
        return self

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def identity(self) -> str:
        """What the source's data is keyed by: topic, lake paths, checkpoint, fetch state, the Postgres
        ``source`` value and metric labels.

        The name, unless the ``restlake.io/identity`` annotation says otherwise; the operator sets
        it to ``<namespace>.<name>`` for sources outside its own namespace (see ``operator/README.md``),
        so same-named sources in two namespaces never share data. `restlake run -f` uses the name.
        """
        return self.metadata.annotations.get(IDENTITY_ANNOTATION) or self.name

    def topic(self, prefix: str = "restlake.") -> str:
        """The Kafka topic: ``spec.kafka.topic``, else ``<prefix><identity>``."""
        if self.spec.kafka is not None and self.spec.kafka.topic:
            return self.spec.kafka.topic
        return f"{prefix}{self.identity}"

    def dead_letter_topic(self, prefix: str = "restlake.") -> str:
        """Where the fetcher sends pages it could not use: ``<topic>.dlq``."""
        return self.topic(prefix) + DEAD_LETTER_SUFFIX

    def bronze_path(self, lake_root: str) -> str:
        """Bronze table: ``spec.sinks.bronze.path`` (relative to the lake root), else bronze/<identity>."""
        return _table_path(lake_root, self.spec.sinks.bronze.path, "bronze", self.identity)

    def quarantine_path(self, lake_root: str) -> str:
        """Quarantine table location, like ``bronze_path`` under ``quarantine/<identity>``."""
        return _table_path(lake_root, self.spec.sinks.quarantine.path, "quarantine", self.identity)

    def checkpoint_path(self, lake_root: str) -> str:
        """Spark checkpoint location of the source's stream: ``<lake root>/_checkpoints/<identity>``."""
        return LakeSettings(root=lake_root).table_uri("_checkpoints", self.identity)


def qualified_identity(namespace: str, name: str) -> str:
    """``<namespace>.<name>``: both are DNS-1123 labels (no dots), so it is unambiguous, never equal to
    a bare name, and valid as it is in a topic name, a path segment and a Postgres text value."""
    return f"{namespace}.{name}"


def _table_path(lake_root: str, explicit: str | None, kind: str, name: str) -> str:
    lake = LakeSettings(root=lake_root)
    if explicit is None:
        return lake.table_uri(kind, name)
    if "://" in explicit or Path(explicit).is_absolute():
        return explicit
    return lake.table_uri(*Path(explicit).parts)


# ---------------------------------------------------------------------------------------------------
# Loading and error rendering
# ---------------------------------------------------------------------------------------------------


def parse_source(document: Any, origin: str) -> IngestionSource:
    """Validate one parsed YAML/JSON document; ``origin`` (a file, ``file#2``, ...) names it in errors.

    Only camelCase keys are accepted, exactly what the API server accepts, so a file that
    `restlake run -f` takes is one `kubectl apply -f` takes too.
    """
    if not isinstance(document, dict):
        raise SpecError(origin, [("<document>", f"must be a mapping, got {_type_word(document)}")])
    name = document.get("metadata", {}).get("name") if isinstance(document.get("metadata"), dict) else None
    label = f"{name} ({origin})" if isinstance(name, str) and name else origin
    # A different kind would only produce a flood of unrelated field errors; say the one thing that matters.
    header = [
        (key, "required" if key not in document else f"must be {want!r}, got {_short(document[key])}")
        for key, want in (("apiVersion", API_VERSION), ("kind", KIND))
        if document.get(key) != want
    ]
    if header:
        raise SpecError(label, header)
    try:
        return IngestionSource.model_validate(document, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise SpecError(label, problems_of(exc)) from None


def read_documents(path: Path | str, text: str | None = None) -> list[tuple[str, Any]]:
    """The non-empty YAML documents of a file as ``(origin, document)``; YAML errors become ``SpecError``."""
    path = str(path)
    if text is None:
        data = Path(path).read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(
                path,
                [
                    (
                        "<file>",
                        f"not a UTF-8 text file (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                        "an IngestionSource file is YAML text",
                    )
                ],
            ) from None
    try:
        documents = [d for d in strict_yaml.load_all(text) if d is not None]
    except ReaderError as exc:
        # Control characters (NUL and the like): a binary file that happens to be valid UTF-8.
        raise SpecError(
            path,
            [
                (
                    f"character {exc.position + 1}",
                    f"not a YAML text file: control character #x{exc.character:04x} is not allowed"
                    if isinstance(exc.character, int)
                    else f"not a YAML text file: {exc.reason}",
                )
            ],
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "<document>"
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        raise SpecError(
            path, [(where, f"invalid YAML: {problem}" + (f" ({context})" if context else ""))]
        ) from None
    if len(documents) == 1:
        return [(path, documents[0])]
    return [(f"{path}#{i}", doc) for i, doc in enumerate(documents, start=1)]


def load_sources(path: Path | str) -> list[IngestionSource]:
    """Every IngestionSource of a (multi-document) YAML file; the first invalid one raises ``SpecError``."""
    return [parse_source(doc, origin) for origin, doc in read_documents(path)]


def load_source(path: Path | str) -> IngestionSource:
    """The one IngestionSource of a YAML file."""
    documents = read_documents(path)
    if len(documents) != 1:
        raise SpecError(
            str(path), [("<document>", f"expected one IngestionSource document, found {len(documents)}")]
        )
    origin, doc = documents[0]
    return parse_source(doc, origin)


def problems_of(exc: ValidationError) -> list[tuple[str, str]]:
    """``(field path, message)`` per error, paths in the YAML's camelCase with ``[i]`` list indices."""
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        path, model, union = _render_loc(error["loc"])
        kind = error["type"]
        ctx = error.get("ctx") or {}
        value = error.get("input")
        if kind == "restlake_field":
            if ctx.get("field"):
                path = _join(path, str(ctx["field"]))
            path += str(ctx.get("subpath", ""))
            message = str(ctx["message"])
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            tags = ", ".join(_tags(union)) if union is not None else str(ctx.get("expected_tags", ""))
            path = _join(path, "type")
            got = ctx.get("tag")
            message = f"must be one of {tags}, got {got!r}" if got is not None else f"required: one of {tags}"
        else:
            message = _message(kind, error["msg"], ctx, value, path, model)
        if (path, message) not in problems:
            problems.append((path, message))
    return problems


def _message(kind: str, msg: str, ctx: dict[str, Any], value: Any, path: str, model: Any) -> str:
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        # The value is not shown: an unknown key may well be where someone pasted a token.
        unknown = path.rsplit(".", 1)[-1]
        known = _aliases(model) if model is not None else []
        close = difflib.get_close_matches(unknown, known, n=1, cutoff=0.6)
        if not close:  # case and snake_case slips (cursorpath, cursor_path) score low in difflib
            close = [k for k in known if k.lower() == unknown.replace("_", "").lower()]
        return "unknown field" + (f" (did you mean {close[0]!r}?)" if close else "")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping, got {_type_word(value)}"
    if kind == "list_type":
        return f"must be a list, got {_type_word(value)}"
    if kind == "string_type":
        if isinstance(value, (dict, list)) or value is None:
            return f"must be a string, got {_type_word(value)}"
        return f'must be a string, got {_short(value)} (quote it in YAML: "{value}")'
    if kind == "string_pattern_mismatch":
        hint = _PATTERN_HINTS.get(str(ctx.get("pattern")), f"must match {ctx.get('pattern')}")
        return f"{hint}, got {_short(value)}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}, got {_short(value)}"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    text = (
        msg.replace("Input should be", "must be")
        .replace("String should", "must")
        .replace("List should", "must")
    )
    text = text.replace("Value should", "must")
    if not isinstance(value, (dict, list)) and " got " not in text:
        text += f", got {_short(value)}"
    return text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _type_word(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    return _short(value)


def _join(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


def _subpath(parts: Any) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _unwrap(tp: Any) -> Any:
    """Strip ``Annotated`` and ``| None`` until a model, a container or a real union is left."""
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) != 1:
                return typing.Union[tuple(members)]  # noqa: UP007 - built from a runtime tuple
            tp = members[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _union_models(tp: Any) -> list[type[BaseModel]] | None:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = [_unwrap(a) for a in typing.get_args(tp)]
        if members and all(_is_model(m) for m in members):
            return members
    return None


def _tags(union: list[type[BaseModel]]) -> list[str]:
    return [typing.get_args(m.model_fields["type"].annotation)[0] for m in union]


def _aliases(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _field_by_alias(model: type[BaseModel], alias: str) -> Any:
    for name, info in model.model_fields.items():
        if (info.alias or name) == alias:
            return info.annotation
    return None


def _render_loc(loc: tuple[int | str, ...]) -> tuple[str, Any, list[type[BaseModel]] | None]:
    """Render a pydantic loc as ``spec.quality.expectations[2].field``, skipping union tags.

    Also returns the model the last key was looked up in (for did-you-mean) and the union
    type at the end of the path, if any (for tag errors).
    """
    path = ""
    current: Any = IngestionSource
    parent: Any = None
    for item in loc:
        current = _unwrap(current)
        union = _union_models(current)
        if union is not None and isinstance(item, str):
            # A discriminated union puts the tag in the loc; YAML has no such level.
            current = next((m for m in union if _tags([m])[0] == item), None)
            continue
        if (
            union is None
            and isinstance(item, str)
            and typing.get_origin(current) in (typing.Union, types.UnionType)
        ):
            continue  # a smart-mode union names the member it tried (`int`, `str`); YAML has no such level
        if isinstance(item, int):
            path += f"[{item}]"
            args = typing.get_args(current)
            current = args[0] if args else None
        elif _is_model(current):
            parent = current
            path = _join(path, str(item))
            current = _field_by_alias(current, str(item))
        elif typing.get_origin(current) is dict:
            path = _join(path, str(item))
            current = typing.get_args(current)[1]
        else:
            path = _join(path, str(item))
            current = None
    return path, parent, _union_models(_unwrap(current)) if current is not None else None


# spec.maintenance's model has a module of its own that builds on the types above, so it is imported
# last; the field's annotation resolves when the models first validate (either import order works).
import restlake.contracts.maintenance as maintenance_model  # noqa: E402
