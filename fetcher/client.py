"""One page request with the fetcher's retry policy: backoff with jitter, Retry-After, bounded attempts."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from multidict import CIMultiDictProxy

from restlake.errors import PermanentError, TransientError
from restlake.fetcher.auth import Authenticator, OAuth2ClientCredentials
from restlake.fetcher.pagination.base import PageRequest

log = logging.getLogger(__name__)

# Bodies above this are refused: a runaway endpoint must not take the fetcher's memory with it.
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


class HttpStatusError(TransientError):
    """A 5xx, 408 or 429: the server may answer later."""


class HttpClientError(PermanentError):
    """A 4xx other than 408/429: the request itself is wrong (auth, URL, params)."""


class BadPageError(TransientError):
    """The body could not be used (malformed JSON, wrong content type, too large, not UTF-8)."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: CIMultiDictProxy[str]
    body: Any  # parsed JSON; None for 304
    size: int


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


async def _read_json(resp: aiohttp.ClientResponse, max_bytes: int) -> tuple[Any, int]:
    declared = resp.content_length
    if declared is not None and declared > max_bytes:
        raise BadPageError(f"body of {declared} bytes exceeds the {max_bytes}-byte cap")
    raw = bytearray()
    async for chunk in resp.content.iter_chunked(1 << 16):
        raw += chunk
        if len(raw) > max_bytes:
            raise BadPageError(f"body exceeds the {max_bytes}-byte cap")
    ctype = resp.headers.get("Content-Type", "")
    if raw and "json" not in ctype.lower():
        raise BadPageError(f"expected a JSON content type, got {ctype or 'none'!r}")
    if not raw:
        return None, 0
    try:
        text = raw.decode(resp.charset or "utf-8")
    except (UnicodeDecodeError, LookupError) as exc:
        raise BadPageError(f"body is not valid {resp.charset or 'utf-8'} text: {exc}") from exc
    try:
        return json.loads(text), len(raw)
    except json.JSONDecodeError as exc:
        raise BadPageError(f"malformed JSON at byte {exc.pos}: {exc.msg}") from exc


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
) -> Response:
    """GET one page, retrying what the policy allows; raises the last error's type when attempts run out."""
    auth = auth or Authenticator()
    attempt = 0
    refreshed_token = False
    while True:
        attempt += 1
        retry_after: float | None = None
        try:
            send_headers, send_params = dict(headers), dict(request.params)
            await auth.apply(session, send_headers, send_params)
            async with session.get(
                request.url,
                params=send_params,
                headers=send_headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=True,
            ) as resp:
                if resp.status == 304:
                    return Response(304, resp.headers, None, 0)
                if resp.status in (408, 429) or resp.status >= 500:
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    raise HttpStatusError(f"HTTP {resp.status} from {request.url}", retry_after=retry_after)
                if resp.status == 401 and isinstance(auth, OAuth2ClientCredentials) and not refreshed_token:
                    # An OAuth2 token can be revoked before its expiry: fetch a new one, once.
                    auth.invalidate()
                    refreshed_token = True
                    attempt -= 1
                    continue
                if resp.status >= 400:
                    raise HttpClientError(f"HTTP {resp.status} from {request.url}: the request was refused")
                body, size = await _read_json(resp, max_body_bytes)
                return Response(resp.status, resp.headers, body, size)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
            error: TransientError = TransientError(f"{type(exc).__name__} fetching {request.url}: {exc}")
        except TransientError as exc:
            error = exc
        if attempt >= policy.max_attempts:
            raise error
        wait = policy.delay(attempt, error.retry_after)
        log.warning(
            "retrying page after %s (attempt %d/%d, waiting %.2fs)",
            error,
            attempt,
            policy.max_attempts,
            wait,
            extra=log_extra,
        )
        await asyncio.sleep(wait)
