"""The topic through the Kafka admin API, for clusters without Strimzi's topic operator."""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from restlake.errors import TransientError

log = logging.getLogger(__name__)


def ensure_topic(bootstrap: str, topic: str, *, partitions: int, replicas: int, timeout: float) -> bool:
    """Create ``topic`` unless it exists; True when it was created.

    An unreachable broker is a ``TransientError`` (the status timer retries); an existing topic is
    left as it is, partitions included: shrinking is impossible and growing reorders keys.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000)})
    try:
        if topic in admin.list_topics(timeout=timeout).topics:
            return False
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=replicas)],
            request_timeout=timeout,
        )
        futures[topic].result(timeout)
    except KafkaException as exc:
        error = exc.args[0] if exc.args else None
        if isinstance(error, KafkaError) and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False
        raise TransientError(f"could not create Kafka topic {topic!r} via {bootstrap}: {exc}") from None
    log.info("created kafka topic topic=%s partitions=%d replicas=%d", topic, partitions, replicas)
    return True
