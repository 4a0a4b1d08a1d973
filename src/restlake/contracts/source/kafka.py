"""``spec.kafka``: overrides for a source's Kafka topic, and how its dead-letter topic is named."""

from __future__ import annotations

from pydantic import Field

from restlake.contracts.model import SpecModel
from restlake.contracts.patterns import KAFKA_TOPIC

# The dead-letter topic of a source is its topic plus this suffix (fetcher writes it, operator creates it).
DEAD_LETTER_SUFFIX = ".dlq"


class Kafka(SpecModel):
    """Overrides for the source's Kafka topic."""

    topic: str | None = Field(
        None, max_length=249, pattern=KAFKA_TOPIC, description="Topic name; absent means <prefix><name>."
    )
    partitions: int | None = Field(
        None, ge=1, le=1000, description="Partitions when the topic is created, at most 1000."
    )
