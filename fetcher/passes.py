"""One fetch pass: walk a source's pages, publish every record, account for what the pass did.

The walk follows the source's paginator from the first request (the watermark's ``since``, a
window's bounds or a child target's URL) until a page says it was the last, a page cannot be had,
a shutdown is asked for, or the chain loops. What the pass has produced and the state that waits
on it belong to its :class:`~restlake.fetcher.checkpoint.PassCheckpoint`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp

from restlake.contracts.envelope import Envelope, RequestInfo
from restlake.errors import RestlakeError
from restlake.fetcher.checkpoint import PassAbortedError, PassCheckpoint
from restlake.fetcher.client import Response
from restlake.fetcher.deadletter import DeadLetter, body_reference
from restlake.fetcher.page_errors import BadPageError, PageError
from restlake.fetcher.page_reader import ReadPage
from restlake.fetcher.pagination import PageRequest
from restlake.fetcher.pass_stats import FetchTarget, PassStats
from restlake.fetcher.producer import DeliveryError, DeliveryTracker, RecordTooLargeError
from restlake.fetcher.records import line_of
from restlake.fetcher.state import PageState, SourceState, pass_summary, request_from_json, request_to_json
from restlake.fetcher.watermark import sort_key
from restlake.fetcher.windows import Window

if TYPE_CHECKING:
    from restlake.fetcher.poller import SourceFetcher

log = logging.getLogger(__name__)

# An envelope, or why a record could not be wrapped in one.
Wrapped = list[tuple[Any, Envelope | Exception]]


class FetchPass:
    """One pass of ``fetcher``'s source (or of one child ``target``, or one first-load ``window``)."""

    def __init__(
        self,
        fetcher: SourceFetcher,
        session: aiohttp.ClientSession,
        stop: asyncio.Event | None = None,
        *,
        target: FetchTarget | None = None,
        window: Window | None = None,
    ) -> None:
        self.fetcher = fetcher
        self.session = session
        self.stop = stop
        self.target = target
        self.window = window
        self.scope = target.scope if target is not None else fetcher.name
        self.stats = PassStats()
        self.fields: dict[str, Any] = {"source": fetcher.name}  # the log fields of the current page
        self._seen: set[str] = set()
        self._previous_signature: str | None = None

    async def run(self) -> PassStats:
        """Walk the pages; state advances only over records Kafka confirmed."""
        started = time.monotonic()
        try:
            state = await self.fetcher.state_store.load(self.scope)
        except RestlakeError as exc:
            self.stats.error = f"could not load fetch state: {exc}"
            log.error("pass skipped: %s", self.stats.error, extra=self.fields)
            self.fetcher.metrics.passes.labels(self.fetcher.name, "error").inc()
            return self.stats
        self.stats.watermark = state.watermark
        self.checkpoint = PassCheckpoint(self.fetcher, self.scope, state, self.window)
        try:
            request: PageRequest | None = self._first_request(state)
            while request is not None:
                if self.checkpoint.tracker.failed:
                    await self._commit(final=False)  # raises: a failed delivery ends the pass
                if not self._may_go_on():
                    break
                request = await self._page(request)
            await self._commit(final=True)
        except PassAbortedError:
            pass
        await self._account(time.monotonic() - started)
        return self.stats

    # -- the walk ---------------------------------------------------------------------------------
    def _first_request(self, state: SourceState) -> PageRequest:
        fetcher = self.fetcher
        since = state.watermark
        if since is None and fetcher.incremental is not None:
            since = fetcher.incremental.initial_value
            if fetcher.windowed_load is not None:
                # A first load that saw no cursor at all: poll on from where its last window ended.
                since = fetcher.windowed_load.resume_value(state)
        url = self.target.url if self.target is not None else None
        return fetcher.first_request(since, url, self.window)

    def _may_go_on(self) -> bool:
        """False when the walk must end before the next page: a shutdown, or maxPages reached."""
        if self.stop is not None and self.stop.is_set():
            self.stats.stopped = True
            log.info("shutdown requested; stopping after the current page", extra=self.fields)
            return False
        max_pages = self.fetcher.paginator.max_pages
        if max_pages and self.stats.pages >= max_pages:
            self._stop_paging(
                "max_pages",
                f"stopped at spec.pagination.maxPages={max_pages} with pages left: raise maxPages if the "
                "chain really is longer, or check that the endpoint honours its pagination parameter",
            )
            return False
        return True

    async def _page(self, request: PageRequest) -> PageRequest | None:
        """Request one page and publish what it holds; the request for the next page, or None."""
        fetcher = self.fetcher
        page_url = fetcher.redactor.url(request.full_url())
        # A POST source asks one URL for every page; its body tells the pages apart.
        page_id = request.identity(page_url)
        self.fields = {"source": fetcher.name, "url": page_url}
        if page_id in self._seen:
            # A next link or cursor that points back at a page already read would loop forever.
            log.warning("pagination repeated %s; stopping the pass", page_id, extra=self.fields)
            return None
        self._seen.add(page_id)
        prior = self.checkpoint.prior(page_id)
        reader = fetcher.page_reader(request)
        try:
            response = await fetcher.client.get(self.session, request, validators=prior, inspect=reader)
        except PageError as exc:
            self.stats.requests += exc.attempts
            await self._bad_page(exc, page_url)
            return None
        self.stats.requests += response.attempts
        self.checkpoint.asked(page_id, prior)
        if response.status == 304:
            return await self._not_modified(prior, page_url)
        return await self._delivered(request, response, reader.page_of(response), page_id, page_url)

    async def _not_modified(self, prior: PageState | None, page_url: str) -> PageRequest | None:
        """A 304: the page is as last delivered; go on with the continuation stored beside it."""
        self.stats.not_modified += 1
        self.fetcher.metrics.not_modified.labels(self.fetcher.name).inc()
        if prior is None:
            # Nothing was asked conditionally, so nothing can be reused: treat as a bad page.
            unexpected = BadPageError(
                f"HTTP 304 from {page_url} without a conditional request", reason="unexpected_304", status=304
            )
            await self._bad_page(unexpected, page_url)
            return None
        self.checkpoint.watermark.page_walked(prior.max_cursor)
        self._previous_signature = None
        return request_from_json(prior.next)

    async def _delivered(
        self, request: PageRequest, response: Response, page: ReadPage, page_id: str, page_url: str
    ) -> PageRequest | None:
        """A page with a body: publish its records, then note its state for the next checkpoint."""
        stats = self.stats
        stats.pages += 1
        stats.bytes_received += response.size
        etag = response.headers.get("ETag")
        last_modified = response.headers.get("Last-Modified")
        info = RequestInfo(
            url=page_url,
            status=response.status,
            etag=etag,
            last_modified=last_modified,
            cursor=request.cursor,
        )
        wrapped = self._wrap(page.records, info, datetime.now(UTC))
        if self._repeats_previous(wrapped):
            self._stop_paging(
                "repeated_page",
                f"page {page_url} has the same {len(page.records)} record(s) as the page before it: the "
                "endpoint seems to ignore the pagination parameter; the pass stops here (check "
                "spec.pagination)",
            )
            return None
        published, page_max = await self._publish(page.records, wrapped, page_url, response.status)
        stats.records += len(page.records)
        self.checkpoint.unconfirmed += published
        if page.refused is not None:
            # The page's records are produced, its state is not saved: the next pass reads it again.
            await self._bad_page(page.refused, page_url, status=response.status)
            return None
        following = self.fetcher.strip_secrets(page.following) if page.following is not None else None
        state = PageState(
            url=page_id,
            etag=etag,
            last_modified=last_modified,
            next=request_to_json(following),
            max_cursor=page_max,
        )
        if self.checkpoint.delivered(state):
            await self._commit(final=False)
        return following

    def _repeats_previous(self, wrapped: Wrapped) -> bool:
        """True when a page holds the same records as the one before it (pagination ignored)."""
        hashes = [e.content_hash for _, e in wrapped if isinstance(e, Envelope)]
        signature = hashlib.sha256("".join(hashes).encode()).hexdigest() if hashes else None
        repeated = signature is not None and signature == self._previous_signature
        self._previous_signature = signature
        return repeated

    async def _publish(
        self, records: list[Any], wrapped: Wrapped, page_url: str, status: int
    ) -> tuple[int, str | None]:
        """Produce a page's envelopes: how many went out, and the page's largest usable cursor."""
        fetcher, stats, watermark = self.fetcher, self.stats, self.checkpoint.watermark
        page_max: str | None = None
        page_rank: tuple[int, object] | None = None
        future_limit = fetcher.future_limit()
        future: list[str] = []
        published = 0
        for index, (record, envelope) in enumerate(wrapped):
            if isinstance(envelope, Exception):
                await self._reject(envelope, None, page_url, status, line=line_of(records, index))
                continue
            cursor = fetcher.record_cursor(record)
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
                if watermark.already_delivered(rank, envelope.idempotency_key):
                    stats.skipped += 1
                    continue
            try:
                await fetcher.producer.publish(fetcher.topic, envelope, self.checkpoint.tracker)
            except DeliveryError as exc:
                fetcher.metrics.delivery_errors.labels(fetcher.name).inc(self.checkpoint.tracker.failed)
                stats.error = stats.error or str(exc)
                log.error("delivery failing, pass aborted, state not advanced: %s", exc, extra=self.fields)
                raise PassAbortedError from exc
            except (RecordTooLargeError, ValueError, RecursionError) as exc:
                await self._reject(exc, envelope, page_url, status)
                continue
            published += 1
        if future:
            self._future_cursors(future)
        return published, page_max

    def _future_cursors(self, future: list[str]) -> None:
        fetcher = self.fetcher
        self.stats.future_cursors += len(future)
        fetcher.metrics.future_cursor.labels(fetcher.name).inc(len(future))
        log.warning(
            "%d record(s) have a cursor beyond now + incremental.maxFutureSkew (%s), e.g. %r: "
            "delivered, not used for the watermark",
            len(future),
            fetcher.spec.incremental.max_future_skew,
            future[0],
            extra=self.fields,
        )

    async def _commit(self, *, final: bool) -> None:
        await self.checkpoint.commit(self.stats, self.fields, final=final, reject=self._reject_refused)

    def _stop_paging(self, reason: str, message: str) -> None:
        """End the pass with an error, keeping what was read: its records are confirmed and its pages'
        state committed at the final checkpoint, but the watermark does not move (the chain was not
        walked to its end)."""
        self.stats.truncated = True
        self.stats.error = message
        self.fetcher.metrics.pagination_stops.labels(self.fetcher.name, reason).inc()
        log.error("pagination stopped (%s): %s", reason, message, extra={**self.fields, "reason": reason})

    # -- records ----------------------------------------------------------------------------------
    def _wrap(self, records: list[Any], info: RequestInfo, fetched_at: datetime) -> Wrapped:
        """Each record's envelope, or why it could not be made; applies ``records.onMissingId``.

        Quarantine happens in the stream job, not here: a record published with an empty external id
        is quarantined there as ``missing_field:external_id`` with its topic, partition and offset,
        like every other invalid record, and stays replayable from Kafka. The DLQ would lose both.
        """
        fetcher = self.fetcher
        extractor, on_missing_id = fetcher.extractor, fetcher.on_missing_id
        wrapped: Wrapped = []
        missing = 0
        lines = getattr(records, "lines", None)  # JSON Lines and CSV bodies: each record's line
        for index, record in enumerate(records):
            external_id = extractor.external_id(record)
            if on_missing_id is not None and external_id in (None, ""):
                missing += 1
            try:
                envelope = Envelope.wrap(
                    source=fetcher.name,
                    payload=record,
                    external_id=external_id,
                    version=extractor.version(record),
                    request=info if lines is None else info.model_copy(update={"line": lines[index]}),
                    fetched_at=fetched_at,
                    quarantine_missing_id=on_missing_id == "quarantine",
                    parent=self.target.parent if self.target is not None else None,
                )
            except (ValueError, RecursionError) as exc:
                wrapped.append((record, exc))
                continue
            wrapped.append((record, envelope))
        if missing:
            self._missing_ids(missing)
        return wrapped

    def _missing_ids(self, missing: int) -> None:
        fetcher = self.fetcher
        action = fetcher.on_missing_id or "hash"
        self.stats.missing_ids += missing
        fetcher.metrics.missing_id.labels(fetcher.name, action).inc(missing)
        consequence = (
            "published with an empty id, for the stream job to quarantine"
            if action == "quarantine"
            else "identified by their content hash"
        )
        log.warning(
            "%d record(s) have no value at records.idPath %r: %s (records.onMissingId: %s)",
            missing,
            fetcher.spec.records.id_path,
            consequence,
            action,
            extra=self.fields,
        )

    # -- dead letters -----------------------------------------------------------------------------
    async def _bad_page(self, exc: PageError, page_url: str, status: int | None = None) -> None:
        """Metric, log line and dead-letter event for a page given up on; the pass stops after it."""
        fetcher = self.fetcher
        message = fetcher.redactor.text(str(exc))
        self.stats.bad_pages += 1
        self.stats.error = message
        fetcher.metrics.bad_pages.labels(fetcher.name, exc.reason).inc()
        sha, size, excerpt = body_reference(exc.raw, fetcher.redactor.text)
        event = DeadLetter(
            source=fetcher.name,
            url=page_url,
            status=exc.status if exc.status is not None else status,
            error_class=type(exc).__name__,
            reason=exc.reason,
            message=message,
            attempts=exc.attempts,
            body_sha256=sha,
            body_bytes=size,
            body_excerpt=excerpt,
        )
        log.error(
            "page given up (%s, %s after %d attempt(s)): %s",
            exc.reason,
            event.error_class,
            event.attempts,
            message,
            extra={**self.fields, "reason": exc.reason},
        )
        await fetcher.send_dead_letter(event, self.stats, self.checkpoint.tracker, self.fields)

    async def _reject_refused(self, exc: RecordTooLargeError, tracker: DeliveryTracker) -> None:
        await self._reject(exc, None, "", None, tracker=tracker)

    async def _reject(
        self,
        exc: Exception,
        envelope: Envelope | None,
        page_url: str,
        status: int | None,
        *,
        line: int | None = None,
        tracker: DeliveryTracker | None = None,
    ) -> None:
        """Dead-letter one record that cannot be published; the rest of the page goes on.

        ``line``: where a JSON Lines or CSV record was in its response (else the envelope says it).
        """
        fetcher = self.fetcher
        # Not too large, then nested deeper than the serializer allows (or not serializable at all).
        reason = exc.reason if isinstance(exc, RecordTooLargeError) else "unserializable_record"
        message = fetcher.redactor.text(f"{type(exc).__name__}: {exc}")
        self.stats.rejected += 1
        fetcher.metrics.rejected_records.labels(fetcher.name, reason).inc()
        if envelope is not None:
            record_key: str | None = envelope.idempotency_key
        elif isinstance(exc, RecordTooLargeError):  # refused by the broker: only its Kafka key is left
            record_key = exc.key.decode("utf-8", "backslashreplace")
        else:
            record_key = None
        log.error(
            "record dead-lettered (%s): %s",
            reason,
            message,
            extra={**self.fields, "reason": reason, "record_key": fetcher.redactor.text(record_key or "")},
        )
        event = DeadLetter(
            source=fetcher.name,
            url=page_url,
            status=status,
            error_class=type(exc).__name__,
            reason=reason,
            message=message,
            attempts=1,
            body_sha256=envelope.content_hash if envelope is not None else None,
            body_bytes=exc.size if isinstance(exc, RecordTooLargeError) else None,
            record_key=fetcher.redactor.text(record_key) if record_key is not None else None,
            line=line if line is not None or envelope is None else envelope.request.line,
        )
        await fetcher.send_dead_letter(event, self.stats, tracker or self.checkpoint.tracker, self.fields)

    # -- the summary ------------------------------------------------------------------------------
    async def _account(self, elapsed: float) -> None:
        """The pass's outcome: metrics, a log line, and the summary ``restlake status`` reads."""
        fetcher, stats = self.fetcher, self.stats
        stats.complete = stats.error is None and not stats.stopped
        outcome = stats.outcome
        fetcher.metrics.passes.labels(fetcher.name, outcome).inc()
        fetcher.metrics.pass_seconds.labels(fetcher.name).observe(elapsed)
        if stats.complete:
            fetcher.metrics.last_success.labels(fetcher.name).set(time.time())
        fetcher.export_watermark(stats.watermark)
        log.info(
            "fetch pass %s: %d pages, %d not modified, %d records, %d produced, %d skipped in %.2fs",
            outcome,
            stats.pages,
            stats.not_modified,
            stats.records,
            stats.produced,
            stats.skipped,
            elapsed,
            extra={"source": fetcher.name},
        )
        # Best effort, after the pass, never read back by the fetcher.
        await fetcher.state_store.record_pass(fetcher.name, pass_summary(stats, outcome, datetime.now(UTC)))
