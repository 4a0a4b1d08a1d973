"""The page client: one source's HTTP requests, with its retry policy, budget, auth and origin rule.

Built once per source (:meth:`PageClient.for_source`); a request then takes only what varies per
page: the request (URL, parameters, body), the validators stored for it, and an ``inspect`` hook.

Around every attempt: the source's rate limiter (wait for budget, read the server's rate-limit
headers), the endpoint's circuit breaker, and metrics. What to do with a failure is decided by its
type: ``TransientError`` is retried with backoff and jitter (or after ``Retry-After``) until the
attempts run out, ``PermanentError`` is not, and ``CircuitOpenError`` stops at once (sleeping out a
cool-down inside one page would stall the pass). Whatever the client gives up with is a
:class:`~restlake.fetcher.page_errors.PageError` carrying its reason, status, body and attempts.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from restlake.errors import TransientError
from restlake.fetcher.auth import Authenticator
from restlake.fetcher.body import DEFAULT_MAX_BODY_BYTES, read_body
from restlake.fetcher.breaker import BreakerRegistry, CircuitBreaker, CircuitOpenError
from restlake.fetcher.metrics import FetcherMetrics, status_class
from restlake.fetcher.origin import RedirectPolicy, Redirects, same_origin
from restlake.fetcher.page_errors import (
    BadPageError,
    ConnectionFailedError,
    HttpClientError,
    HttpStatusError,
    PageError,
    RequestTimeoutError,
)
from restlake.fetcher.pagination.base import PageRequest
from restlake.fetcher.ratelimit import RateLimiter
from restlake.fetcher.redaction import Redactor

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "BadPageError",
    "ConnectionFailedError",
    "HttpClientError",
    "HttpStatusError",
    "PageClient",
    "PageError",
    "RequestTimeoutError",
    "Response",
    "RetryPolicy",
    "Validators",
    "get_page",
    "new_session",
    "parse_retry_after",
]

log = logging.getLogger(__name__)


def new_session(connector: aiohttp.BaseConnector | None = None) -> aiohttp.ClientSession:
    """The HTTP session the fetcher's sources share, with no cookie jar.

    aiohttp's jar keeps what a response's ``Set-Cookie`` says and sends it to every URL of the
    same domain, whatever the port: one source's session cookie would reach another source's API
    on the same host. Credentials a spec configures (``apiKey in: cookie``) are set per request by
    ``auth``, only for the source's own origin.
    """
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


@dataclass(frozen=True)
class Response:
    status: int
    headers: CIMultiDictProxy[str]
    body: Any  # parsed JSON; None for 304
    size: int
    attempts: int = 1


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; ``max_attempts`` bounds the total tries of one request."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 60.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class Validators(Protocol):
    """What a page was last delivered with (``PageState`` is one), sent back to ask "changed since?"."""

    def conditional_headers(self) -> dict[str, str]: ...


Inspect = Callable[[Response], None]


class PageClient:
    """Requests the pages of one source: retries, budget, breakers, auth, origin rule, redaction.

    ``headers`` go on every request; ``auth`` adds credentials, only on ``credential_origin`` (by
    default each request's own origin); how redirects are followed is :class:`RedirectPolicy`'s
    business. With ``conditional``, a GET carries the validators it is given; a POST query's answer
    has none to reuse. ``source`` labels the metrics and log lines.
    """

    def __init__(
        self,
        *,
        timeout: float,
        policy: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        auth: Authenticator | None = None,
        redactor: Redactor | None = None,
        credential_origin: URL | None = None,
        redirects: Redirects = "sameOrigin",
        records_format: str = "json",
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        limiter: RateLimiter | None = None,
        breakers: BreakerRegistry | None = None,
        metrics: FetcherMetrics | None = None,
        source: str = "",
        conditional: bool = True,
    ) -> None:
        self.timeout = timeout
        self._client_timeout = aiohttp.ClientTimeout(total=timeout)
        self.policy = policy or RetryPolicy()
        self.headers = dict(headers or {})
        self.auth = auth or Authenticator()
        # Error messages are built redacted: whoever catches one may print it.
        self.redactor = redactor or Redactor(self.auth.secret_values, self.auth.secret_params)
        self.credential_origin = credential_origin
        self.redirects = redirects
        self.records_format = records_format
        self.max_body_bytes = max_body_bytes
        self.limiter = limiter
        self.breakers = breakers
        self.metrics = metrics
        self.source = source
        self.conditional = conditional

    @classmethod
    def for_source(
        cls,
        name: str,
        spec: Any,
        *,
        auth: Authenticator,
        policy: RetryPolicy,
        limiter: RateLimiter,
        breakers: BreakerRegistry,
        metrics: FetcherMetrics,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        conditional: bool = True,
    ) -> PageClient:
        """The client of one IngestionSource ``spec``: credentials go only to the origin of
        ``spec.request.url``, never to one a response names."""
        return cls(
            timeout=spec.request.timeout.total_seconds(),
            policy=policy,
            headers=spec.request.headers,
            auth=auth,
            redactor=Redactor(auth.secret_values, auth.secret_params, paging_params(spec)),
            credential_origin=URL(spec.request.url),
            redirects=spec.request.redirects,
            records_format=spec.records.format,
            max_body_bytes=max_body_bytes,
            limiter=limiter,
            breakers=breakers,
            metrics=metrics,
            source=name,
            conditional=conditional,
        )

    async def get(
        self,
        session: aiohttp.ClientSession,
        request: PageRequest,
        *,
        validators: Validators | None = None,
        inspect: Inspect | None = None,
    ) -> Response:
        """Request one page (GET, or POST with its JSON body), retrying what the policy allows.

        Raises the last :class:`PageError` when attempts run out, its ``attempts`` set. A POST is
        retried like a GET: the POSTs a source makes are queries (Notion's database query, a
        search), which read and change nothing.

        ``inspect`` looks at a 2xx body before it is accepted (records path, pagination values, ids)
        and raises ``BadPageError`` when the page cannot be used; that is retried like a malformed
        body.
        """
        sender = self._sender(request)
        headers = self._headers(request, validators)
        attempt = 0
        renewed = False
        while True:
            attempt += 1
            try:
                response = await self._attempt(session, request, sender, headers, inspect, attempt, renewed)
            except CircuitOpenError as exc:
                exc.attempts = attempt
                if self.metrics is not None:
                    self.metrics.circuit_open.labels(self.source).inc()
                raise
            except PageError as exc:
                exc.attempts = attempt
                if not isinstance(exc, TransientError) or attempt >= self.policy.max_attempts:
                    raise
                await self._back_off(exc, attempt, request)
                continue
            if response is None:
                # Refused with credentials that could be renewed: the same attempt again, once.
                attempt -= 1
                renewed = True
                continue
            return response

    def _sender(self, request: PageRequest) -> RedirectPolicy:
        origin = self.credential_origin if self.credential_origin is not None else request.url
        if not same_origin(request.url, origin):
            log.info(
                "page %s is on another origin than spec.request.url: requesting it without credentials",
                self.redactor.url(request.full_url()),
                extra=self._log_fields(request),
            )
        return RedirectPolicy(origin, self.redirects, self.redactor)

    def _headers(self, request: PageRequest, validators: Validators | None) -> dict[str, str]:
        headers = dict(self.headers)
        # Conditional requests are GET-only: a POST query's answer has no validators to reuse.
        if validators is not None and self.conditional and request.method == "GET":
            headers.update(validators.conditional_headers())
        return headers

    async def _attempt(
        self,
        session: aiohttp.ClientSession,
        request: PageRequest,
        sender: RedirectPolicy,
        headers: dict[str, str],
        inspect: Inspect | None,
        attempt: int,
        renewed: bool,
    ) -> Response | None:
        """One try: the response, or None when a 401 renewed the credentials (ask again)."""
        breaker = self.breakers.for_url(request.url) if self.breakers is not None else None
        status: int | None = None
        try:
            await self._admit(breaker)
            try:
                resp = await sender.send(
                    session, request, headers=headers, auth=self.auth, timeout=self._client_timeout
                )
                async with resp:
                    status = resp.status
                    result = await self._answer(resp, request, inspect, attempt, renewed)
            except TimeoutError as exc:
                raise RequestTimeoutError(
                    f"no complete answer from {self.redactor.url(request.url)} within {self.timeout:g}s"
                ) from exc
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                raise ConnectionFailedError(
                    self.redactor.text(
                        f"{type(exc).__name__} fetching {self.redactor.url(request.url)}: {exc}"
                    )
                ) from exc
        except CircuitOpenError:
            raise
        except PageError as exc:
            self._count_request(status)
            if breaker is not None:
                if exc.endpoint_failed:
                    breaker.record_failure()
                else:
                    breaker.record_success()  # the endpoint answered; what it said is another matter
            raise
        self._count_request(status)
        if breaker is not None and result is not None:
            breaker.record_success()
        return result

    async def _admit(self, breaker: CircuitBreaker | None) -> None:
        """Wait until the endpoint's breaker and the source's budget let a request go out."""
        if breaker is not None:
            breaker.before_request()
        if self.limiter is not None:
            waited = await self.limiter.acquire()
            if waited and self.metrics is not None:
                self.metrics.rate_limit_wait.labels(self.source).inc(waited)

    async def _answer(
        self,
        resp: aiohttp.ClientResponse,
        request: PageRequest,
        inspect: Inspect | None,
        attempt: int,
        renewed: bool,
    ) -> Response | None:
        """What one response means: a page, a 304, a renewal of credentials, or a PageError."""
        if self.limiter is not None:
            self.limiter.observe(resp.headers)
        if resp.status == 304:
            return Response(304, resp.headers, None, 0, attempt)
        if resp.status in (408, 429) or resp.status >= 500:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            if retry_after is not None and self.limiter is not None:
                self.limiter.hold(retry_after)
            raise HttpStatusError(
                f"HTTP {resp.status} from {self.redactor.url(request.url)}",
                status=resp.status,
                retry_after=retry_after,
            )
        if resp.status == 401 and not renewed and self.auth.renew_after_refusal():
            return None
        if resp.status >= 400:
            raise HttpClientError(
                f"HTTP {resp.status} from {self.redactor.url(request.url)}: the request was refused "
                "(check the credentials and spec.request)",
                status=resp.status,
            )
        body, size = await read_body(resp, self.max_body_bytes, self.records_format)
        result = Response(resp.status, resp.headers, body, size, attempt)
        if inspect is not None:
            inspect(result)
        return result

    async def _back_off(self, error: TransientError, attempt: int, request: PageRequest) -> None:
        wait = self.policy.delay(attempt, error.retry_after)
        if self.metrics is not None:
            self.metrics.retries.labels(self.source).inc()
            if isinstance(error, HttpStatusError) and error.status == 429:
                self.metrics.rate_limit_wait.labels(self.source).inc(wait)
        log.warning(
            "retrying page after %s (attempt %d/%d, waiting %.2fs)",
            self.redactor.text(str(error)),
            attempt,
            self.policy.max_attempts,
            wait,
            extra=self._log_fields(request),
        )
        await asyncio.sleep(wait)

    def _count_request(self, status: int | None) -> None:
        if self.metrics is not None:
            self.metrics.requests.labels(self.source, status_class(status)).inc()

    def _log_fields(self, request: PageRequest) -> dict[str, Any]:
        return {"source": self.source, "url": self.redactor.url(request.full_url())}


def paging_params(spec: Any) -> set[str]:
    """Query parameters the spec names for paging: a cursor called ``pageToken`` is no credential,
    and redacting it would make every page's URL look the same."""
    names = {
        getattr(spec.pagination, attr, None)
        for attr in ("param", "size_param", "offset_param", "limit_param")
    }
    if spec.incremental is not None:
        names.update((spec.incremental.param, spec.incremental.end_param))
    return {n for n in names if isinstance(n, str)}


async def get_page(
    session: aiohttp.ClientSession,
    request: PageRequest,
    *,
    inspect: Inspect | None = None,
    **client: Any,
) -> Response:
    """One request by a client made for it alone (``client``: :class:`PageClient`'s keywords), for
    a tool or test that has a URL but no source."""
    return await PageClient(**client).get(session, request, inspect=inspect)
