"""What a page request can give up with: one base declaring what the pass reads off a failure.

The retry policy is carried by the type (``TransientError`` retried, ``PermanentError`` not); what
the pass needs to report a page it gave up on (the bad-page metric, the dead-letter event) is
declared once on :class:`PageError`, so the pass reads typed fields instead of guessing with
``getattr``. Auth, origin, breaker and pagination errors derive from it as well as the HTTP ones.
"""

from __future__ import annotations

from restlake.errors import PermanentError, RestlakeError, TransientError


class PageError(RestlakeError):
    """A page could not be had or used.

    ``reason`` is the bounded bad-page reason code (the metric label and the dead-letter field);
    ``status`` the HTTP status the failure came with, if one came; ``raw`` the body bytes received
    (up to the cap), for the dead-letter event's digest and excerpt; ``attempts`` the requests made
    for the page, which the page client sets when it gives up. ``endpoint_failed`` says the
    endpoint itself failed (no answer, a 5xx or 408): a failure for its circuit breaker, where any
    other answer shows it up.
    """

    reason: str = "other"
    status: int | None = None
    raw: bytes | None = None
    attempts: int = 1
    endpoint_failed: bool = False


class HttpStatusError(TransientError, PageError):
    """A 5xx, 408 or 429: the server may answer later."""

    def __init__(self, message: str, *, status: int, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status
        if status == 429:
            self.reason = "rate_limited"  # the budget is spent; the endpoint is up
        else:
            self.reason = "timeout" if status == 408 else "http_5xx"
            self.endpoint_failed = True


class HttpClientError(PermanentError, PageError):
    """A 4xx other than 408/429: the request itself is wrong (auth, URL, params)."""

    reason = "http_4xx"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class RequestTimeoutError(TransientError, PageError):
    """No complete answer within spec.request.timeout."""

    reason = "timeout"
    endpoint_failed = True


class ConnectionFailedError(TransientError, PageError):
    """The connection could not be made or broke mid-response."""

    reason = "connection"
    endpoint_failed = True


class BadPageError(TransientError, PageError):
    """The body could not be used (malformed JSON, wrong content type, too large, not UTF-8).

    ``raw`` keeps the bytes received (up to the cap) so the dead-letter event can reference them.
    """

    def __init__(self, message: str, *, reason: str, status: int = 200, raw: bytes | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.raw = raw
