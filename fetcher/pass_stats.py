"""What one fetch pass was asked to walk (:class:`FetchTarget`) and what it did (:class:`PassStats`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from restlake.contracts.envelope import ParentRef


@dataclass
class PassStats:
    """What one pass did; ``complete`` is False when it stopped early on an error or a shutdown."""

    requests: int = 0
    pages: int = 0
    not_modified: int = 0
    records: int = 0
    produced: int = 0
    skipped: int = 0  # records at the watermark already delivered unchanged, not published again
    bytes_received: int = 0
    bad_pages: int = 0
    dead_letters: int = 0
    rejected: int = 0  # records dead-lettered instead of published (over the size limit, unserializable)
    missing_ids: int = 0  # records whose idPath was missing or null
    future_cursors: int = 0  # records whose cursor lay beyond now + maxFutureSkew
    complete: bool = False
    truncated: bool = False  # stopped with pages left: maxPages reached, or a page repeated the previous one
    stopped: bool = False  # stopped by a shutdown request
    watermark: str | None = None  # the watermark in force after the pass
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def outcome(self) -> str:
        """``complete``, ``stopped`` or ``error``: the pass metric's label and the stored summary's."""
        if self.complete:
            return "complete"
        return "stopped" if self.stopped else "error"


@dataclass(frozen=True)
class FetchTarget:
    """One URL of a child source (``spec.parent``): the request.url filled from one parent record,
    the state scope its validators and watermark live under, and the parent its records name.

    A pass over a target is an ordinary pass (``fetch_pass(..., target=...)``): the child source's
    pagination, conditional requests, watermark and rate limiter, only the first URL and the state
    row set differ. ``fetcher.children`` builds one per due parent record.
    """

    url: str
    scope: str
    parent: ParentRef | None = None
