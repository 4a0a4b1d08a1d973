"""A pass's checkpoint: what it produced but has not seen confirmed, and the state that waits on it.

Records go out while paging. At every checkpoint the pass waits until Kafka confirmed everything
produced so far, then commits the validators and continuations of those pages (``raw.fetch_state``
rows) in one transaction. The incremental watermark, its boundary and a window's progress are
committed only at the end of a pass that walked the whole chain without error.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from restlake.errors import RestlakeError
from restlake.fetcher.pass_stats import PassStats
from restlake.fetcher.producer import DeliveryError, DeliveryTracker, RecordTooLargeError
from restlake.fetcher.state import MAX_BOUNDARY, PageState, SourceState, boundary_digest
from restlake.fetcher.watermark import newest, sort_key
from restlake.fetcher.windows import Window

if TYPE_CHECKING:
    from restlake.fetcher.poller import SourceFetcher

log = logging.getLogger(__name__)

# Dead-letters one record the broker refused as too large, its event tracked by the given tracker.
RejectRefused = Callable[[RecordTooLargeError, DeliveryTracker], Awaitable[None]]


class PassAbortedError(RestlakeError):
    """The pass cannot go on (delivery or state failure); what went wrong is in its stats' ``error``."""


class WatermarkProgress:
    """The pass's view of the incremental watermark.

    The largest cursor seen (including the stored maxima of pages answered 304), the keys of the
    records at the running top (the next boundary), and the stored boundary: records at the stored
    watermark come back on every pass (``since`` is inclusive); those whose key it holds were
    delivered unchanged and are not published again.
    """

    def __init__(self, state: SourceState) -> None:
        self.stored = state.watermark
        self.stored_boundary = state.boundary
        self._skip_at = sort_key(state.watermark) if state.watermark is not None and state.boundary else None
        self._top: tuple[int, object] | None = None
        self._top_keys: set[str] = set()
        self.max_cursor: str | None = None

    def already_delivered(self, rank: tuple[int, object], idempotency_key: str) -> bool:
        """Note a record's cursor; True when it was delivered unchanged at the stored watermark."""
        top = self._top
        # Only records at or above the running top, or at the stored watermark, need their key:
        # the others can neither join the boundary nor be skipped.
        if top is not None and rank < top and rank != self._skip_at:
            return False
        digest = boundary_digest(idempotency_key)
        if top is None or rank > top:
            self._top, self._top_keys = rank, {digest}
        elif rank == top and len(self._top_keys) <= MAX_BOUNDARY:
            self._top_keys.add(digest)
        return rank == self._skip_at and digest in self.stored_boundary

    def page_walked(self, page_max: str | None) -> None:
        self.max_cursor = newest(self.max_cursor, page_max)

    def advanced(self) -> tuple[str | None, frozenset[str] | None]:
        """The watermark and boundary to commit after a pass that walked the whole chain."""
        watermark = newest(self.stored, self.max_cursor)
        if watermark is None:
            return None, None
        if self._top is not None and self._top == sort_key(watermark):
            return watermark, frozenset(self._top_keys)
        if self.stored is not None and sort_key(watermark) == sort_key(self.stored):
            # No record at the watermark this time (a 304, a lookback window): keep the old set.
            return watermark, self.stored_boundary
        return watermark, None


class PassCheckpoint:
    """Delivery confirmation and state commits of one pass over one state ``scope``."""

    def __init__(self, fetcher: SourceFetcher, scope: str, state: SourceState, window: Window | None) -> None:
        self.fetcher = fetcher
        self.scope = scope
        self.state = state
        self.window = window
        self.watermark = WatermarkProgress(state)
        self.tracker = DeliveryTracker()
        self.unconfirmed = 0  # records produced since the last checkpoint
        self.pending: list[PageState] = []  # pages delivered since the last checkpoint
        self.visited: set[str] = set()  # state keys of every page this pass asked for

    def prior(self, page_id: str) -> PageState | None:
        """What the last delivery of this page left: its validators, continuation and max cursor."""
        return self.state.page(page_id)

    def asked(self, page_id: str, prior: PageState | None) -> None:
        self.visited.add(prior.key if prior is not None else PageState(page_id).key)

    def delivered(self, page: PageState) -> bool:
        """Note a page read whole; True when enough pages wait for a checkpoint."""
        self.watermark.page_walked(page.max_cursor)
        self.pending.append(page)
        return len(self.pending) >= self.fetcher.checkpoint_pages

    async def commit(
        self, stats: PassStats, fields: dict[str, Any], *, final: bool, reject: RejectRefused
    ) -> None:
        """Wait for Kafka, then save the pending pages (and at a whole chain's end the watermark).

        Raises :class:`PassAbortedError` when delivery or the state store fails; nothing advances.
        """
        await self._confirm(stats, fields, reject)
        walked_all = final and stats.error is None and not stats.stopped and not stats.truncated
        fetcher = self.fetcher
        watermark, boundary = (
            self.watermark.advanced() if walked_all and fetcher.tracks_cursor else (None, None)
        )
        loader = fetcher.windowed_load
        # A window walked whole moves the first load on, in the transaction of its watermark.
        progress = loader.progress(self.window) if walked_all and self.window and loader else None
        try:
            await fetcher.state_store.commit(
                self.scope,
                self.pending,
                watermark=watermark,
                boundary=boundary,
                keep_only=self.visited if walked_all else None,
                window=progress,
            )
        except RestlakeError as exc:
            stats.error = stats.error or f"could not save fetch state: {exc}"
            log.error("fetch state not saved: %s", exc, extra=fields)
            raise PassAbortedError from exc
        if watermark is not None:
            stats.watermark = watermark
        self.tracker, self.unconfirmed, self.pending = DeliveryTracker(), 0, []

    async def _confirm(self, stats: PassStats, fields: dict[str, Any], reject: RejectRefused) -> None:
        fetcher = self.fetcher
        tracker = self.tracker
        try:
            await fetcher.producer.confirm(tracker, fetcher.delivery_timeout)
        except DeliveryError as exc:
            fetcher.metrics.delivery_errors.labels(fetcher.name).inc(tracker.failed + tracker.pending)
            stats.error = stats.error or str(exc)
            log.error("delivery not confirmed, state not advanced: %s", exc, extra=fields)
            raise PassAbortedError from exc
        refused = list(tracker.too_large)
        if refused:
            # The broker's limit can be below the producer's: dead-letter what it refused, confirm those.
            events = DeliveryTracker()
            for error in refused:
                await reject(error, events)
            try:
                await fetcher.producer.confirm(events, fetcher.delivery_timeout)
            except DeliveryError as exc:
                stats.error = stats.error or str(exc)
                log.error("dead-letter events not confirmed, state not advanced: %s", exc, extra=fields)
                raise PassAbortedError from exc
        produced = self.unconfirmed - len(refused)
        stats.produced += produced
        fetcher.metrics.records_produced.labels(fetcher.name).inc(produced)
