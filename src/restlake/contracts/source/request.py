"""``spec.request``: the HTTP request that returns a source's first page."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from restlake.contracts import guards
from restlake.contracts.model import SpecModel, field_error, model_rules
from restlake.contracts.source.auth import Auth
from restlake.contracts.values import Duration, NameMap, Url, bounded_duration


def _credential_names(values: dict[str, str], field: str, what: str) -> None:
    for name in values:
        if guards.is_secret_name(name):
            raise field_error(
                f"{field}.{name}", f"{what} {name!r} looks like a credential; {guards.CREDENTIALS_ADVICE}"
            )


class Request(SpecModel):
    """The HTTP request that returns the first page."""

    model_config = model_rules(
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
