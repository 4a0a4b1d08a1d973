"""The fetcher's Kafka producer: idempotent, acks=all, keyed by idempotency key."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from restlake.contracts.envelope import Envelope
from restlake.errors import TransientError

log = logging.getLogger(__name__)


class DeliveryError(TransientError):
    """Kafka did not confirm every record; fetch state must not advance past them."""


@dataclass
class DeliveryStats:
    produced: int = 0
    delivered: int = 0
    failed: int = 0
    bytes: int = 0


class EnvelopeProducer:
    """Wraps confluent-kafka with the settings exactly-once needs and counts deliveries."""

    def __init__(
        self, bootstrap: str, *, client_id: str = "restlake-fetcher", extra: dict | None = None
    ) -> None:
        conf = {
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
        self._producer = Producer(conf)
        self.stats = DeliveryStats()
        self._first_error: KafkaError | None = None

    def _on_delivery(self, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self.stats.delivered += 1
            return
        self.stats.failed += 1
        if self._first_error is None:
            self._first_error = err
        log.warning("kafka delivery failed: %s", err)

    def produce(self, topic: str, envelope: Envelope) -> None:
        value = envelope.kafka_value()
        key = envelope.kafka_key()
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                break
            except BufferError:
                # Local queue full: serve delivery reports until there is room (back-pressure, not loss).
                self._producer.poll(0.05)
        self.stats.produced += 1
        self.stats.bytes += len(value)
        self._producer.poll(0)

    def flush(self, timeout: float = 120.0) -> None:
        """Wait until Kafka confirmed every record produced so far; raise ``DeliveryError`` otherwise."""
        remaining = self._producer.flush(timeout)
        if remaining or self.stats.failed:
            err, self._first_error = self._first_error, None
            raise DeliveryError(
                f"Kafka did not confirm {remaining} record(s) in {timeout:.0f}s and rejected "
                f"{self.stats.failed}: {err or 'timeout'}"
            )


def ensure_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 30.0) -> bool:
    """Create ``topic`` if it does not exist (local runs only; on Kubernetes the operator owns topics).

    Returns True when it was created.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout
    if topic in admin.list_topics(timeout=timeout).topics:
        return False
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    try:
        futures[topic].result(max(1.0, deadline - time.monotonic()))
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise TransientError(f"could not create Kafka topic {topic!r}: {exc}") from exc
        return False
    log.info("created kafka topic %s with %d partitions", topic, partitions)
    return True
