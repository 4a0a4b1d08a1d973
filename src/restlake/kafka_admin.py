"""Kafka topics through the admin API: the one place restlake creates and deletes them.

Local runs (``restlake run``, the fetcher with topic creation on) create a source's topics before
producing; the operator does it for clusters without Strimzi's topic operator and deletes what it
created with the source (``restlake.operator.topic_ledger``). Both follow one policy: an existing
topic is left as it is, partitions included (shrinking is impossible and growing reorders keys),
and a broker that does not answer is a ``TransientError``: the caller's retry decides.
"""

from __future__ import annotations

import logging

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from restlake.errors import TransientError
from restlake.kafka_logging import client_config

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 30.0


def _admin(bootstrap: str, timeout: float) -> AdminClient:
    return AdminClient(
        client_config({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000)}, log)
    )


def _is(exc: KafkaException, code: int) -> bool:
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.code() == code


def ensure_topic(
    bootstrap: str,
    topic: str,
    partitions: int,
    *,
    replicas: int = 1,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> bool:
    """Create ``topic`` unless it exists; True when it was created.

    ``timeout`` bounds each admin call (listing, creating). One created concurrently by someone
    else counts as existing.
    """
    admin = _admin(bootstrap, timeout)
    try:
        if topic in admin.list_topics(timeout=timeout).topics:
            return False
        futures = admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=replicas)],
            request_timeout=timeout,
        )
        futures[topic].result(timeout)
    except KafkaException as exc:
        if _is(exc, KafkaError.TOPIC_ALREADY_EXISTS):
            return False
        raise TransientError(f"could not create Kafka topic {topic!r} via {bootstrap}: {exc}") from None
    log.info("created kafka topic topic=%s partitions=%d replicas=%d", topic, partitions, replicas)
    return True


def delete_topics(bootstrap: str, names: list[str], *, timeout: float = DEFAULT_TIMEOUT_S) -> list[str]:
    """Delete ``names``; returns those deleted. A topic already gone is not an error."""
    admin = _admin(bootstrap, timeout)
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
                if not _is(exc, KafkaError.UNKNOWN_TOPIC_OR_PART):
                    raise
    except KafkaException as exc:
        raise TransientError(f"could not delete Kafka topics {names} via {bootstrap}: {exc}") from None
    log.info("deleted kafka topics topics=%s", ",".join(deleted))
    return deleted
