"""One source's fetch pass: page through the endpoint and publish every record, then confirm delivery."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from yarl import URL

from restlake.contracts.envelope import Envelope, RequestInfo
from restlake.errors import PermanentError, TransientError
from restlake.fetcher.auth import Authenticator, make_authenticator
from restlake.fetcher.client import RetryPolicy, get_page
from restlake.fetcher.pagination import Page, make_paginator
from restlake.fetcher.producer import EnvelopeProducer
from restlake.fetcher.records import RecordExtractor

log = logging.getLogger(__name__)


@dataclass
class PassStats:
    """What one pass did; ``complete`` is False when it stopped early on an error."""

    requests: int = 0
    pages: int = 0
    not_modified: int = 0
    records: int = 0
    produced: int = 0
    bytes_received: int = 0
    bad_pages: int = 0
    complete: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SourceFetcher:
    """Fetches one IngestionSource into its Kafka topic."""

    def __init__(
        self,
        source: Any,
        producer: EnvelopeProducer,
        topic: str,
        *,
        auth: Authenticator | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        spec = source.spec
        self.name: str = source.name
        self.spec = spec
        self.topic = topic
        self.producer = producer
        self.policy = policy or RetryPolicy()
        self.extractor = RecordExtractor(spec.records.path, spec.records.id_path, spec.records.version_path)
        self.paginator = make_paginator(spec.pagination)
        self.headers = dict(spec.request.headers)
        self.auth = auth if auth is not None else make_authenticator(spec.request.auth)
        self.timeout = spec.request.timeout.total_seconds()

    async def fetch_pass(self, session: aiohttp.ClientSession) -> PassStats:
        """Page through the endpoint once; every produced record is confirmed by Kafka before returning."""
        stats = PassStats()
        url = URL(self.spec.request.url)
        request = self.paginator.first(url.with_query(None), {**dict(url.query), **self.spec.request.params})
        seen: set[str] = set()
        started = time.monotonic()
        fields = {"source": self.name}
        try:
            while request is not None:
                if self.paginator.max_pages and stats.pages >= self.paginator.max_pages:
                    log.info("stopping at maxPages=%d", self.paginator.max_pages, extra=fields)
                    break
                page_url = str(request.full_url())
                if page_url in seen:
                    # A next link or cursor that points back at a page already read would loop forever.
                    log.warning("pagination repeated %s; stopping the pass", page_url, extra=fields)
                    break
                seen.add(page_url)
                try:
                    response = await get_page(
                        session,
                        request,
                        headers=self.headers,
                        auth=self.auth,
                        timeout=self.timeout,
                        policy=self.policy,
                        log_extra=fields,
                    )
                except TransientError as exc:
                    stats.bad_pages += 1
                    stats.error = str(exc)
                    log.error("page failed after retries, pass stops here: %s", exc, extra=fields)
                    return stats
                except PermanentError as exc:
                    stats.error = str(exc)
                    log.error("page refused: %s", exc, extra=fields)
                    return stats
                stats.requests += 1
                if response.status == 304:
                    stats.not_modified += 1
                    break
                stats.pages += 1
                stats.bytes_received += response.size
                fetched_at = datetime.now(UTC)
                try:
                    records = self.extractor.records(response.body)
                except ValueError as exc:
                    stats.bad_pages += 1
                    stats.error = str(exc)
                    log.error("page has no record list: %s", exc, extra=fields)
                    return stats
                info = RequestInfo(
                    url=page_url,
                    status=response.status,
                    etag=response.headers.get("ETag"),
                    last_modified=response.headers.get("Last-Modified"),
                    cursor=request.cursor,
                )
                for record in records:
                    envelope = Envelope.wrap(
                        source=self.name,
                        payload=record,
                        external_id=self.extractor.external_id(record),
                        version=self.extractor.version(record),
                        request=info,
                        fetched_at=fetched_at,
                    )
                    self.producer.produce(self.topic, envelope)
                stats.records += len(records)
                request = self.paginator.next(Page(request, response.headers, response.body, records))
        finally:
            # Whatever was produced before an error is still delivered (and confirmed) before we return.
            self.producer.flush()
            stats.produced = stats.records
        stats.complete = stats.error is None
        log.info(
            "fetch pass done: %d pages, %d records in %.2fs",
            stats.pages,
            stats.records,
            time.monotonic() - started,
            extra=fields,
        )
        return stats
