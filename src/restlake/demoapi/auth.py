"""Optional credentials: a static bearer token, an API key, and OAuth2 client-credentials tokens."""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Mapping

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)


class AuthConfig(BaseModel):
    """No field set means no authentication. Any one configured credential admits a request."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bearer_token: str | None = Field(None, description="Static token accepted as 'Authorization: Bearer …'.")
    api_key_name: str | None = Field(None, description="Header (or query parameter) carrying the API key.")
    api_key_value: str | None = None
    oauth_client_id: str | None = Field(None, description="Enables POST /oauth/token for this client.")
    oauth_client_secret: str | None = None
    token_ttl_seconds: int = Field(3600, ge=1, description="expires_in of issued OAuth2 tokens.")

    @property
    def enabled(self) -> bool:
        return bool(self.bearer_token or self.api_key_name or self.oauth_client_id)

    @property
    def oauth_enabled(self) -> bool:
        return self.oauth_client_id is not None


class OAuthError(Exception):
    """An RFC 6749 token-endpoint error: ``code`` is the ``error`` field, ``status`` the HTTP status."""

    def __init__(self, code: str, status: int, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.status = status


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class Authenticator:
    def __init__(self, config: AuthConfig, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._monotonic = monotonic
        self._tokens: dict[str, float] = {}  # issued access token -> expiry (monotonic)
        self.tokens_issued = 0

    def check(self, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
        cfg = self.config
        if not cfg.enabled:
            return True
        scheme, _, token = headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() == "bearer" and token:
            if cfg.bearer_token and _same(token, cfg.bearer_token):
                return True
            expiry = self._tokens.get(token)
            if expiry is not None and expiry > self._monotonic():
                return True
        if cfg.api_key_name and cfg.api_key_value:
            presented = headers.get(cfg.api_key_name) or query.get(cfg.api_key_name)
            if presented and _same(presented, cfg.api_key_value):
                return True
        return False

    def issue(self, form: Mapping[str, str], authorization: str | None) -> dict[str, object]:
        """Answer a client-credentials token request (form fields or HTTP Basic client auth)."""
        cfg = self.config
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type", 400, "only client_credentials is supported")
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() == "basic" and encoded:
            try:
                client_id, _, client_secret = base64.b64decode(encoded.strip()).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError) as exc:
                raise OAuthError("invalid_client", 401, "malformed Basic credentials") from exc
        if not (
            client_id
            and client_secret
            and cfg.oauth_client_id
            and cfg.oauth_client_secret
            and _same(client_id, cfg.oauth_client_id)
            and _same(client_secret, cfg.oauth_client_secret)
        ):
            raise OAuthError("invalid_client", 401, "unknown client or wrong secret")
        now = self._monotonic()
        self._tokens = {t: e for t, e in self._tokens.items() if e > now}
        token = secrets.token_urlsafe(24)
        self._tokens[token] = now + cfg.token_ttl_seconds
        self.tokens_issued += 1
        log.info("oauth token issued", extra={"client_id": client_id, "ttl": cfg.token_ttl_seconds})
        return {"access_token": token, "token_type": "bearer", "expires_in": cfg.token_ttl_seconds}
