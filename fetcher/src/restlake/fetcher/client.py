"""One page request with the fetcher's retry policy: backoff with jitter, Retry-After, bounded attempts.

Around every attempt: the source's rate limiter (wait for budget, read the server's rate-limit
headers), the endpoint's circuit breaker, and metrics. What to do with a failure is decided by its
type: ``TransientError`` is retried until the attempts run out, ``PermanentError`` is not, and
``CircuitOpenError`` stops at once (sleeping out a cool-down inside one page would stall the pass).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from restlake.errors import PermanentError, RestlakeError, TransientError
from restlake.fetcher.auth import Authenticator, OAuth2ClientCredentials
from restlake.fetcher.breaker import CircuitBreaker, CircuitOpenError
from restlake.fetcher.metrics import FetcherMetrics, status_class
from restlake.fetcher.origin import RedirectPolicy, Redirects, same_origin
from restlake.fetcher.pagination.base import PageRequest
from restlake.fetcher.ratelimit import RateLimiter
from restlake.fetcher.records import LineFormatError, parse_lines
from restlake.fetcher.redaction import Redactor

log = logging.getLogger(__name__)

# Bodies above this are refused: a runaway endpoint must not take the fetcher's memory with it.
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


class HttpStatusError(TransientError):
    """A 5xx, 408 or 429: the server may answer later."""

    def __init__(self, message: str, *, status: int, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status

    @property
    def reason(self) -> str:
        if self.status == 429:
            return "rate_limited"
        return "timeout" if self.status == 408 else "http_5xx"


class HttpClientError(PermanentError):
    """A 4xx other than 408/429: the request itself is wrong (auth, URL, params)."""

    reason = "http_4xx"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class RequestTimeoutError(TransientError):
    """No complete answer within spec.request.timeout."""

    reason = "timeout"


class ConnectionFailedError(TransientError):
    """The connection could not be made or broke mid-response."""

    reason = "connection"


class BadPageError(TransientError):
    """The body could not be used (malformed JSON, wrong content type, too large, not UTF-8).

    ``raw`` keeps the bytes received (up to the cap) so the dead-letter event can reference them.
    """

    def __init__(self, message: str, *, reason: str, status: int = 200, raw: bytes | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.raw = raw


def new_session(connector: aiohttp.BaseConnector | None = None) -> aiohttp.ClientSession:
    """The HTTP session the fetcher's sources share, with no cookie jar.

    aiohttp's jar keeps what a response's ``Set-Cookie`` says and sends it to every URL of the
    same domain, whatever the port: one source's session cookie would reach another source's API
    on the same host. Credentials a spec configures (``apiKey in: cookie``) are set per request by
    ``auth``, only for the source's own origin.
    """
    return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())


def failure_reason(exc: BaseException) -> str:
    """The bounded reason code of a page failure (the ``reason`` label of bad-page metrics)."""
    if isinstance(exc, CircuitOpenError):
        return "circuit_open"
    return str(getattr(exc, "reason", "other"))


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


# Content types a line format may arrive with; servers label JSON Lines and CSV inconsistently.
_LINE_TYPES = {
    "jsonl": ("json", "ndjson", "jsonl", "text/plain", "octet-stream"),
    "csv": ("csv", "text/plain", "octet-stream"),
}


async def _read_json(resp: aiohttp.ClientResponse, max_bytes: int, fmt: str = "json") -> tuple[Any, int]:
    """The body parsed per ``records.format``: one JSON document, or the records of a jsonl/csv body."""
    declared = resp.content_length
    if declared is not None and declared > max_bytes:
        raise BadPageError(
            f"body of {declared} bytes exceeds the {max_bytes}-byte cap",
            reason="oversized_body",
            status=resp.status,
        )
    raw = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 16):
        raw += chunk
        if len(raw) > max_bytes:
            raise BadPageError(
                f"body exceeds the {max_bytes}-byte cap",
                reason="oversized_body",
                status=resp.status,
                raw=bytes(raw),
            )
    ctype = resp.headers.get("Content-Type", "")
    accepted = _LINE_TYPES.get(fmt, ("json",))
    if raw and not any(kind in ctype.lower() for kind in accepted) and (fmt == "json" or ctype):
        raise BadPageError(
            f"expected a {fmt} content type ({', '.join(accepted)}), got {ctype or 'none'!r}",
            reason="wrong_content_type",
            status=resp.status,
            raw=bytes(raw),
        )
    if not raw:
        return None, 0

    def unusable(message: str, reason: str) -> BadPageError:
        return BadPageError(message, reason=reason, status=resp.status, raw=bytes(raw))

    try:
        text = raw.decode(resp.charset or "utf-8")
    except (UnicodeDecodeError, LookupError) as exc:
        raise unusable(f"body is not valid {resp.charset or 'utf-8'} text: {exc}", "bad_encoding") from exc
    if fmt != "json":
        try:
            return parse_lines(text, fmt), len(raw)
        except LineFormatError as exc:
            raise unusable(f"malformed {fmt} body at {exc}", f"malformed_{fmt}") from exc
    try:
        return json.loads(text), len(raw)
    except json.JSONDecodeError as exc:
        raise unusable(f"malformed JSON at byte {exc.pos}: {exc.msg}", "malformed_json") from exc
    except RecursionError as exc:
        raise unusable("JSON nested deeper than the parser allows", "malformed_json") from exc
    except ValueError as exc:  # Python's int-string limit: a number of thousands of digits
        raise unusable(f"JSON holds a value Python refuses to parse: {exc}", "malformed_json") from exc


async def get_page(
    session: aiohttp.ClientSession,
    request: PageRequest,
    *,
    headers: dict[str, str],
    auth: Authenticator | None = None,
    timeout: float,
    policy: RetryPolicy,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    log_extra: dict[str, Any] | None = None,
    limiter: RateLimiter | None = None,
    breaker: CircuitBreaker | None = None,
    metrics: FetcherMetrics | None = None,
    source: str = "",
    redactor: Redactor | None = None,
    credential_origin: URL | None = None,
    redirects: Redirects = "sameOrigin",
    records_format: str = "json",
    inspect: Callable[[Response], None] | None = None,
) -> Response:
    """Request one page (GET, or POST with its JSON body), retrying what the policy allows.

    Raises the last error's type when attempts run out. A POST is retried like a GET: the POSTs a
    source makes are queries (Notion's database query, a search), which read and change nothing.

    Credentials go only to ``credential_origin`` (by default the origin of ``request.url``); how
    redirects are followed is :class:`RedirectPolicy`'s business. The raised error carries
    ``attempts`` (requests made for this page).

    ``inspect`` looks at a 2xx body before it is accepted (records path, pagination values, ids) and
    raises ``BadPageError`` when the page cannot be used; that is retried like a malformed body.
    """
    auth = auth or Authenticator()
    redactor = redactor or Redactor(auth.secret_values, auth.secret_params)
    origin = credential_origin if credential_origin is not None else request.url
    if not same_origin(request.url, origin):
        log.info(
            "page %s is on another origin than spec.request.url: requesting it without credentials",
            redactor.url(request.full_url()),
            extra=log_extra,
        )
    redirect_policy = RedirectPolicy(origin, redirects, redactor)
    # Error messages are built redacted: whoever catches one may print it.
    shown = redactor.url(request.url)
    attempt = 0
    refreshed_token = False
    while True:
        attempt += 1
        status: int | None = None
        try:
            if breaker is not None:
                breaker.before_request()
            if limiter is not None:
                waited = await limiter.acquire()
                if waited and metrics is not None:
                    metrics.rate_limit_wait.labels(source).inc(waited)
            try:
                resp = await redirect_policy.send(
                    session,
                    request,
                    headers=headers,
                    auth=auth,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                )
                async with resp:
                    status = resp.status
                    if limiter is not None:
                        limiter.observe(resp.headers)
                    if resp.status == 304:
                        result = Response(304, resp.headers, None, 0, attempt)
                    elif resp.status in (408, 429) or resp.status >= 500:
                        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                        if retry_after is not None and limiter is not None:
                            limiter.hold(retry_after)
                        raise HttpStatusError(
                            f"HTTP {resp.status} from {shown}",
                            status=resp.status,
                            retry_after=retry_after,
                        )
                    elif (
                        resp.status == 401
                        and isinstance(auth, OAuth2ClientCredentials)
                        and not refreshed_token
                    ):
                        # An OAuth2 token can be revoked before its expiry: fetch a new one, once.
                        auth.invalidate()
                        refreshed_token = True
                        attempt -= 1
                        if metrics is not None:
                            metrics.requests.labels(source, status_class(status)).inc()
                        continue
                    elif resp.status >= 400:
                        raise HttpClientError(
                            f"HTTP {resp.status} from {shown}: the request was refused "
                            "(check the credentials and spec.request)",
                            status=resp.status,
                        )
                    else:
                        body, size = await _read_json(resp, max_body_bytes, records_format)
                        result = Response(resp.status, resp.headers, body, size, attempt)
                        if inspect is not None:
                            inspect(result)
            except TimeoutError as exc:
                raise RequestTimeoutError(f"no complete answer from {shown} within {timeout:g}s") from exc
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                raise ConnectionFailedError(
                    redactor.text(f"{type(exc).__name__} fetching {shown}: {exc}")
                ) from exc
            if metrics is not None:
                metrics.requests.labels(source, status_class(status)).inc()
            if breaker is not None:
                breaker.record_success()
            return result
        except CircuitOpenError as exc:
            exc.attempts = attempt  # type: ignore[attr-defined]
            if metrics is not None:
                metrics.circuit_open.labels(source).inc()
            raise
        except RestlakeError as exc:
            if metrics is not None:
                metrics.requests.labels(source, status_class(status)).inc()
            if breaker is not None:
                if isinstance(exc, RequestTimeoutError | ConnectionFailedError) or (
                    isinstance(exc, HttpStatusError) and exc.status != 429
                ):
                    breaker.record_failure()
                else:
                    breaker.record_success()  # the endpoint answered; what it said is another matter
            exc.attempts = attempt  # type: ignore[attr-defined]
            if not isinstance(exc, TransientError) or attempt >= policy.max_attempts:
                raise
            error = exc
        wait = policy.delay(attempt, error.retry_after)
        if metrics is not None:
            metrics.retries.labels(source).inc()
            if isinstance(error, HttpStatusError) and error.status == 429:
                metrics.rate_limit_wait.labels(source).inc(wait)
        log.warning(
            "retrying page after %s (attempt %d/%d, waiting %.2fs)",
            redactor.text(str(error)),
            attempt,
            policy.max_attempts,
            wait,
            extra=log_extra,
        )
        await asyncio.sleep(wait)
