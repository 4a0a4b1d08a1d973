"""A child source (``spec.parent``): one ordinary pass per due parent record, and a mark per parent.

One child pass:

1. reads the parent's current records from Postgres (``parent_rows``) and the child's parent marks
   from its fetch state;
2. plans which parent records are due (``fanout.plan``: new, changed, or older than
   ``parent.refreshEvery``);
3. for each, fills request.url from the record (``fanout.UrlBinder``) and runs the child
   ``SourceFetcher``'s own ``fetch_pass`` on that URL, its state under the scope
   ``<child>#<parent key digest>``: pagination, conditional requests, watermark and dead letters
   work per child URL exactly as for a plain source, and every URL goes through the one rate
   limiter and breaker registry of the child source (the budget is the source's, not per URL);
4. after a URL's pass completed (Kafka confirmed its records and its page state is committed),
   records the parent's content hash as that parent's mark. A pass that failed leaves the mark
   alone, so the next pass tries that parent again; nothing is marked that Kafka did not confirm.

A parent record without a value for a bound variable is dead-lettered (reason
``missing_parent_value``) and marked, so it is reported once per version, not on every pass.

Parent records are walked one after the other: the shared rate limit is the bound on throughput
anyway, and a sequential walk keeps a shutdown (``stop``) and the counts simple.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from typing import Any

import aiohttp

from restlake.contracts.envelope import ParentRef
from restlake.contracts.parents import ParentLink
from restlake.errors import RestlakeError
from restlake.fetcher.deadletter import DeadLetter
from restlake.fetcher.fanout import MissingBindValue, ParentMark, UrlBinder, plan, state_scope
from restlake.fetcher.parent_rows import ParentRows
from restlake.fetcher.poller import FetchTarget, PassStats, SourceFetcher
from restlake.fetcher.producer import DeliveryError, DeliveryTracker

log = logging.getLogger(__name__)

MISSING_PARENT_VALUE = "missing_parent_value"
_SUMMED = [f.name for f in dataclass_fields(PassStats) if f.type in ("int", int)]


class ChildSourceFetcher:
    """Fetches a child source: its request.url once per due parent record (see the module doc).

    Offers what ``FetcherService`` and ``LocalRunner`` use of a ``SourceFetcher`` (``name``,
    ``spec``, ``topic``, ``dead_letter_topic``, ``redactor``, ``fetch_pass``), so either runs it
    unchanged.
    """

    def __init__(self, fetcher: SourceFetcher, link: ParentLink, parent_rows: ParentRows) -> None:
        self.fetcher = fetcher
        self.link = link
        self.parent_rows = parent_rows
        self.binder = UrlBinder(fetcher.spec.request.url, link.bind)
        self.refresh_every = link.refresh_every.timedelta if link.refresh_every is not None else None
        # The most recent pass's fan-out: parents seen, due by reason, left alone, dead-lettered.
        self.last_fanout: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"ChildSourceFetcher(source={self.name!r}, parent={self.link.identity!r})"

    @property
    def name(self) -> str:
        return self.fetcher.name

    @property
    def spec(self) -> Any:
        return self.fetcher.spec

    @property
    def topic(self) -> str:
        return self.fetcher.topic

    @property
    def dead_letter_topic(self) -> str:
        return self.fetcher.dead_letter_topic

    @property
    def redactor(self) -> Any:
        return self.fetcher.redactor

    async def fetch_pass(
        self, session: aiohttp.ClientSession, stop: asyncio.Event | None = None
    ) -> PassStats:
        """One pass over the due parent records; the stats are the sum of their URLs' passes."""
        total = PassStats()
        fields = {"source": self.name, "parent": self.link.identity}
        state_store = self.fetcher.state_store
        try:
            rows = await self.parent_rows.current(self.link)
            marks = {
                k: ParentMark.from_json(v)
                for k, v in (await state_store.load_parent_marks(self.name)).items()
            }
        except RestlakeError as exc:
            total.error = f"could not read parent {self.link.identity}'s records or marks: {exc}"
            log.error("child pass skipped: %s", total.error, extra=fields)
            return total
        started = time.monotonic()
        fanout = plan(rows, marks, now=datetime.now(UTC), refresh_every=self.refresh_every)
        self.last_fanout = {
            "parents": len(rows),
            "due": fanout.reasons(),
            "unchanged": fanout.unchanged,
            "fetched": [],
            "missing_values": 0,
        }
        errors: list[str] = []
        stopped = False
        for row, reason in fanout.due:
            if stop is not None and stop.is_set():
                stopped = True
                break
            try:
                url = self.binder.url(row)
            except MissingBindValue as exc:
                if not await self._dead_letter_missing(exc, row.external_id, total, fields):
                    errors.append(str(exc))
                    continue
                self.last_fanout["missing_values"] += 1
                await self._mark(row.external_id, row.content_hash, total, errors, fields)
                continue
            target = FetchTarget(
                url=url,
                scope=state_scope(self.name, row.external_id),
                parent=ParentRef(source=self.link.identity, external_id=row.external_id),
            )
            shown = self.fetcher.redactor.url(url)
            log.info("child fetch for parent %s (%s): %s", row.external_id, reason, shown, extra=fields)
            stats = await self.fetcher.fetch_pass(session, stop, target=target)
            self.last_fanout["fetched"].append(shown)
            _add(total, stats)
            if stats.stopped:
                stopped = True
                break
            if stats.complete:
                await self._mark(row.external_id, row.content_hash, total, errors, fields)
            elif stats.error:
                errors.append(f"parent {row.external_id}: {stats.error}")
        total.stopped = stopped
        total.error = (
            "; ".join(errors[:3]) + (f" (and {len(errors) - 3} more)" if len(errors) > 3 else "") or None
        )
        total.complete = not errors and not stopped
        log.info(
            "child pass %s: %d parent records, %d due %s, %d unchanged, %d produced in %.2fs",
            "complete" if total.complete else "incomplete",
            len(rows),
            len(fanout.due),
            fanout.reasons(),
            fanout.unchanged,
            total.produced,
            time.monotonic() - started,
            extra=fields,
        )
        return total

    async def _mark(
        self, key: str, digest: str, total: PassStats, errors: list[str], fields: dict[str, Any]
    ) -> None:
        mark = ParentMark(key=key, content_hash=digest, fetched_at=datetime.now(UTC))
        try:
            await self.fetcher.state_store.commit_parent_marks(self.name, [mark.as_json()])
        except RestlakeError as exc:
            # The children are in Kafka; without the mark they are fetched again (same keys) next pass.
            errors.append(f"could not save the mark of parent {key}: {exc}")
            log.error("parent mark not saved: %s", exc, extra=fields)

    async def _dead_letter_missing(
        self, exc: MissingBindValue, parent_key: str, total: PassStats, fields: dict[str, Any]
    ) -> bool:
        """Dead-letter a parent record whose bound value is missing; True once Kafka confirmed it."""
        fetcher = self.fetcher
        message = fetcher.redactor.text(str(exc))
        log.error("parent record skipped (%s): %s", MISSING_PARENT_VALUE, message, extra=fields)
        fetcher.metrics.rejected_records.labels(self.name, MISSING_PARENT_VALUE).inc()
        event = DeadLetter(
            source=self.name,
            url=fetcher.redactor.text(self.binder.template),
            status=None,
            error_class=type(exc).__name__,
            reason=MISSING_PARENT_VALUE,
            message=message,
            attempts=0,
            record_key=f"{self.link.identity}/{parent_key}",
        )
        tracker = DeliveryTracker()
        total.rejected += 1
        await fetcher.send_dead_letter(event, total, tracker, fields)
        try:
            await fetcher.producer.confirm(tracker, fetcher.delivery_timeout)
        except DeliveryError as delivery:
            log.error("dead-letter event not confirmed: %s", delivery, extra=fields)
            return False
        return True


def _add(total: PassStats, stats: PassStats) -> None:
    for name in _SUMMED:
        setattr(total, name, getattr(total, name) + getattr(stats, name))
    # Not the watermark: each child URL has its own, and none of them speaks for the source.
    total.truncated = total.truncated or stats.truncated


def make_fetcher(
    fetcher: SourceFetcher, link: ParentLink | None, parent_rows: ParentRows | None
) -> SourceFetcher | ChildSourceFetcher:
    """``fetcher`` itself for a plain source, wrapped as a child when it has a parent link."""
    if link is None:
        return fetcher
    if parent_rows is None:
        raise ValueError(f"source {fetcher.name} has spec.parent but no reader of its parent's records")
    return ChildSourceFetcher(fetcher, link, parent_rows)
