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
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
from confluent_kafka import KafkaException
from yarl import URL

from restlake.fetcher.auth import Authenticator, make_authenticator
from restlake.fetcher.breaker import BreakerRegistry
from restlake.fetcher.client import DEFAULT_MAX_BODY_BYTES, PageClient, RetryPolicy
from restlake.fetcher.deadletter import DeadLetter, dlq_topic
from restlake.fetcher.metrics import FetcherMetrics
from restlake.fetcher.page_reader import PageReader
from restlake.fetcher.pagination import PageRequest, make_paginator
from restlake.fetcher.pass_stats import FetchTarget, PassStats
from restlake.fetcher.passes import FetchPass
from restlake.fetcher.producer import DeliveryTracker, EnvelopeProducer, RecordTooLargeError
from restlake.fetcher.ratelimit import RateLimiter
from restlake.fetcher.records import RecordExtractor, compile_path, scalar_text
from restlake.fetcher.state import MemoryStateStore, StateStore
from restlake.fetcher.watermark import request_value, sort_key
from restlake.fetcher.windows import Window, WindowedLoad

__all__ = ["DEFAULT_CHECKPOINT_PAGES", "FetchTarget", "PassStats", "SourceFetcher"]

log = logging.getLogger(__name__)

# Pages produced between two delivery confirmations + state commits: bounds what a crash refetches.
DEFAULT_CHECKPOINT_PAGES = 20


class SourceFetcher:
    """Fetches one IngestionSource into its Kafka topic, remembering validators and watermark.

    What lives as long as the source: its page client, paginator, record extractor, state store and
    producer. Each pass is a :class:`~restlake.fetcher.passes.FetchPass` over them.
    """

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
        self.extractor = RecordExtractor(spec.records.path, spec.records.id_path, spec.records.version_path)
        self.paginator = make_paginator(spec.pagination)
        self.auth = auth if auth is not None else make_authenticator(spec.request.auth)
        # Without a store the fetcher still sends validators, but only remembers them for its lifetime.
        self.state_store = state_store if state_store is not None else MemoryStateStore()
        self.metrics = metrics or FetcherMetrics()
        self.metrics.init_source(self.name)
        rate = spec.rate_limit
        self.limiter = limiter or RateLimiter(
            rate.requests_per_second, rate.burst, respect_headers=rate.respect_headers
        )
        self.client = PageClient.for_source(
            self.name,
            spec,
            auth=self.auth,
            policy=policy or RetryPolicy(),
            limiter=self.limiter,
            breakers=breakers or BreakerRegistry(),
            metrics=self.metrics,
            max_body_bytes=max_body_bytes,
            conditional=conditional,
        )
        self.redactor = self.client.redactor
        self.checkpoint_pages = max(1, checkpoint_pages)
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
        return await FetchPass(self, session, stop, target=target, window=window).run()

    # -- requests ---------------------------------------------------------------------------------
    def strip_secrets(self, request: PageRequest) -> PageRequest:
        """Drop credential parameters a next link may echo back (auth adds them again on send).

        The cursor is scrubbed too: for link pagination it is the next URL, which lands in envelopes
        and in the stored continuation.
        """
        params = {k: v for k, v in request.params.items() if k not in self.auth.secret_params}
        cursor = self.redactor.text(request.cursor) if request.cursor is not None else None
        return replace(request, params=params, cursor=cursor)

    def first_request(
        self, since: str | None, url_text: str | None = None, window: Window | None = None
    ) -> PageRequest:
        """The request a pass starts with: ``since`` (a watermark) or a ``window``'s bounds on the
        source's URL, or on ``url_text`` (a child target's, already encoded)."""
        url = URL(url_text or self.spec.request.url, encoded=url_text is not None)
        params = {**dict(url.query), **self.spec.request.params}
        if self.incremental is not None and window is not None:
            # A window of the first load: its bounds, not the watermark (nor a lookback: windows abut).
            params[self.incremental.param] = window.start
            params[str(self.incremental.end_param)] = window.end
        elif self.incremental is not None and since is not None:
            params[self.incremental.param] = request_value(since, self.incremental.lookback.timedelta)
        request = self.spec.request
        body = dict(request.body) if request.body is not None else None
        return self.strip_secrets(
            self.paginator.first(url.with_query(None), params, method=request.method, body=body)
        )

    def page_reader(self, request: PageRequest) -> PageReader:
        """The ``inspect`` hook that reads the page ``request`` asks for, inside its retry loop."""
        return PageReader(
            request,
            self.extractor,
            self.paginator,
            id_path=self.spec.records.id_path,
            fail_on_missing_id=self.on_missing_id == "fail",
        )

    # -- records ----------------------------------------------------------------------------------
    @property
    def tracks_cursor(self) -> bool:
        """True when records carry an incremental cursor, so a pass can move the watermark."""
        return self._cursor is not None

    def record_cursor(self, record: Any) -> str | None:
        return scalar_text(self._cursor(record)) if self._cursor is not None else None

    def future_limit(self) -> tuple[int, object] | None:
        """The sort key beyond which a timestamp cursor is in the future; None without incremental."""
        if self.max_future_skew is None:
            return None
        return (2, datetime.now(UTC) + self.max_future_skew)

    async def send_dead_letter(
        self, event: DeadLetter, stats: PassStats, tracker: DeliveryTracker, fields: dict[str, Any]
    ) -> None:
        """Produce a dead-letter event; a failure to is logged, never raised over the one it reports."""
        try:
            await self.producer.send(self.dead_letter_topic, event.kafka_key(), event.kafka_value(), tracker)
        except (KafkaException, RecordTooLargeError) as dlq_exc:
            log.error("dead-letter event not produced: %s", self.redactor.text(str(dlq_exc)), extra=fields)
            return
        stats.dead_letters += 1
        self.metrics.dead_letters.labels(self.name).inc()

    def export_watermark(self, watermark: str | None) -> None:
        if watermark is None:
            return
        kind, when = sort_key(watermark)
        if kind == 2 and isinstance(when, datetime):
            self.metrics.watermark_timestamp.labels(self.name).set(when.timestamp())
