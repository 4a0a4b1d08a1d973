"""The operator's topic path without Strimzi: the Kafka admin API against the real local broker."""

from __future__ import annotations

import logging
import uuid

import pytest
from confluent_kafka.admin import AdminClient

from restlake.kafka_admin import ensure_topic
from restlake.kafka_logging import client_config
from restlake.stack.manager import StackEndpoints

pytestmark = pytest.mark.integration
LOG = logging.getLogger("tests.kafka")  # librdkafka lines through logging, not fd 2


def test_creates_the_topic_once_with_the_requested_partitions(stack: StackEndpoints) -> None:
    topic = f"restlake.optest-{uuid.uuid4().hex[:8]}"
    assert ensure_topic(stack.kafka_bootstrap, topic, partitions=2, replicas=1, timeout=20) is True
    assert ensure_topic(stack.kafka_bootstrap, topic, partitions=5, replicas=1, timeout=20) is False
    described = AdminClient(client_config({"bootstrap.servers": stack.kafka_bootstrap}, LOG)).list_topics(
        topic, timeout=20
    )
    assert len(described.topics[topic].partitions) == 2  # an existing topic is never resized
