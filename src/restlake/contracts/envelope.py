"""The event envelope: the Kafka value every fetcher publishes and every consumer reads.

Kafka key = ``idempotency_key``. The same record fetched twice yields the same key, so
every sink can drop the second copy without coordination.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ENVELOPE_VERSION = 1


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no insignificant whitespace: equal values give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def content_hash(payload: Any) -> str:
    """sha256 of the canonical JSON of a record, hex-encoded."""
    return hashlib.sha256(canonical_json(payload)).hexdigest()


def idempotency_key(source: str, external_id: str, payload_hash: str) -> str:
    """``source/external_id/content-hash``: stable across refetches of an unchanged record."""
    return f"{source}/{external_id}/{payload_hash}"


class RequestInfo(BaseModel):
    """What the fetcher saw when it got the page a record came from."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="The URL requested, secrets in the query string redacted.")
    status: int = Field(description="HTTP status of the response.")
    etag: str | None = Field(None, description="ETag header of the response, if any.")
    last_modified: str | None = Field(None, description="Last-Modified header of the response, if any.")
    cursor: str | None = Field(None, description="The page cursor (cursor, page number or offset) requested.")
    # Additive and optional: older envelopes (and JSON-document bodies) have none, and it is left out
    # of the JSON when absent, so their bytes stay what they were.
    line: int | None = Field(
        None,
        exclude_if=lambda value: value is None,
        description="Line of the response the record was read from (1 = the first line), for JSON Lines "
        "and CSV bodies; absent for a JSON document.",
    )


class ParentRef(BaseModel):
    """The parent record a child source's record was fetched for (``spec.parent``)."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="Identity of the parent source (its Postgres `source` value).")
    external_id: str = Field(description="External id of the parent record.")


class Envelope(BaseModel):
    """One record as published to Kafka."""

    model_config = ConfigDict(extra="forbid")

    envelope_version: int = Field(ENVELOPE_VERSION, description="Bumped on an incompatible change.")
    source: str = Field(description="IngestionSource name.")
    external_id: str = Field(description="Id from the spec's idPath, else the content hash.")
    idempotency_key: str = Field(description="source/external_id/content-hash; also the Kafka key.")
    content_hash: str = Field(description="sha256 of the canonical JSON payload.")
    version: str | None = Field(
        None,
        description="Raw value at the spec's versionPath (e.g. updated_at); the newer one wins in Postgres.",
    )
    fetched_at: datetime = Field(description="UTC time the HTTP response arrived.")
    request: RequestInfo
    payload: Any = Field(description="The record, untouched.")
    # Added without a version bump: optional and nullable, so envelopes written before it parse as
    # they did, and a stream job that predates it ignores the unknown field (its schema is explicit).
    parent: ParentRef | None = Field(
        None, description="For a child source (spec.parent): the parent record it was fetched for."
    )

    @classmethod
    def wrap(
        cls,
        *,
        source: str,
        payload: Any,
        external_id: str | None,
        version: str | None,
        request: RequestInfo,
        fetched_at: datetime | None = None,
        quarantine_missing_id: bool = False,
        parent: ParentRef | None = None,
    ) -> Envelope:
        """``quarantine_missing_id``: a missing id stays empty instead of becoming the content hash,
        so the stream job quarantines the record (``missing_field:external_id``) with its Kafka
        coordinates rather than storing each of its versions as a new row."""
        digest = content_hash(payload)
        ext_id = external_id or ("" if quarantine_missing_id else digest)
        return cls(
            source=source,
            external_id=ext_id,
            idempotency_key=idempotency_key(source, ext_id, digest),
            content_hash=digest,
            version=version,
            fetched_at=fetched_at or datetime.now(UTC),
            request=request,
            payload=payload,
            parent=parent,
        )

    def kafka_key(self) -> bytes:
        return self.idempotency_key.encode("utf-8")

    def kafka_value(self) -> bytes:
        # A source without a parent publishes exactly the bytes it did before the field existed.
        exclude = {"parent"} if self.parent is None else None
        return self.model_dump_json(exclude=exclude).encode("utf-8")
