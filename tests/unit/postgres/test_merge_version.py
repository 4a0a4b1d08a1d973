"""The "incoming row is newer" rule of restlake.postgres.merge, in its pure-Python form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from restlake.postgres.merge import ParsedVersion, VersionState, is_newer, parse_version

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ParsedVersion()),
        ("2024-05-01T12:00:00Z", ParsedVersion(ts=T0)),
        (
            "2024-05-01T14:00:00+02:00",
            ParsedVersion(ts=datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2)))),
        ),
        ("2024-05-01 12:00:00", ParsedVersion(ts=T0)),  # no zone means UTC
        ("2024-05-01", ParsedVersion(ts=datetime(2024, 5, 1, tzinfo=UTC))),
        ("Wed, 01 May 2024 12:00:00 GMT", ParsedVersion(ts=T0)),  # RFC 2822, as in Last-Modified
        ("1714564800", ParsedVersion(num=Decimal("1714564800"))),  # epoch seconds stay a number
        ("20240501", ParsedVersion(num=Decimal("20240501"))),  # digits are a number, not ISO basic
        (" 42 ", ParsedVersion(num=Decimal(42))),
        ("-1.5e3", ParsedVersion(num=Decimal("-1.5e3"))),
        ("1e5000", ParsedVersion()),  # absurd exponent: opaque, so it cannot fail a COPY
        ('W/"abc"', ParsedVersion()),
        ("v2", ParsedVersion()),
        ("", ParsedVersion()),
        ("NaN", ParsedVersion()),
    ],
)
def test_parse_version(raw: str | None, expected: ParsedVersion) -> None:
    assert parse_version(raw) == expected


def state(h: str, version: str | None, fetched: datetime | None = T0) -> VersionState:
    return VersionState(content_hash=h, version=version, fetched_at=fetched)


LATER = T0 + timedelta(minutes=1)
EARLIER = T0 - timedelta(minutes=1)


@pytest.mark.parametrize(
    ("incoming", "current", "newer"),
    [
        # 1. same content never rewrites, whatever the versions say
        (state("a", "2025-01-01T00:00:00Z", LATER), state("a", "2024-01-01T00:00:00Z"), False),
        # 2. timestamps compare as instants, not as strings
        (state("b", "2024-05-01T13:00:00+02:00"), state("a", "2024-05-01T12:00:00Z"), False),
        (state("b", "2024-05-01T15:00:00+02:00"), state("a", "2024-05-01T12:00:00Z"), True),
        (state("b", "2024-05-01T11:00:00Z", LATER), state("a", "2024-05-01T12:00:00Z"), False),  # stale
        # 3. numbers compare as numbers: "10" > "9"
        (state("b", "10"), state("a", "9"), True),
        (state("b", "9", LATER), state("a", "10"), False),
        (state("b", "1714564801.5"), state("a", "1714564801"), True),
        # 4. otherwise fetched_at decides
        (state("b", "etag-b", LATER), state("a", "etag-z"), True),  # opaque
        (state("b", "etag-z", EARLIER), state("a", "etag-b"), False),
        (state("b", None, LATER), state("a", None), True),  # no version
        (
            state("b", "2024-05-01T12:00:00Z", LATER),
            state("a", "2024-05-01T12:00:00Z"),
            True,
        ),  # equal version
        (state("b", "2024-05-01T12:00:00Z", EARLIER), state("a", "2024-05-01T12:00:00Z"), False),
        (state("b", "1714564800", LATER), state("a", "2024-05-01T12:00:00Z"), True),  # mixed kinds
        (state("b", "1714564900", EARLIER), state("a", "2024-05-01T12:00:00Z"), False),
        (state("b", "v1", T0), state("a", "v1", T0), False),  # a tie keeps what is stored
        # rows written before the merge existed have no fetched_at: any incoming row wins
        (state("b", None, T0), VersionState(None, None, None), True),
        (state("b", None, None), state("a", None), False),
    ],
)
def test_is_newer(incoming: VersionState, current: VersionState, newer: bool) -> None:
    assert is_newer(incoming, current) is newer
