"""The fetcher's view of redaction: its configured secrets and parameter names, on top of
:mod:`restlake.redaction` (the one function every component's output passes through)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from yarl import URL

from restlake.redaction import REDACTED, is_secret_name, redact

__all__ = ["REDACTED", "Redactor", "redact_url"]


def redact_url(url: str | URL, secret_params: Iterable[str] = (), public_params: Iterable[str] = ()) -> str:
    """``url`` with any userinfo password and the values of secret query parameters replaced.

    A parameter is secret when ``secret_params`` names it (auth adds it) or its name looks secret;
    ``public_params`` are the exceptions a spec declares (a pagination cursor called ``pageToken``).
    """
    parsed = url if isinstance(url, URL) else URL(str(url))
    named = {p.lower() for p in secret_params}
    public = {p.lower() for p in public_params} - named
    if parsed.password is not None:
        parsed = parsed.with_password(REDACTED)

    def hidden(name: str) -> bool:
        key = name.lower()
        return key in named or (key not in public and is_secret_name(name))

    if not any(hidden(k) for k in parsed.query):
        return str(parsed)
    return str(parsed.with_query([(k, REDACTED if hidden(k) else v) for k, v in parsed.query.items()]))


class Redactor:
    """Scrubs a source's secrets from arbitrary text: its credential values plus every pattern of
    :func:`restlake.redaction.redact`."""

    def __init__(
        self,
        secrets: Callable[[], Iterable[str]] = tuple,
        secret_params: Iterable[str] = (),
        public_params: Iterable[str] = (),
    ) -> None:
        # A callable, because some secrets (an OAuth2 access token) change while the fetcher runs.
        self._secrets = secrets
        self.secret_params = frozenset(secret_params)
        self.public_params = frozenset(public_params) - self.secret_params

    def secrets(self) -> list[str]:
        return list(self._secrets())

    def text(self, value: str) -> str:
        return redact(value, self._secrets(), public_names=self.public_params)

    def url(self, url: str | URL) -> str:
        return self.text(redact_url(url, self.secret_params, self.public_params))
