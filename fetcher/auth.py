"""Request authentication: bearer, basic, API key (header, query or cookie), OAuth2 client credentials.

Secrets are resolved once, kept as ``SecretStr`` and only unwrapped when a request is built, so a
token never reaches a log line, a repr or an exception message.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import aiohttp
from pydantic import SecretStr

from restlake.errors import PermanentError, TransientError
from restlake.fetcher.page_errors import PageError

# Refresh an OAuth2 token this long before it expires, so a request never goes out with a stale one.
_TOKEN_REFRESH_MARGIN_S = 30.0


class AuthError(PermanentError, PageError):
    """Credentials were refused or could not be obtained."""

    reason = "auth"


class TokenUnavailableError(TransientError, PageError):
    """The token endpoint could not be reached or failed for now (a 5xx, a 429): retried."""


class Authenticator:
    """Adds credentials to a request's headers and query parameters; the no-auth default adds nothing."""

    #: Query parameters that carry a secret and must be redacted wherever a URL is recorded.
    secret_params: frozenset[str] = frozenset()

    async def apply(
        self, session: aiohttp.ClientSession, headers: dict[str, str], params: dict[str, str]
    ) -> None:
        return None

    def secret_values(self) -> list[str]:
        """Every secret this authenticator may put on the wire, for scrubbing text before it is logged."""
        return []

    def renew_after_refusal(self) -> bool:
        """A request was answered 401: drop whatever credential may have gone stale.

        True when the request is worth repeating with a fresh one; static credentials cannot
        change, so by default a 401 stands.
        """
        return False


class StaticHeaderAuth(Authenticator):
    def __init__(self, header: str, value: SecretStr, parts: tuple[SecretStr, ...] = ()) -> None:
        self.header = header
        self._value = value
        # The raw pieces a header is built from (a token without "Bearer ", a basic password).
        self._parts = parts

    def secret_values(self) -> list[str]:
        return [self._value.get_secret_value(), *(p.get_secret_value() for p in self._parts)]

    async def apply(
        self, session: aiohttp.ClientSession, headers: dict[str, str], params: dict[str, str]
    ) -> None:
        headers[self.header] = self._value.get_secret_value()


class QueryKeyAuth(Authenticator):
    def __init__(self, param: str, value: SecretStr) -> None:
        self.param = param
        self._value = value
        self.secret_params = frozenset({param})

    def secret_values(self) -> list[str]:
        return [self._value.get_secret_value()]

    async def apply(
        self, session: aiohttp.ClientSession, headers: dict[str, str], params: dict[str, str]
    ) -> None:
        params[self.param] = self._value.get_secret_value()


class CookieAuth(Authenticator):
    """An API key sent as a cookie (OpenAPI ``apiKey`` with ``in: cookie``)."""

    def __init__(self, name: str, value: SecretStr) -> None:
        self.name = name
        self._value = value

    def secret_values(self) -> list[str]:
        return [self._value.get_secret_value()]

    async def apply(
        self, session: aiohttp.ClientSession, headers: dict[str, str], params: dict[str, str]
    ) -> None:
        # Set on the request, not in the session's cookie jar: the jar would match by domain and
        # ignore the port, so the cookie could reach another origin on the same host.
        cookie = f"{self.name}={self._value.get_secret_value()}"
        headers["Cookie"] = f"{headers['Cookie']}; {cookie}" if headers.get("Cookie") else cookie


class OAuth2ClientCredentials(Authenticator):
    """RFC 6749 §4.4: trade client id + secret for a bearer token; cache it until shortly before expiry."""

    def __init__(self, token_url: str, client_id: str, client_secret: SecretStr, scopes: list[str]) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self.scopes = scopes
        self._token: SecretStr | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def _refresh(self, session: aiohttp.ClientSession) -> SecretStr:
        form = {"grant_type": "client_credentials"}
        if self.scopes:
            form["scope"] = " ".join(self.scopes)
        # RFC 6749 §2.3.1 client authentication, built by hand: aiohttp's BasicAuth is deprecated.
        pair = f"{self.client_id}:{self._client_secret.get_secret_value()}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
        try:
            # Not following redirects: the client secret must not travel to wherever a 307 points.
            async with session.post(
                self.token_url, data=form, headers=headers, allow_redirects=False
            ) as resp:
                if 300 <= resp.status < 400:
                    raise AuthError(
                        f"token endpoint {self.token_url} redirected (HTTP {resp.status}); "
                        "set spec.request.auth.tokenUrl to the final URL"
                    )
                if resp.status >= 500 or resp.status == 429:
                    raise TokenUnavailableError(
                        f"token endpoint {self.token_url} answered HTTP {resp.status}"
                    )
                if resp.status >= 400:
                    raise AuthError(
                        f"token endpoint {self.token_url} refused client {self.client_id!r} "
                        f"(HTTP {resp.status})"
                    )
                body: dict[str, Any] = await resp.json(content_type=None)
        except aiohttp.ClientError as exc:
            raise TokenUnavailableError(
                f"token endpoint {self.token_url} unreachable: {type(exc).__name__}"
            ) from exc
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise AuthError(f"token endpoint {self.token_url} returned no access_token")
        self._token = SecretStr(token)
        self._expires_at = time.monotonic() + float(body.get("expires_in") or 3600)
        return self._token

    async def apply(
        self, session: aiohttp.ClientSession, headers: dict[str, str], params: dict[str, str]
    ) -> None:
        async with self._lock:
            token = self._token
            if token is None or time.monotonic() > self._expires_at - _TOKEN_REFRESH_MARGIN_S:
                token = await self._refresh(session)
        headers["Authorization"] = f"Bearer {token.get_secret_value()}"

    def secret_values(self) -> list[str]:
        values = [self._client_secret.get_secret_value()]
        if self._token is not None:
            values.append(self._token.get_secret_value())
        return values

    def invalidate(self) -> None:
        """Forget the token, so the next request fetches a new one."""
        self._token = None

    def renew_after_refusal(self) -> bool:
        # A token can be revoked before its expiry: the next request fetches a new one.
        self.invalidate()
        return True


def make_authenticator(auth: Any) -> Authenticator:
    """Build the authenticator for ``spec.request.auth``; resolves the referenced secrets now."""
    if auth is None:
        return Authenticator()
    if auth.type == "bearer":
        token = auth.secret_ref.resolve()
        return StaticHeaderAuth("Authorization", SecretStr(f"Bearer {token.get_secret_value()}"), (token,))
    if auth.type == "basic":
        user = (
            auth.username
            if auth.username is not None
            else auth.username_secret_ref.resolve().get_secret_value()
        )
        password = auth.password_secret_ref.resolve()
        raw = base64.b64encode(f"{user}:{password.get_secret_value()}".encode()).decode("ascii")
        return StaticHeaderAuth("Authorization", SecretStr(f"Basic {raw}"), (SecretStr(raw), password))
    if auth.type == "apiKey":
        key = auth.secret_ref.resolve()
        if auth.in_ == "header":
            return StaticHeaderAuth(auth.name, key, (key,))
        if auth.in_ == "cookie":
            return CookieAuth(auth.name, key)
        return QueryKeyAuth(auth.name, key)
    if auth.type == "oauth2ClientCredentials":
        return OAuth2ClientCredentials(
            auth.token_url, auth.client_id, auth.client_secret_ref.resolve(), auth.scopes
        )
    raise PermanentError(f"spec.request.auth.type: unsupported auth type {auth.type!r}")
