"""Time windows of a first load: ``[start, start+w)``, ``[start+w, start+2w)``, ... up to now.

A large incremental API is read in slices (``since``/``until``) so that a first load of years of
data neither times out nor holds one cursor for hours. This module only plans: which windows are
left, and how their bounds are written in a request. The poller walks each window as one pass and
commits the window's end (``WindowProgress``) together with the watermark, after Kafka confirmed
the window's records, so a crash resumes at the window where it stopped.

Arithmetic is in UTC (aware datetimes, no local time): a day is always 86400 s, DST never shifts a
window. Epoch-number cursors are counted in the unit of ``start``: a number of 12 digits or more is
milliseconds (10^11 seconds is the year 5138, 10^11 milliseconds is 1973), else seconds. The last
window ends at *now*, never later: a window ending in the future would be marked complete while
records dated before its end can still be written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from restlake.errors import PermanentError, RestlakeError
from restlake.fetcher.watermark import format_timestamp

log = logging.getLogger(__name__)

# From this many digits on an epoch number is taken as milliseconds (see the module docstring).
_MILLISECOND_DIGITS = 12


class WindowSpecError(PermanentError):
    """``spec.incremental.start`` cannot be planned from (the model refuses these; this guards callers)."""


@dataclass(frozen=True)
class Window:
    """One window; ``start`` and ``end`` are the request values (``end`` exclusive)."""

    start: str
    end: str
    last: bool  # the window that reaches now: once it is complete, the first load is done


@dataclass(frozen=True)
class WindowProgress:
    """What is stored of a windowed first load: where the next window starts, or that it is done.

    ``start`` is the spec's start the load was planned from: a spec whose start changed plans its
    first load afresh (records fetched again carry the same keys, so nothing is doubled).
    """

    start: str
    next: str
    done: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"start": self.start, "next": self.next, "done": self.done}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> WindowProgress:
        return cls(start=str(value["start"]), next=str(value["next"]), done=bool(value.get("done")))


@dataclass(frozen=True)
class _Axis:
    """How to read, step and write values of one kind (timestamps, epoch seconds or milliseconds)."""

    kind: str  # "timestamp", "epoch_s" or "epoch_ms"
    zoned: bool = True  # timestamps only: written with a Z, or without a zone like the start

    def parse(self, value: str) -> datetime | int:
        if self.kind == "timestamp":
            return _parse_timestamp(value)
        return int(value)

    def write(self, value: datetime | int) -> str:
        if isinstance(value, int):
            return str(value)
        if self.zoned:
            return format_timestamp(value)
        return format_timestamp(value)[:-1]  # the same text, without the Z: UTC, as the start was

    def step(self, value: datetime | int, window: timedelta) -> datetime | int:
        if isinstance(value, datetime):
            return value + window
        millis = window // timedelta(milliseconds=1)
        if self.kind == "epoch_ms":
            return value + millis
        # Sub-second windows cannot be expressed in whole epoch seconds; the model's minimum is 1s.
        return value + max(1, millis // 1000)

    def now(self, when: datetime) -> datetime | int:
        if self.kind == "timestamp":
            return when
        millis = int(when.timestamp() * 1000)
        return millis if self.kind == "epoch_ms" else millis // 1000


def _parse_timestamp(value: str) -> datetime:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise WindowSpecError(
            f"spec.incremental.start: {value!r} is not an ISO 8601 timestamp ({exc})"
        ) from None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def axis_of(start: str) -> _Axis:
    """The kind of values ``start`` sets for every window; refuses anything else, naming the field."""
    text = start.strip()
    if text.isdigit():
        return _Axis("epoch_ms" if len(text) >= _MILLISECOND_DIGITS else "epoch_s")
    if len(text) < 10 or text[4:5] != "-":
        raise WindowSpecError(
            f"spec.incremental.start: {start!r} is neither an ISO 8601 timestamp nor a whole epoch number"
        )
    parsed = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        zoned = datetime.fromisoformat(parsed).tzinfo is not None
    except ValueError as exc:
        raise WindowSpecError(
            f"spec.incremental.start: {start!r} is not an ISO 8601 timestamp ({exc})"
        ) from None
    return _Axis("timestamp", zoned=zoned)


def plan(start: str, window: timedelta, now: datetime, resume_at: str | None = None) -> Iterator[Window]:
    """The windows left, in order, from ``resume_at`` (the stored next start) or ``start`` up to ``now``.

    Nothing when the start is at or after now (a start in the future: nothing to load yet). A window
    longer than the whole range is one window ``[start, now)``.
    """
    if window <= timedelta(0):
        raise WindowSpecError(f"spec.incremental.window: must be greater than 0s, got {window}")
    axis = axis_of(start)
    position = axis.parse(resume_at if resume_at is not None else start)
    limit = axis.now(now.astimezone(UTC))
    while position < limit:  # type: ignore[operator]  # both sides are of the axis' one kind
        end = axis.step(position, window)
        last = end >= limit  # type: ignore[operator]
        if last:
            end = limit
        yield Window(start=axis.write(position), end=axis.write(end), last=last)
        position = end


class WindowedLoad:
    """Walks the windows of a first load, one pass each, until the window that reaches now is done.

    A loop *around* ``SourceFetcher.fetch_pass``: each window is one pass whose first request carries
    the window's bounds, and whose final commit (after Kafka confirmed everything) stores the next
    window's start beside the watermark. The first load runs once per source: when its fetch state
    holds neither a watermark nor a finished load (a source that polled before it had windows keeps
    polling from its watermark). A changed ``start``, during the load or after it, plans the load
    again from the new start: what is fetched again carries the same idempotency keys.
    """

    def __init__(self, start: str, window: timedelta) -> None:
        axis_of(start)  # refuses an unplannable start before the first request
        self.start = start
        self.window = window

    @classmethod
    def of(cls, incremental: Any) -> WindowedLoad | None:
        if incremental is None or incremental.window is None or incremental.start is None:
            return None
        return cls(incremental.start, incremental.window.timedelta)

    def progress(self, window: Window) -> dict[str, Any]:
        """What a complete ``window`` stores: the next window starts at its end."""
        return WindowProgress(start=self.start, next=window.end, done=window.last).as_json()

    def resume_value(self, state: Any) -> str:
        """The ``since`` of the first poll after a load that found no cursor: where its last window
        ended (the lookback still applies), else the start."""
        stored = self._stored(state)
        return stored.next if stored is not None else self.start

    def _stored(self, state: Any) -> WindowProgress | None:
        if not state.window:
            return None
        try:
            progress = WindowProgress.from_json(state.window)
        except (KeyError, TypeError, ValueError):
            log.warning("unreadable window progress %r: planning the first load afresh", state.window)
            return None
        return progress if progress.start == self.start else None

    async def walk(self, fetcher: Any, session: Any, stop: Any) -> Any:
        """The windows' passes summed, or None when there is no first load to do (poll as usual)."""
        fields = {"source": fetcher.name}
        try:
            state = await fetcher.state_store.load(fetcher.name)
        except RestlakeError:
            return None  # the pass reports it, as without windows
        stored = self._stored(state)
        if stored is None and state.window:
            log.info(
                "spec.incremental.start changed: the first load starts again from %s",
                self.start,
                extra=fields,
            )
        elif stored is None and state.watermark is not None:
            return None  # polled before windows were configured: its watermark goes on
        if stored is not None and stored.done:
            return None
        total: Any = None
        resume_at = stored.next if stored is not None else None
        for window in plan(self.start, self.window, datetime.now(UTC), resume_at):
            log.info("first load: window [%s, %s)", window.start, window.end, extra=fields)
            stats = await fetcher.fetch_pass(session, stop, window=window)
            total = stats if total is None else _add(total, stats)
            if not stats.complete:
                # The window's progress was not committed: the next pass starts at this window again.
                return total
        if total is None:
            # The start is now or later: nothing to load yet. Done, so polling asks from the start.
            done = WindowProgress(self.start, self.start, done=True).as_json()
            try:
                await fetcher.state_store.commit(fetcher.name, [], window=done)
            except RestlakeError as exc:  # not stored: the next pass finds the same empty plan
                log.warning("first load state not saved: %s", exc, extra=fields)
            return None
        log.info("first load done; polling from the watermark %s", total.watermark, extra=fields)
        return total


def _add(total: Any, stats: Any) -> Any:
    """Two passes' stats as one: counts summed, the later outcome and watermark kept."""
    summed = {
        name: getattr(total, name) + getattr(stats, name)
        for name, value in vars(total).items()
        if isinstance(value, int) and not isinstance(value, bool)
    }
    return replace(stats, **summed)
