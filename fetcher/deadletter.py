"""Dead-letter events: one JSON message per page that could not be used, on ``<topic>.dlq``.

The event references the raw body (its sha256 and size) and carries a bounded excerpt, enough to
see what the server sent without turning the DLQ into a copy of a runaway response.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from restlake.contracts.source.kafka import DEAD_LETTER_SUFFIX
from restlake.redaction import redact as redact_text

# One name for the suffix, so the topic the operator creates is the one the fetcher writes to.
DLQ_SUFFIX = DEAD_LETTER_SUFFIX
# Bytes of the raw body kept in an event; the digest covers all of it.
EXCERPT_BYTES = 512
# The excerpt is redacted over this many times its size, so context around the cut is seen.
_REDACTION_WINDOW = 4


def dlq_topic(topic: str) -> str:
    return topic + DLQ_SUFFIX


class DeadLetter(BaseModel):
    """A page the fetcher gave up on, or one record of a page it could not publish (``record_key`` set)."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="IngestionSource name.")
    url: str = Field(description="The page URL, secrets redacted.")
    status: int | None = Field(None, description="HTTP status of the last attempt; None if none came.")
    error_class: str = Field(description="restlake error type, e.g. BadPageError, HttpStatusError.")
    reason: str = Field(description="Bounded reason code, the same as the bad-pages metric label.")
    message: str = Field(description="What went wrong, secrets redacted.")
    attempts: int = Field(description="Requests made for this page before giving up.")
    body_sha256: str | None = Field(None, description="sha256 of the raw body received, if any.")
    body_bytes: int | None = Field(None, description="Size of the raw body received (up to the cap).")
    body_excerpt: str | None = Field(
        None,
        description=f"First {EXCERPT_BYTES} characters of the body, secrets redacted, undecodable "
        "bytes escaped.",
    )
    record_key: str | None = Field(
        None, description="Idempotency key of the one record dead-lettered; None when the whole page was."
    )
    line: int | None = Field(
        None,
        description="Line of the response the one record dead-lettered was read from (JSON Lines, CSV); "
        "None for a JSON document or a whole page.",
    )
    failed_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    def kafka_key(self) -> bytes:
        return f"{self.source}/{hashlib.sha256(self.url.encode()).hexdigest()[:16]}".encode()

    def kafka_value(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


def body_reference(
    raw: bytes | None, redact: Callable[[str], str] = redact_text
) -> tuple[str | None, int | None, str | None]:
    """``(sha256, size, excerpt)`` of a raw body; all None when there was none.

    The excerpt is redacted before it is cut to size: cut first, a secret straddling the cut, or a
    ``"SecretAccessKey": "…`` whose value the cut separates from its name, would slip through.
    """
    if raw is None:
        return None, None, None
    window = raw[: EXCERPT_BYTES * _REDACTION_WINDOW].decode("utf-8", errors="backslashreplace")
    excerpt = redact(window)[:EXCERPT_BYTES]
    return hashlib.sha256(raw).hexdigest(), len(raw), excerpt
