"""Credentials go only to the origin they were configured for; redirects are followed by hand.

aiohttp's own redirect handling drops ``Authorization`` on a cross-origin hop but sends every other
header on, a custom ``X-API-Key`` included, and a query key goes wherever a ``Location`` echoing it
points. So the fetcher follows redirects itself (``allow_redirects=False``, at most
:data:`MAX_REDIRECTS` hops) and decides per hop: on the origin of ``spec.request.url`` (scheme, host
and port) the request carries the source's auth; anywhere else it carries none, and with
``spec.request.redirects: sameOrigin`` (the default) a redirect there is refused as a bad page.
"""

from __future__ import annotations

import logging
from typing import Literal

import aiohttp
from yarl import URL

from restlake.errors import TransientError
from restlake.fetcher.auth import Authenticator
from restlake.fetcher.page_errors import PageError
from restlake.fetcher.pagination.base import PageRequest
from restlake.fetcher.redaction import Redactor
from restlake.redaction import is_secret_name

log = logging.getLogger(__name__)

Redirects = Literal["sameOrigin", "allow"]

# Browsers and aiohttp stop at 10 as well; a longer chain is a loop or a misconfiguration.
MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
HTTP_SCHEMES = frozenset({"http", "https"})
# Headers that carry credentials whatever their name says.
_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})


class RedirectError(TransientError, PageError):
    """A URL or redirect the fetcher will not follow: a bad page, retried, then dead-lettered.

    ``reason`` is the bad-page reason code; ``status`` the redirect's HTTP status, if one came.
    Retried like any bad page, because a server that redirects wrongly may be mid-deployment.
    """

    def __init__(self, message: str, *, reason: str, status: int | None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


def origin_of(url: URL) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` with the scheme's default port filled in (RFC 6454)."""
    return (url.scheme.lower(), (url.host or "").lower().rstrip("."), url.port)


def same_origin(url: URL, other: URL) -> bool:
    return origin_of(url) == origin_of(other)


def public_headers(headers: dict[str, str]) -> dict[str, str]:
    """The headers that may go to another origin: none that carries or looks like a credential."""
    return {
        k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS and not is_secret_name(k)
    }


_REDIRECTS_TO_GET = frozenset({301, 302, 303})


class RedirectPolicy:
    """Sends one request and follows its redirects under the origin rule."""

    def __init__(self, origin: URL, redirects: Redirects, redactor: Redactor) -> None:
        self.origin = origin
        self.redirects = redirects
        self.redactor = redactor

    async def send(
        self,
        session: aiohttp.ClientSession,
        request: PageRequest,
        *,
        headers: dict[str, str],
        auth: Authenticator,
        timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        """The first non-redirect response (the caller releases it); raises :class:`RedirectError`."""
        url, params = request.url, dict(request.params)
        method, body = request.method, (request.body if request.method == "POST" else None)
        for hop in range(MAX_REDIRECTS + 1):
            if url.scheme.lower() not in HTTP_SCHEMES:
                raise RedirectError(
                    f"refused to request {self.redactor.url(url)}: only http and https URLs are fetched",
                    reason="bad_url",
                    status=None,
                )
            send_headers = dict(headers)
            if same_origin(url, self.origin):
                await auth.apply(session, send_headers, params)
            else:
                send_headers = public_headers(send_headers)
                params = self._without_credentials(params, auth)
            resp = await session.request(
                method,
                url,
                params=params,
                json=body,
                headers=send_headers,
                timeout=timeout,
                allow_redirects=False,
            )
            if resp.status not in REDIRECT_STATUSES or "Location" not in resp.headers:
                return resp
            resp.release()
            target = self._target(resp, url, params)
            if target.scheme.lower() not in HTTP_SCHEMES:
                raise RedirectError(
                    f"HTTP {resp.status} redirect from {self.redactor.url(url)} to a "
                    f"{target.scheme or 'scheme-less'}: URL refused: only http and https URLs are fetched",
                    reason="bad_url",
                    status=resp.status,
                )
            if hop == MAX_REDIRECTS:
                break
            if not same_origin(target, self.origin) and self.redirects == "sameOrigin":
                raise RedirectError(
                    f"HTTP {resp.status} redirect from {self.redactor.url(url)} to another origin "
                    f"({self.redactor.url(target)}) refused: credentials go only to the origin of "
                    "spec.request.url; set spec.request.url to the final URL, or "
                    "spec.request.redirects: allow to follow it without credentials",
                    reason="cross_origin_redirect",
                    status=resp.status,
                )
            log.debug("following HTTP %d redirect to %s", resp.status, self.redactor.url(target))
            url, params = target.with_query(None), dict(target.query)
            if resp.status in _REDIRECTS_TO_GET and method != "GET":
                # What browsers and aiohttp do: 301/302/303 turn a POST into a GET without its body;
                # 307 and 308 repeat the request as it was.
                method, body = "GET", None
        raise RedirectError(
            f"more than {MAX_REDIRECTS} redirects starting at {self.redactor.url(request.full_url())} "
            f"(the last to {self.redactor.text(resp.headers['Location'])}): "
            "a redirect loop or a moved API; set spec.request.url to the final URL",
            reason="too_many_redirects",
            status=resp.status,
        )

    def _target(self, resp: aiohttp.ClientResponse, url: URL, params: dict[str, str]) -> URL:
        location = resp.headers["Location"]
        try:
            return url.update_query(params).join(URL(location))
        except ValueError as exc:
            raise RedirectError(
                f"HTTP {resp.status} redirect from {self.redactor.url(url)} to an unusable "
                f"Location ({self.redactor.text(location)}): {exc}",
                reason="bad_url",
                status=resp.status,
            ) from exc

    def _without_credentials(self, params: dict[str, str], auth: Authenticator) -> dict[str, str]:
        # A Location may echo the query key back; it must not travel on to the other origin.
        secrets = [s for s in auth.secret_values() if len(s) >= 4]
        return {
            k: v
            for k, v in params.items()
            if k not in auth.secret_params and not any(s in v for s in secrets)
        }
