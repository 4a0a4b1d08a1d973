"""Topics through the Kafka admin API, for clusters without Strimzi's topic operator.

Without Strimzi no owner reference ties a topic to its source, so what the operator created is
written down (``TopicLedger``, a ConfigMap in the operator's namespace) and deleted with the source:
on its deletion event, or at the next start of the operator when the source went while it was down.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from restlake.errors import TransientError
from restlake.kafka_logging import client_config

log = logging.getLogger(__name__)


def ensure_topic(bootstrap: str, topic: str, *, partitions: int, replicas: int, timeout: float) -> bool:
    """Create ``topic`` unless it exists; True when it was created.

    An unreachable broker is a ``TransientError`` (the status timer retries); an existing topic is
    left as it is, partitions included: shrinking is impossible and growing reorders keys.
    """
    admin = AdminClient(
        client_config({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000)}, log)
    )
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


def delete_topics(bootstrap: str, names: list[str], *, timeout: float) -> list[str]:
    """Delete ``names``; returns those deleted. A topic already gone is not an error."""
    admin = AdminClient(
        client_config({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000)}, log)
    )
    deleted: list[str] = []
    try:
        existing = admin.list_topics(timeout=timeout).topics
        wanted = [name for name in names if name in existing]
        if not wanted:
            return []
        for name, future in admin.delete_topics(wanted, request_timeout=timeout).items():
            try:
                future.result(timeout)
                deleted.append(name)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                if not (isinstance(error, KafkaError) and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
                    raise
    except KafkaException as exc:
        raise TransientError(f"could not delete Kafka topics {names} via {bootstrap}: {exc}") from None
    log.info("deleted kafka topics topics=%s", ",".join(deleted))
    return deleted
