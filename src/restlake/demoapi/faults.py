"""Switchable, reproducible faults for the listing endpoints.

Every listing request gets a sequence number; whether it fails, stalls or returns a broken body is
a pure function of ``(fault seed, sequence number)``, so a test that sends the same requests in
the same order sees the same faults. Reconfiguring restarts the sequence at 0.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from restlake.demoapi.hashing import unit_float

log = logging.getLogger(__name__)


class FaultKind(StrEnum):
    FAIL_NEXT = "fail_next"
    ERROR = "error"
    SLOW = "slow"
    TRUNCATE = "truncate"
    WRONG_CONTENT_TYPE = "wrong_content_type"
    BAD_UTF8 = "bad_utf8"


class FaultConfig(BaseModel):
    """Fault probabilities per listing request; all zero means a well-behaved API."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    error_rate: float = Field(0.0, ge=0.0, le=1.0, description="Share answered with error_status.")
    error_status: int = Field(503, ge=400, le=599, description="Status of error and fail_next responses.")
    slow_rate: float = Field(0.0, ge=0.0, le=1.0, description="Share delayed by slow_seconds.")
    slow_seconds: float = Field(1.0, ge=0.0, le=600.0)
    truncate_rate: float = Field(0.0, ge=0.0, le=1.0, description="Share of 200s cut in half.")
    wrong_content_type_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of 200s replaced by an HTML page (text/html)."
    )
    bad_utf8_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of 200s with invalid UTF-8 bytes inside a JSON string."
    )
    fail_next: int = Field(0, ge=0, description="Exactly the next N listing requests fail with error_status.")
    seed: int = Field(0, description="Seed of the per-request fault draws.")


@dataclass(frozen=True)
class FaultPlan:
    """What to do to one request: decided before the handler runs."""

    sequence: int
    error_status: int | None = None
    slow_seconds: float = 0.0
    body_fault: FaultKind | None = None


NO_FAULT = FaultPlan(sequence=-1)

# Independent draw streams per kind, so raising one rate does not reshuffle the others.
_STREAMS = {kind: index + 1 for index, kind in enumerate(FaultKind)}
_BODY_FAULTS = (FaultKind.TRUNCATE, FaultKind.WRONG_CONTENT_TYPE, FaultKind.BAD_UTF8)


class FaultInjector:
    """Holds the fault config, the request sequence and the counts of faults injected."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.injected: Counter[str] = Counter()
        self.configure(config or FaultConfig())

    def configure(self, config: FaultConfig) -> None:
        self.config = config
        self._fail_next_left = config.fail_next
        self._sequence = 0
        log.info("faults configured", extra={"faults": config.model_dump()})

    def clear(self) -> None:
        self.configure(FaultConfig())

    @property
    def fail_next_left(self) -> int:
        return self._fail_next_left

    def plan(self) -> FaultPlan:
        """Draw the faults of the next listing request."""
        cfg = self.config
        seq = self._sequence
        self._sequence += 1
        if self._fail_next_left > 0:
            self._fail_next_left -= 1
            self.injected[FaultKind.FAIL_NEXT] += 1
            return FaultPlan(sequence=seq, error_status=cfg.error_status)

        def hit(kind: FaultKind, rate: float) -> bool:
            return rate > 0.0 and unit_float(cfg.seed, seq, _STREAMS[kind]) < rate

        slow = cfg.slow_seconds if hit(FaultKind.SLOW, cfg.slow_rate) else 0.0
        if slow:
            self.injected[FaultKind.SLOW] += 1
        if hit(FaultKind.ERROR, cfg.error_rate):
            self.injected[FaultKind.ERROR] += 1
            return FaultPlan(sequence=seq, error_status=cfg.error_status, slow_seconds=slow)
        rates = (cfg.truncate_rate, cfg.wrong_content_type_rate, cfg.bad_utf8_rate)
        for kind, rate in zip(_BODY_FAULTS, rates, strict=True):
            if hit(kind, rate):
                # Counted when applied: a 304 has no body to break.
                return FaultPlan(sequence=seq, slow_seconds=slow, body_fault=kind)
        return FaultPlan(sequence=seq, slow_seconds=slow)

    def state(self) -> dict[str, object]:
        return {
            "config": self.config.model_dump(),
            "fail_next_left": self._fail_next_left,
            "sequence": self._sequence,
            "injected": {kind.value: self.injected[kind] for kind in FaultKind},
        }


def break_body(kind: FaultKind, body: bytes, content_type: str = "application/json") -> tuple[bytes, str]:
    """The broken body and its Content-Type for a body fault (``content_type``: the intact body's)."""
    if kind is FaultKind.TRUNCATE:
        # A connection cut mid-body keeps its headers: a JSON Lines or CSV page stays labelled as such.
        return body[: len(body) // 2], content_type
    if kind is FaultKind.WRONG_CONTENT_TYPE:
        # What a misbehaving proxy or maintenance page sends with a 200.
        html = b"<!DOCTYPE html><html><head><title>Maintenance</title></head><body>Back soon.</body></html>"
        return html, "text/html"
    quote = body.find(b'"')
    if quote < 0:
        return b'["\xff\xfe"]', "application/json"
    # Inside the first JSON string: the bytes are invalid UTF-8, the JSON structure stays intact.
    return body[: quote + 1] + b"\xff\xfe" + body[quote + 1 :], "application/json"
