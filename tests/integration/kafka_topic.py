"""Reading a whole Kafka topic back in tests, from the beginning up to its end offsets as of now."""

from __future__ import annotations

import logging
import uuid

from confluent_kafka import Consumer, TopicPartition

from restlake.kafka_logging import client_config

LOG = logging.getLogger("tests.kafka")  # librdkafka lines through logging, not fd 2


def read_topic(bootstrap: str, topic: str) -> list[tuple[str | None, bytes]]:
    """Every (key, value) in ``topic``; [] when the topic does not exist or is empty."""
    consumer = Consumer(
        client_config(
            {"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4()}", "enable.auto.commit": False},
            LOG,
        )
    )
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return []
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in metadata.partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in metadata.partitions])
        out: list[tuple[str | None, bytes]] = []
        remaining = {p for p, end in ends.items() if end > 0}
        while remaining:
            msg = consumer.poll(10)
            assert msg is not None, f"timed out reading {topic}; still waiting on partitions {remaining}"
            assert msg.error() is None, msg.error()
            key = msg.key()
            out.append((key.decode() if key is not None else None, msg.value()))
            if msg.offset() + 1 >= ends[msg.partition()]:
                remaining.discard(msg.partition())
        return out
    finally:
        consumer.close()
