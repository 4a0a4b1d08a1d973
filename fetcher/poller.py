"""One source's fetch pass: page through the endpoint, publish every record, then advance state.

Conditional requests and pagination
-----------------------------------
Every page URL of the chain is requested on every pass, with the validators (``If-None-Match`` /
``If-Modified-Since``) stored for that URL. A 304 answers for that page only: a later page can change
while page 1 does not (a record on page 3 revised, a last page filled up). So a 304 does not end the
pass; it continues with the *continuation* stored next to the validators: the request for the page
after it, as computed when the page was last delivered. That continuation is exact, because the
representation (body and the validators' view of its headers) is the one it was computed from. A
changed page is answered 200 and gives a fresh continuation. Hence a change anywhere in the chain is
always seen; the price is one cheap request per page per pass, with nothing produced downstream.

Conditional requests are GET-only. A POST source (a search or database query, its page parameter
in the JSON body) is read whole on every pass; its pages are told apart by URL *and* body.

State advances only after delivery
----------------------------------
Records are produced while paging; every ``checkpoint_pages`` pages and at the end, the fetcher waits
until Kafka confirmed everything produced so far, then commits the validators and continuations of
those pages in one transaction. The incremental watermark (the largest cursor value seen, including
the stored maxima of pages answered 304) is committed only at the end of a pass that walked the whole
chain without error. A crash anywhere loses at most unconfirmed work, which the next pass refetches
with the same idempotency keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, overload

import aiohttp
from confluent_kafka import KafkaException
from yarl import URL

from restlake.contracts.envelope import Envelope, ParentRef, RequestInfo
from restlake.errors import RestlakeError
from restlake.fetcher.auth import Authenticator, make_authenticator
from restlake.fetcher.breaker import BreakerRegistry
from restlake.fetcher.client import (
    DEFAULT_MAX_BODY_BYTES,
    BadPageError,
    Response,
    RetryPolicy,
    failure_reason,
    get_page,
)
from restlake.fetcher.deadletter import DeadLetter, body_reference, dlq_topic
from restlake.fetcher.metrics import FetcherMetrics
from restlake.fetcher.pagination import Page, PageRequest, make_paginator
from restlake.fetcher.producer import DeliveryError, DeliveryTracker, EnvelopeProducer, RecordTooLargeError
from restlake.fetcher.ratelimit import RateLimiter
from restlake.fetcher.records import RecordExtractor, compile_path, line_of, scalar_text
from restlake.fetcher.redaction import Redactor
from restlake.fetcher.state import (
    MAX_BOUNDARY,
    MemoryStateStore,
    PageState,
    StateStore,
    boundary_digest,
    pass_summary,
    request_from_json,
    request_to_json,
)
from restlake.fetcher.watermark import newest, request_value, sort_key
from restlake.fetcher.windows import Window, WindowedLoad

log = logging.getLogger(__name__)

# Pages produced between two delivery confirmations + state commits: bounds what a crash refetches.
DEFAULT_CHECKPOINT_PAGES = 20


@dataclass
class PassStats:
    """What one pass did; ``complete`` is False when it stopped early on an error or a shutdown."""

    requests: int = 0
    pages: int = 0
    not_modified: int = 0
    records: int = 0
    produced: int = 0
    skipped: int = 0  # records at the watermark already delivered unchanged, not published again
    bytes_received: int = 0
    bad_pages: int = 0
    dead_letters: int = 0
    rejected: int = 0  # records dead-lettered instead of published (over the size limit, unserializable)
    missing_ids: int = 0  # records whose idPath was missing or null
    future_cursors: int = 0  # records whose cursor lay beyond now + maxFutureSkew
    complete: bool = False
    truncated: bool = False  # stopped with pages left: maxPages reached, or a page repeated the previous one
    stopped: bool = False  # stopped by a shutdown request
    watermark: str | None = None  # the watermark in force after the pass
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _paging_params(spec: Any) -> set[str]:
    """Query parameters the spec names for paging: a cursor called ``pageToken`` is no credential,
    and redacting it would make every page's URL look the same."""
    names = {
        getattr(spec.pagination, attr, None)
        for attr in ("param", "size_param", "offset_param", "limit_param")
    }
    if spec.incremental is not None:
        names.update((spec.incremental.param, spec.incremental.end_param))
    return {n for n in names if isinstance(n, str)}


@dataclass(frozen=True)
class FetchTarget:
    """One URL of a child source (``spec.parent``): the request.url filled from one parent record,
    the state scope its validators and watermark live under, and the parent its records name.

    A pass over a target is an ordinary pass (``fetch_pass(..., target=...)``): the child source's
    pagination, conditional requests, watermark and rate limiter, only the first URL and the state
    row set differ. ``fetcher.children`` builds one per due parent record.
    """

    url: str
    scope: str
    parent: ParentRef | None = None


class _PassAbort(Exception):
    """Internal: the pass cannot go on (delivery or state failure); the message is in stats.error."""


class SourceFetcher:
    """Fetches one IngestionSource into its Kafka topic, remembering validators and watermark."""

    def __init__(
        self,
        source: Any,
        producer: EnvelopeProducer,
        topic: str,
        *,
        auth: Authenticator | None = None,
        policy: RetryPolicy | None = None,
        state_store: StateStore | None = None,
        metrics: FetcherMetrics | None = None,
        limiter: RateLimiter | None = None,
        breakers: BreakerRegistry | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        checkpoint_pages: int = DEFAULT_CHECKPOINT_PAGES,
        dead_letter_topic: str | None = None,
        conditional: bool = True,
        delivery_timeout: float = 120.0,
    ) -> None:
        spec = source.spec
        self.name: str = source.identity
        self.spec = spec
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic or dlq_topic(topic)
        self.producer = producer
        self.policy = policy or RetryPolicy()
        self.extractor = RecordExtractor(spec.records.path, spec.records.id_path, spec.records.version_path)
        self.paginator = make_paginator(spec.pagination)
        self.headers = dict(spec.request.headers)
        self.auth = auth if auth is not None else make_authenticator(spec.request.auth)
        self.redactor = Redactor(self.auth.secret_values, self.auth.secret_params, _paging_params(spec))
        # Credentials go only to the origin of spec.request.url, never to one a response names.
        self.origin = URL(spec.request.url)
        self.redirects = spec.request.redirects
        self.timeout = spec.request.timeout.total_seconds()
        # Without a store the fetcher still sends validators, but only remembers them for its lifetime.
        self.state_store = state_store if state_store is not None else MemoryStateStore()
        self.metrics = metrics or FetcherMetrics()
        self.metrics.init_source(self.name)
        rate = spec.rate_limit
        self.limiter = limiter or RateLimiter(
            rate.requests_per_second, rate.burst, respect_headers=rate.respect_headers
        )
        self.breakers = breakers or BreakerRegistry()
        self.max_body_bytes = max_body_bytes
        self.checkpoint_pages = max(1, checkpoint_pages)
        self.conditional = conditional
        self.delivery_timeout = delivery_timeout
        self.incremental = spec.incremental
        self._cursor = compile_path(spec.incremental.cursor_path) if spec.incremental else None
        self.max_future_skew = spec.incremental.max_future_skew.timedelta if spec.incremental else None
        # incremental.window: the first load walks time windows, each one a pass (fetcher/windows.py).
        self.windowed_load = WindowedLoad.of(spec.incremental)
        # Without an idPath the content hash *is* the documented id; the policy is for ids that vanish.
        self.on_missing_id: str | None = spec.records.on_missing_id if spec.records.id_path else None

    def __repr__(self) -> str:
        return f"SourceFetcher(source={self.name!r}, topic={self.topic!r})"

    # -- requests ---------------------------------------------------------------------------------

    @overload
    def _strip_secrets(self, request: PageRequest) -> PageRequest: ...
    @overload
    def _strip_secrets(self, request: None) -> None: ...
    def _strip_secrets(self, request: PageRequest | None) -> PageRequest | None:
        """Drop credential parameters a next link may echo back (auth adds them again on send).

        The cursor is scrubbed too: for link pagination it is the next URL, which lands in envelopes
        and in the stored continuation.
        """
        if request is None:
            return request
        params = {k: v for k, v in request.params.items() if k not in self.auth.secret_params}
        cursor = self.redactor.text(request.cursor) if request.cursor is not None else None
        return replace(request, params=params, cursor=cursor)

    def _first_request(
        self, watermark: str | None, url_text: str | None = None, window: Window | None = None
    ) -> PageRequest:
        url = URL(url_text or self.spec.request.url, encoded=url_text is not None)
        params = {**dict(url.query), **self.spec.request.params}
        if self.incremental is not None and window is not None:
            # A window of the first load: its bounds, not the watermark (nor a lookback: windows abut).
            params[self.incremental.param] = window.start
            params[str(self.incremental.end_param)] = window.end
        elif self.incremental is not None and watermark is not None:
            params[self.incremental.param] = request_value(watermark, self.incremental.lookback.timedelta)
        request = self.spec.request
        body = dict(request.body) if request.body is not None else None
        first = self.paginator.first(url.with_query(None), params, method=request.method, body=body)
        return self._strip_secrets(first)

    def _record_cursor(self, record: Any) -> str | None:
        return scalar_text(self._cursor(record)) if self._cursor is not None else None

    def _page_reader(self, request: PageRequest) -> tuple[Callable[[Response], None], list[_ReadPage]]:
        """An ``inspect`` hook for ``get_page`` and the list it leaves the page's reading in.

        Everything that can make a 2xx page unusable is checked inside the request's retry loop, so
        such a page is retried, then dead-lettered, like a malformed body.
        """
        read: list[_ReadPage] = []

        def inspect(response: Response) -> None:
            read.clear()
            try:
                records = self.extractor.records(response.body)
            except ValueError as exc:
                raise BadPageError(str(exc), reason="no_record_list", status=response.status) from exc
            if self.on_missing_id == "fail":
                absent = [i for i, r in enumerate(records) if self.extractor.external_id(r) in (None, "")]
                missing = len(absent)
                if missing:
                    lines = [line_of(records, i) for i in absent[:10]]
                    where = f" (lines {', '.join(map(str, lines))})" if None not in lines else ""
                    raise BadPageError(
                        f"{missing} of {len(records)} record(s) have no value at records.idPath "
                        f"{self.spec.records.id_path!r}{where} (records.onMissingId: fail; set it to "
                        "quarantine or hash to accept such records)",
                        reason="missing_id",
                        status=response.status,
                    )
            try:
                following = self.paginator.next(Page(request, response.headers, response.body, records))
            except (ValueError, TypeError, ArithmeticError) as exc:
                # e.g. int() of a totalPath value that is not a number: the page cannot say what follows.
                raise BadPageError(
                    f"pagination value in the page is unusable: {type(exc).__name__}: {exc}",
                    reason="bad_pagination",
                    status=response.status,
                ) from exc
            except RestlakeError as exc:
                read.append(_ReadPage(records, None, refused=exc))
                return
            read.append(_ReadPage(records, following))

        return inspect, read

    # -- the pass ---------------------------------------------------------------------------------
    async def fetch_pass(
        self,
        session: aiohttp.ClientSession,
        stop: asyncio.Event | None = None,
        *,
        target: FetchTarget | None = None,
        window: Window | None = None,
    ) -> PassStats:
        """Page through the endpoint once; state advances only over records Kafka confirmed.

        ``target``: one child URL of a ``spec.parent`` source, its state kept under its own scope.
        With ``incremental.window``, until the first load is done a call walks its windows instead,
        each one a pass of its own (``window``), and returns their sum (``WindowedLoad``). Windows
        are the source's own first load: a child target's pass is not windowed.
        """
        if window is None and target is None and self.windowed_load is not None:
            walked = await self.windowed_load.walk(self, session, stop)
            if walked is not None:
                return walked
        stats = PassStats()
        started = time.monotonic()
        fields: dict[str, Any] = {"source": self.name}
        scope = target.scope if target is not None else self.name
        parent = target.parent if target is not None else None
        try:
            state = await self.state_store.load(scope)
        except RestlakeError as exc:
            stats.error = f"could not load fetch state: {exc}"
            log.error("pass skipped: %s", stats.error, extra=fields)
            self.metrics.passes.labels(self.name, "error").inc()
            return stats
        watermark = state.watermark
        if watermark is None and self.incremental is not None:
            watermark = self.incremental.initial_value
            if self.windowed_load is not None:
                # A first load that saw no cursor at all: poll on from where its last window ended.
                watermark = self.windowed_load.resume_value(state)
        stats.watermark = state.watermark
        # Records at the stored watermark come back on every pass (``since`` is inclusive); those
        # whose key the boundary holds were delivered unchanged and are not published again.
        skip_at = sort_key(state.watermark) if state.watermark is not None and state.boundary else None
        top: tuple[int, object] | None = None  # the largest cursor seen in this pass, and its records
        top_keys: set[str] = set()
        request: PageRequest | None = self._first_request(watermark, target.url if target else None, window)
        seen: set[str] = set()
        visited: set[str] = set()
        pending: list[PageState] = []
        tracker = DeliveryTracker()
        produced_unconfirmed = 0
        max_cursor: str | None = None
        previous_signature: str | None = None

        async def checkpoint(*, final: bool) -> None:
            nonlocal tracker, produced_unconfirmed, pending
            try:
                await self.producer.confirm(tracker, self.delivery_timeout)
            except DeliveryError as exc:
                self.metrics.delivery_errors.labels(self.name).inc(tracker.failed + tracker.pending)
                stats.error = stats.error or str(exc)
                log.error("delivery not confirmed, state not advanced: %s", exc, extra=fields)
                raise _PassAbort from exc
            refused = list(tracker.too_large)
            if refused:
                # The broker's limit can be below the producer's: dead-letter what it refused, confirm those.
                extra = DeliveryTracker()
                for exc in refused:
                    await self._reject_record(exc, None, "", None, stats, extra, fields)
                try:
                    await self.producer.confirm(extra, self.delivery_timeout)
                except DeliveryError as exc:
                    stats.error = stats.error or str(exc)
                    log.error("dead-letter events not confirmed, state not advanced: %s", exc, extra=fields)
                    raise _PassAbort from exc
            stats.produced += produced_unconfirmed - len(refused)
            self.metrics.records_produced.labels(self.name).inc(produced_unconfirmed - len(refused))
            walked_all = final and stats.error is None and not stats.stopped and not stats.truncated
            new_watermark = newest(state.watermark, max_cursor) if walked_all and self._cursor else None
            boundary: frozenset[str] | None = None
            if new_watermark is not None:
                if top is not None and top == sort_key(new_watermark):
                    boundary = frozenset(top_keys)
                elif state.watermark is not None and sort_key(new_watermark) == sort_key(state.watermark):
                    # No record at the watermark this time (a 304, a lookback window): keep the old set.
                    boundary = state.boundary
            # A window walked whole moves the first load on, in the transaction of its watermark.
            progress = (
                self.windowed_load.progress(window) if walked_all and window and self.windowed_load else None
            )
            try:
                await self.state_store.commit(
                    scope,
                    pending,
                    watermark=new_watermark,
                    boundary=boundary,
                    keep_only=visited if walked_all else None,
                    window=progress,
                )
            except RestlakeError as exc:
                stats.error = stats.error or f"could not save fetch state: {exc}"
                log.error("fetch state not saved: %s", exc, extra=fields)
                raise _PassAbort from exc
            if new_watermark is not None:
                stats.watermark = new_watermark
            tracker, produced_unconfirmed, pending = DeliveryTracker(), 0, []

        try:
            while request is not None:
                if tracker.failed:
                    await checkpoint(final=False)  # raises: a failed delivery ends the pass
                if stop is not None and stop.is_set():
                    stats.stopped = True
                    log.info("shutdown requested; stopping after the current page", extra=fields)
                    break
                if self.paginator.max_pages and stats.pages >= self.paginator.max_pages:
                    self._stop_paging(
                        "max_pages",
                        f"stopped at spec.pagination.maxPages={self.paginator.max_pages} with pages left: "
                        "raise maxPages if the chain really is longer, or check that the endpoint honours "
                        "its pagination parameter",
                        stats,
                        fields,
                    )
                    break
                page_url = self.redactor.url(request.full_url())
                # A POST source asks one URL for every page; its body tells the pages apart.
                page_id = request.identity(page_url)
                fields = {"source": self.name, "url": page_url}
                if page_id in seen:
                    # A next link or cursor that points back at a page already read would loop forever.
                    log.warning("pagination repeated %s; stopping the pass", page_id, extra=fields)
                    break
                seen.add(page_id)
                prior = state.page(page_id)
                headers = dict(self.headers)
                # Conditional requests are GET-only: a POST query's answer has no validators to reuse.
                conditional = self.conditional and request.method == "GET"
                if conditional and prior is not None and prior.has_validators:
                    headers.update(prior.conditional_headers())
                inspect, read = self._page_reader(request)
                try:
                    response = await get_page(
                        session,
                        request,
                        headers=headers,
                        auth=self.auth,
                        timeout=self.timeout,
                        policy=self.policy,
                        max_body_bytes=self.max_body_bytes,
                        log_extra=fields,
                        limiter=self.limiter,
                        breaker=self.breakers.for_url(request.url),
                        metrics=self.metrics,
                        source=self.name,
                        redactor=self.redactor,
                        credential_origin=self.origin,
                        redirects=self.redirects,
                        records_format=self.spec.records.format,
                        inspect=inspect,
                    )
                except RestlakeError as exc:
                    stats.requests += int(getattr(exc, "attempts", 1))
                    await self._record_bad_page(exc, page_url, stats, tracker, fields)
                    break
                stats.requests += response.attempts
                visited.add(prior.key if prior is not None else PageState(page_id).key)
                if response.status == 304:
                    stats.not_modified += 1
                    self.metrics.not_modified.labels(self.name).inc()
                    if prior is None:
                        # Nothing was asked conditionally, so nothing can be reused: treat as a bad page.
                        unexpected = BadPageError(
                            f"HTTP 304 from {page_url} without a conditional request",
                            reason="unexpected_304",
                            status=304,
                        )
                        await self._record_bad_page(unexpected, page_url, stats, tracker, fields)
                        break
                    max_cursor = newest(max_cursor, prior.max_cursor)
                    request = request_from_json(prior.next)
                    previous_signature = None
                    continue
                stats.pages += 1
                stats.bytes_received += response.size
                fetched_at = datetime.now(UTC)
                read_page = read[0]
                records, following = read_page.records, read_page.following
                etag = response.headers.get("ETag")
                last_modified = response.headers.get("Last-Modified")
                info = RequestInfo(
                    url=page_url,
                    status=response.status,
                    etag=etag,
                    last_modified=last_modified,
                    cursor=request.cursor,
                )
                wrapped = self._wrap(records, info, fetched_at, fields, stats, parent)
                signature = _page_signature(wrapped)
                if signature is not None and signature == previous_signature:
                    self._stop_paging(
                        "repeated_page",
                        f"page {page_url} has the same {len(records)} record(s) as the page before it: the "
                        "endpoint seems to ignore the pagination parameter; the pass stops here (check "
                        "spec.pagination)",
                        stats,
                        fields,
                    )
                    break
                previous_signature = signature
                page_max: str | None = None
                page_rank: tuple[int, object] | None = None
                future_limit = self._future_limit()
                future: list[str] = []
                published = 0
                for index, (record, envelope) in enumerate(wrapped):
                    if isinstance(envelope, Exception):
                        await self._reject_record(
                            envelope,
                            None,
                            page_url,
                            response.status,
                            stats,
                            tracker,
                            fields,
                            line=line_of(records, index),
                        )
                        continue
                    cursor = self._record_cursor(record)
                    if cursor is not None:
                        # One parse of the cursor serves the page's maximum, the boundary and the skip.
                        rank = sort_key(cursor)
                        if future_limit is not None and rank[0] == 2 and rank > future_limit:
                            # Delivered, but never the watermark: every later request would ask for
                            # records newer than it, and ingestion would stop for good.
                            future.append(cursor)
                            cursor = None
                    if cursor is not None:
                        if page_rank is None or rank > page_rank:
                            page_max, page_rank = cursor, rank
                        # Only records at or above the running top, or at the stored watermark, need
                        # their key: the others can neither join the boundary nor be skipped.
                        if top is None or rank >= top or rank == skip_at:
                            digest = boundary_digest(envelope.idempotency_key)
                            if top is None or rank > top:
                                top, top_keys = rank, {digest}
                            elif rank == top and len(top_keys) <= MAX_BOUNDARY:
                                top_keys.add(digest)
                            if rank == skip_at and digest in state.boundary:
                                stats.skipped += 1
                                continue
                    try:
                        await self.producer.publish(self.topic, envelope, tracker)
                    except DeliveryError as exc:
                        self.metrics.delivery_errors.labels(self.name).inc(tracker.failed)
                        stats.error = stats.error or str(exc)
                        log.error("delivery failing, pass aborted, state not advanced: %s", exc, extra=fields)
                        raise _PassAbort from exc
                    except (RecordTooLargeError, ValueError, RecursionError) as exc:
                        await self._reject_record(
                            exc, envelope, page_url, response.status, stats, tracker, fields
                        )
                        continue
                    published += 1
                if future:
                    stats.future_cursors += len(future)
                    self.metrics.future_cursor.labels(self.name).inc(len(future))
                    log.warning(
                        "%d record(s) have a cursor beyond now + incremental.maxFutureSkew (%s), e.g. %r: "
                        "delivered, not used for the watermark",
                        len(future),
                        self.spec.incremental.max_future_skew,
                        future[0],
                        extra=fields,
                    )
                stats.records += len(records)
                produced_unconfirmed += published
                if read_page.refused is not None:
                    # The page's records are produced, its state is not saved: the next pass reads it again.
                    await self._record_bad_page(
                        read_page.refused, page_url, stats, tracker, fields, status=response.status
                    )
                    break
                following = self._strip_secrets(following)
                max_cursor = newest(max_cursor, page_max)
                pending.append(
                    PageState(
                        url=page_id,
                        etag=etag,
                        last_modified=last_modified,
                        next=request_to_json(following),
                        max_cursor=page_max,
                    )
                )
                request = following
                if len(pending) >= self.checkpoint_pages:
                    await checkpoint(final=False)
            await checkpoint(final=True)
        except _PassAbort:
            pass
        stats.complete = stats.error is None and not stats.stopped
        outcome = "complete" if stats.complete else ("stopped" if stats.stopped else "error")
        self.metrics.passes.labels(self.name, outcome).inc()
        elapsed = time.monotonic() - started
        self.metrics.pass_seconds.labels(self.name).observe(elapsed)
        if stats.complete:
            self.metrics.last_success.labels(self.name).set(time.time())
        self._export_watermark(stats.watermark)
        log.info(
            "fetch pass %s: %d pages, %d not modified, %d records, %d produced, %d skipped in %.2fs",
            outcome,
            stats.pages,
            stats.not_modified,
            stats.records,
            stats.produced,
            stats.skipped,
            elapsed,
            extra={"source": self.name},
        )
        # For `restlake status`: best effort, after the pass, never read back by the fetcher.
        await self.state_store.record_pass(self.name, pass_summary(stats, outcome, datetime.now(UTC)))
        return stats

    async def _record_bad_page(
        self,
        exc: Exception,
        page_url: str,
        stats: PassStats,
        tracker: DeliveryTracker,
        fields: dict[str, Any],
        status: int | None = None,
    ) -> None:
        """Metric, log line and dead-letter event for a page given up on; the pass stops after it."""
        reason = "no_record_list" if isinstance(exc, ValueError) else failure_reason(exc)
        message = self.redactor.text(str(exc))
        stats.bad_pages += 1
        stats.error = message
        self.metrics.bad_pages.labels(self.name, reason).inc()
        sha, size, excerpt = body_reference(getattr(exc, "raw", None), self.redactor.text)
        event = DeadLetter(
            source=self.name,
            url=page_url,
            status=getattr(exc, "status", status),
            error_class=type(exc).__name__,
            reason=reason,
            message=message,
            attempts=int(getattr(exc, "attempts", 1)),
            body_sha256=sha,
            body_bytes=size,
            body_excerpt=excerpt,
        )
        log.error(
            "page given up (%s, %s after %d attempt(s)): %s",
            reason,
            event.error_class,
            event.attempts,
            message,
            extra={**fields, "reason": reason},
        )
        await self._dead_letter(event, stats, tracker, fields)

    async def _dead_letter(
        self, event: DeadLetter, stats: PassStats, tracker: DeliveryTracker, fields: dict[str, Any]
    ) -> None:
        try:
            await self.producer.send(self.dead_letter_topic, event.kafka_key(), event.kafka_value(), tracker)
        except (KafkaException, RecordTooLargeError) as dlq_exc:  # must not hide the failure it reports
            log.error("dead-letter event not produced: %s", self.redactor.text(str(dlq_exc)), extra=fields)
            return
        stats.dead_letters += 1
        self.metrics.dead_letters.labels(self.name).inc()

    async def _reject_record(
        self,
        exc: Exception,
        envelope: Envelope | None,
        page_url: str,
        status: int | None,
        stats: PassStats,
        tracker: DeliveryTracker,
        fields: dict[str, Any],
        *,
        line: int | None = None,
    ) -> None:
        """Dead-letter one record that cannot be published; the rest of the page goes on.

        ``line``: where a JSON Lines or CSV record was in its response (else the envelope says it).
        """
        # Not too large, then nested deeper than the serializer allows (or not serializable at all).
        reason = exc.reason if isinstance(exc, RecordTooLargeError) else "unserializable_record"
        message = self.redactor.text(f"{type(exc).__name__}: {exc}")
        stats.rejected += 1
        self.metrics.rejected_records.labels(self.name, reason).inc()
        if envelope is not None:
            record_key: str | None = envelope.idempotency_key
        elif isinstance(exc, RecordTooLargeError):  # refused by the broker: only its Kafka key is left
            record_key = exc.key.decode("utf-8", "backslashreplace")
        else:
            record_key = None
        size = exc.size if isinstance(exc, RecordTooLargeError) else None
        log.error(
            "record dead-lettered (%s): %s",
            reason,
            message,
            extra={**fields, "reason": reason, "record_key": self.redactor.text(record_key or "")},
        )
        event = DeadLetter(
            source=self.name,
            url=page_url,
            status=status,
            error_class=type(exc).__name__,
            reason=reason,
            message=message,
            attempts=1,
            body_sha256=envelope.content_hash if envelope is not None else None,
            body_bytes=size,
            record_key=self.redactor.text(record_key) if record_key is not None else None,
            line=line if line is not None or envelope is None else envelope.request.line,
        )
        await self._dead_letter(event, stats, tracker, fields)

    def _wrap(
        self,
        records: list[Any],
        info: RequestInfo,
        fetched_at: datetime,
        fields: dict[str, Any],
        stats: PassStats,
        parent: ParentRef | None = None,
    ) -> list[tuple[Any, Envelope | Exception]]:
        """Each record's envelope, or why it could not be made; applies ``records.onMissingId``.

        Quarantine happens in the stream job, not here: a record published with an empty external id
        is quarantined there as ``missing_field:external_id`` with its topic, partition and offset,
        like every other invalid record, and stays replayable from Kafka. The DLQ would lose both.
        """
        wrapped: list[tuple[Any, Envelope | Exception]] = []
        missing = 0
        lines = getattr(records, "lines", None)  # JSON Lines and CSV bodies: each record's line
        for index, record in enumerate(records):
            external_id = self.extractor.external_id(record)
            if self.on_missing_id is not None and external_id in (None, ""):
                missing += 1
            try:
                envelope = Envelope.wrap(
                    source=self.name,
                    payload=record,
                    external_id=external_id,
                    version=self.extractor.version(record),
                    request=info if lines is None else info.model_copy(update={"line": lines[index]}),
                    fetched_at=fetched_at,
                    quarantine_missing_id=self.on_missing_id == "quarantine",
                    parent=parent,
                )
            except (ValueError, RecursionError) as exc:
                wrapped.append((record, exc))
                continue
            wrapped.append((record, envelope))
        if missing:
            action = self.on_missing_id or "hash"
            stats.missing_ids += missing
            self.metrics.missing_id.labels(self.name, action).inc(missing)
            consequence = (
                "published with an empty id, for the stream job to quarantine"
                if action == "quarantine"
                else "identified by their content hash"
            )
            log.warning(
                "%d record(s) have no value at records.idPath %r: %s (records.onMissingId: %s)",
                missing,
                self.spec.records.id_path,
                consequence,
                action,
                extra=fields,
            )
        return wrapped

    def _future_limit(self) -> tuple[int, object] | None:
        """The sort key beyond which a timestamp cursor is in the future; None without incremental."""
        if self.max_future_skew is None:
            return None
        return (2, datetime.now(UTC) + self.max_future_skew)

    def _stop_paging(self, reason: str, message: str, stats: PassStats, fields: dict[str, Any]) -> None:
        """End the pass with an error, keeping what was read: its records are confirmed and its pages'
        state committed at the final checkpoint, but the watermark does not move (the chain was not
        walked to its end)."""
        stats.truncated = True
        stats.error = message
        self.metrics.pagination_stops.labels(self.name, reason).inc()
        log.error("pagination stopped (%s): %s", reason, message, extra={**fields, "reason": reason})

    def _export_watermark(self, watermark: str | None) -> None:
        if watermark is None:
            return
        _, when = sort_key(watermark)
        if isinstance(when, datetime):  # a timestamp watermark; numbers and text have no time to export
            self.metrics.watermark_timestamp.labels(self.name).set(when.timestamp())


@dataclass(frozen=True)
class _ReadPage:
    records: list[Any]
    following: PageRequest | None
    # Where the page leads is refused (a next link on another origin), not the page: its records
    # flow and the walk ends there.
    refused: RestlakeError | None = None


def _page_signature(wrapped: list[tuple[Any, Envelope | Exception]]) -> str | None:
    """A digest of a page's records in order; None for an empty page (nothing to compare)."""
    hashes = [e.content_hash for _, e in wrapped if isinstance(e, Envelope)]
    if not hashes:
        return None
    return hashlib.sha256("".join(hashes).encode()).hexdigest()
