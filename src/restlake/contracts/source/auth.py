"""``spec.request.auth``: how the fetcher authenticates, its credentials referenced in Secrets."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator

from restlake.contracts import guards, secrets
from restlake.contracts.model import SpecModel, field_error, model_rules
from restlake.contracts.patterns import DNS1123_SUBDOMAIN, SECRET_KEY
from restlake.contracts.values import Url


class SecretRef(SpecModel):
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


class BearerAuth(SpecModel):
    """Send ``Authorization: Bearer <token>``."""

    type: Literal["bearer"] = Field(description="bearer: send `Authorization: Bearer <token>`.")
    secret_ref: SecretRef = Field(
        description="Secret key holding the token (bearer) or the API key (apiKey)."
    )


class BasicAuth(SpecModel):
    """HTTP basic authentication."""

    model_config = model_rules(
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


class ApiKeyAuth(SpecModel):
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


class OAuth2ClientCredentialsAuth(SpecModel):
    """OAuth 2.0 client-credentials grant; the token is fetched, cached and refreshed before expiry."""

    model_config = model_rules(*guards.url_rules("tokenUrl"))

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
