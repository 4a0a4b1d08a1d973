"""The fetcher's Kafka producer: idempotent, acks=all, keyed by idempotency key."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from restlake.contracts.envelope import Envelope
from restlake.errors import PermanentError, TransientError
from restlake.kafka_logging import client_config

log = logging.getLogger(__name__)

# librdkafka's default message.max.bytes, the producer-side cap on one record (key + value + overhead).
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000
# How long one wait for room in the local queue serves delivery reports, off the event loop.
_BACKPRESSURE_POLL_SECONDS = 0.1


class DeliveryError(TransientError):
    """Kafka did not confirm every record; fetch state must not advance past them."""


@dataclass
class DeliveryStats:
    produced: int = 0
    delivered: int = 0
    failed: int = 0
    bytes: int = 0


class RecordTooLargeError(PermanentError):
    """One record is over the producer's or the broker's message size limit; no retry can help."""

    reason = "oversized_record"

    def __init__(self, message: str, *, key: bytes, size: int, limit: int | None) -> None:
        super().__init__(message)
        self.key = key
        self.size = size
        self.limit = limit


def too_large_error(key: bytes, size: int, limit: int | None, where: str) -> RecordTooLargeError:
    bound = f"the {where} limit of {limit} bytes" if limit is not None else f"the {where} limit"
    return RecordTooLargeError(
        f"record of {size} bytes (key {key.decode('utf-8', 'backslashreplace')}) exceeds {bound}",
        key=key,
        size=size,
        limit=limit,
    )


class DeliveryTracker:
    """Outstanding and failed deliveries of one unit of work (a pass, a checkpoint) on a shared producer.

    Several sources share one producer; a tracker lets each confirm exactly its own records.
    Records the *broker* refused as too large are kept apart in ``too_large``: they are not a delivery
    failure to retry (they would fail the same way on every pass) but records to dead-letter.
    """

    def __init__(self) -> None:
        self.pending = 0
        self.delivered = 0
        self.failed = 0
        self.first_error: KafkaError | None = None
        self.too_large: list[RecordTooLargeError] = []

    def _sent(self) -> None:
        self.pending += 1

    def _done(self, err: KafkaError | None, msg: Message | None = None) -> None:
        self.pending -= 1
        if err is None:
            self.delivered += 1
            return
        if err.code() == KafkaError.MSG_SIZE_TOO_LARGE and msg is not None:
            self.too_large.append(
                too_large_error(msg.key() or b"", len(msg.value() or b""), None, "broker's")
            )
            return
        self.failed += 1
        if self.first_error is None:
            self.first_error = err


class EnvelopeProducer:
    """Wraps confluent-kafka with the settings exactly-once needs and counts deliveries."""

    def __init__(
        self, bootstrap: str, *, client_id: str = "restlake-fetcher", extra: dict[str, Any] | None = None
    ) -> None:
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            # Idempotence gives per-partition exactly-once on retries; it implies acks=all and bounded
            # in-flight requests, stated here so nobody "optimises" them away.
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "message.timeout.ms": 120_000,
        }
        conf.update(extra or {})
        self._producer = Producer(client_config(conf, log))
        self.stats = DeliveryStats()
        self._first_error: KafkaError | None = None
        # Failures since the last flush(): a failure is reported once, not by every later flush.
        self._failed_unreported = 0
        self.max_message_bytes = int(conf.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))
        # Records handed to the client per topic: a source's records vs its dead letters, for progress.
        self._sent: Counter[str] = Counter()

    def sent_to(self, topic: str) -> int:
        """Records produced to ``topic`` by this producer so far (queued, not necessarily confirmed)."""
        return self._sent[topic]

    def _callback(self, tracker: DeliveryTracker | None) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if tracker is not None:
                tracker._done(err, msg)
            if err is None:
                self.stats.delivered += 1
                return
            if tracker is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                return  # the tracker's owner dead-letters it: not a failure for flush() to report
            self.stats.failed += 1
            self._failed_unreported += 1
            if self._first_error is None:
                self._first_error = err
            log.warning("kafka delivery failed: %s", err)

        return on_delivery

    def produce(self, topic: str, envelope: Envelope, tracker: DeliveryTracker | None = None) -> None:
        self.produce_raw(topic, envelope.kafka_key(), envelope.kafka_value(), tracker)

    async def publish(self, topic: str, envelope: Envelope, tracker: DeliveryTracker | None = None) -> None:
        """``send`` for an envelope: keyed by its idempotency key."""
        await self.send(topic, envelope.kafka_key(), envelope.kafka_value(), tracker)

    async def send(
        self, topic: str, key: bytes, value: bytes, tracker: DeliveryTracker | None = None
    ) -> None:
        """Produce one record without blocking the event loop.

        Raises ``RecordTooLargeError`` for a record over the producer's limit, and ``DeliveryError``
        when the queue is full and ``tracker`` already has failed deliveries.

        When the local queue is full (the broker is slow or down) this waits for room in a worker
        thread, so other sources, the ops endpoints and shutdown keep running meanwhile: the
        back-pressure lands on this source only.
        """
        callback = self._callback(tracker)
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=callback)
                break
            except BufferError:
                if tracker is not None and tracker.failed:
                    # Records of this unit already failed (an outage outlasting message.timeout.ms): its
                    # state cannot advance, so waiting for room to queue more would only prolong it.
                    raise DeliveryError(
                        f"Kafka rejected {tracker.failed} record(s) and the local queue is full: "
                        f"{tracker.first_error}"
                    ) from None
                await asyncio.to_thread(self._producer.poll, _BACKPRESSURE_POLL_SECONDS)
            except KafkaException as exc:
                if exc.args and exc.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE:
                    raise too_large_error(
                        key, len(key) + len(value), self.max_message_bytes, "producer's"
                    ) from exc
                raise
        if tracker is not None:
            tracker._sent()
        self.stats.produced += 1
        self.stats.bytes += len(value)
        self._sent[topic] += 1
        self._producer.poll(0)

    def produce_raw(
        self, topic: str, key: bytes, value: bytes, tracker: DeliveryTracker | None = None
    ) -> None:
        """Blocking produce, for callers without an event loop; async code uses ``send``."""
        callback = self._callback(tracker)
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=callback)
                break
            except BufferError:
                # Local queue full: serve delivery reports until there is room (back-pressure, not loss).
                self._producer.poll(0.05)
        if tracker is not None:
            tracker._sent()
        self.stats.produced += 1
        self.stats.bytes += len(value)
        self._sent[topic] += 1
        self._producer.poll(0)

    def flush(self, timeout: float = 120.0) -> None:
        """Wait until Kafka confirmed every record produced so far; raise ``DeliveryError`` otherwise."""
        remaining = self._producer.flush(timeout)
        if remaining or self._failed_unreported:
            err, self._first_error = self._first_error, None
            failed, self._failed_unreported = self._failed_unreported, 0
            raise DeliveryError(
                f"Kafka did not confirm {remaining} record(s) in {timeout:.0f}s and rejected "
                f"{failed}: {err or 'timeout'}"
            )

    async def confirm(self, tracker: DeliveryTracker, timeout: float = 120.0) -> None:
        """Wait (off the event loop) until Kafka confirmed every record of ``tracker``.

        Raises ``DeliveryError`` when some were rejected or are still unconfirmed after ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while tracker.pending > 0 and time.monotonic() < deadline:
            # flush() also sends lingering batches at once; it serves every tracker's callbacks.
            await asyncio.to_thread(self._producer.flush, min(1.0, max(0.0, deadline - time.monotonic())))
        if tracker.pending or tracker.failed:
            raise DeliveryError(
                f"Kafka did not confirm {tracker.pending} record(s) in {timeout:.0f}s and rejected "
                f"{tracker.failed}: {tracker.first_error or 'timeout'}"
            )

    def connected(self, timeout: float = 2.0) -> bool:
        """True when a broker answered a metadata request within ``timeout``."""
        try:
            metadata = self._producer.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return bool(metadata.brokers)
