"""Conversions between epoch milliseconds and the two text forms the API speaks (ISO-8601 Z, HTTP-date)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime

# Day prefixes are few and formatting them dominates; the cache is bounded by _DAY_CACHE_MAX.
_DAY_CACHE: dict[int, str] = {}
_DAY_CACHE_MAX = 100_000


def iso_z(ms: int) -> str:
    """``2024-01-01T00:00:00Z``: whole seconds, like GitHub, so equal timestamps really occur."""
    day, second_of_day = divmod(ms // 1000, 86_400)
    prefix = _DAY_CACHE.get(day)
    if prefix is None:
        t = time.gmtime(day * 86_400)
        prefix = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        if len(_DAY_CACHE) < _DAY_CACHE_MAX:
            _DAY_CACHE[day] = prefix
    hours, rest = divmod(second_of_day, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{prefix}{hours:02d}:{minutes:02d}:{seconds:02d}Z"


def parse_iso(text: str) -> int:
    """Epoch milliseconds of an ISO-8601 timestamp; naive values are taken as UTC.

    Raises ValueError on anything else.
    """
    value = text.strip()
    if not value:
        raise ValueError("empty timestamp")
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    # Integer arithmetic on the timedelta keeps sub-millisecond input from rounding upwards.
    delta = parsed - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def http_date(ms: int) -> str:
    """RFC 9110 IMF-fixdate, e.g. ``Mon, 01 Jan 2024 00:00:00 GMT``."""
    return formatdate(ms // 1000, usegmt=True)


def parse_http_date(text: str) -> int | None:
    """Epoch milliseconds of an HTTP-date, or None when it cannot be parsed (then the header is ignored)."""
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp()) * 1000
