"""Keeping secrets out of URLs, log lines, errors and dead-letter events."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from yarl import URL

REDACTED = "***"

# Query parameters that carry credentials in common APIs; redacted even when auth did not add them,
# because a next link or a hand-written spec.request.params may echo them back.
DEFAULT_SECRET_PARAMS = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "api-key",
        "client_secret",
        "key",
        "password",
        "secret",
        "sig",
        "signature",
        "token",
    }
)


def redact_url(url: str | URL, secret_params: Iterable[str] = ()) -> str:
    """``url`` with the values of secret query parameters and any userinfo password replaced."""
    parsed = url if isinstance(url, URL) else URL(str(url))
    names = {p.lower() for p in secret_params} | DEFAULT_SECRET_PARAMS
    if parsed.password is not None:
        parsed = parsed.with_password(REDACTED)
    if not parsed.query:
        return str(parsed)
    if not any(k.lower() in names for k in parsed.query):
        return str(parsed)
    query = [(k, REDACTED if k.lower() in names else v) for k, v in parsed.query.items()]
    return str(parsed.with_query(query))


class Redactor:
    """Scrubs known secret values (tokens, keys, passwords) from arbitrary text.

    URL redaction handles the places we build; this is the belt for the places we do not (a
    library's exception message that quotes a full URL, a server echoing a header into a body).
    """

    def __init__(
        self, secrets: Callable[[], Iterable[str]] = tuple, secret_params: Iterable[str] = ()
    ) -> None:
        # A callable, because some secrets (an OAuth2 access token) change while the fetcher runs.
        self._secrets = secrets
        self.secret_params = frozenset(secret_params)

    def text(self, value: str) -> str:
        # Longest first, so a secret that contains another is replaced whole; very short values
        # would redact innocent text and are not credentials anyone issues.
        for secret in sorted({s for s in self._secrets() if len(s) >= 4}, key=len, reverse=True):
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def url(self, url: str | URL) -> str:
        return self.text(redact_url(url, self.secret_params))
