"""The incremental watermark: compare cursor values taken from records, and step back by the lookback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation


def _as_datetime(value: str) -> datetime | None:
    text = value.strip()
    if len(text) < 10 or not text[:4].isdigit() or text[4] != "-":
        return None
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _as_number(value: str) -> Decimal | None:
    try:
        number = Decimal(value.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def sort_key(value: str) -> tuple[int, object]:
    """Timestamps compare as instants, numbers as numbers, anything else as text."""
    when = _as_datetime(value)
    if when is not None:
        return (2, when)
    number = _as_number(value)
    if number is not None:
        return (1, number)
    return (0, value)


def newest(*values: str | None) -> str | None:
    """The largest of the given cursor values (None ignored)."""
    present = [v for v in values if v is not None]
    return max(present, key=sort_key) if present else None


def format_timestamp(when: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``; fractional seconds only when there are some."""
    when = when.astimezone(UTC)
    text = when.strftime("%Y-%m-%dT%H:%M:%S")
    if when.microsecond:
        text += f".{when.microsecond:06d}".rstrip("0")
    return text + "Z"


def request_value(watermark: str, lookback: timedelta) -> str:
    """What to send as the incremental parameter: the watermark minus the lookback for timestamps.

    Numbers and opaque values are sent as they are: a lookback in seconds means nothing for them.
    """
    when = _as_datetime(watermark)
    if when is None:
        return watermark
    if not lookback:
        return format_timestamp(when)
    return format_timestamp(when - lookback)
