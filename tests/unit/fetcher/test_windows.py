"""Planning the time windows of a first load: bounds, kinds of values, and the edges of the range."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from restlake.fetcher.windows import Window, WindowedLoad, WindowProgress, WindowSpecError, axis_of, plan

DAY = timedelta(days=1)
NOW = datetime(2024, 1, 4, 12, 30, tzinfo=UTC)


def _bounds(windows: list[Window]) -> list[tuple[str, str]]:
    return [(w.start, w.end) for w in windows]


def test_daily_windows_abut_and_the_last_one_ends_at_now() -> None:
    windows = list(plan("2024-01-01T00:00:00Z", DAY, NOW))
    assert _bounds(windows) == [
        ("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z"),
        ("2024-01-02T00:00:00Z", "2024-01-03T00:00:00Z"),
        ("2024-01-03T00:00:00Z", "2024-01-04T00:00:00Z"),
        ("2024-01-04T00:00:00Z", "2024-01-04T12:30:00Z"),
    ]
    assert [w.last for w in windows] == [False, False, False, True]
    # Each window starts where the one before it ended: nothing between two windows is skipped.
    assert all(a.end == b.start for a, b in itertools.pairwise(windows))


def test_a_window_ending_exactly_at_now_is_the_last() -> None:
    windows = list(plan("2024-01-02T12:30:00Z", DAY, NOW))
    assert _bounds(windows) == [
        ("2024-01-02T12:30:00Z", "2024-01-03T12:30:00Z"),
        ("2024-01-03T12:30:00Z", "2024-01-04T12:30:00Z"),
    ]
    assert [w.last for w in windows] == [False, True]


def test_resuming_starts_at_the_stored_next_window() -> None:
    windows = list(plan("2024-01-01T00:00:00Z", DAY, NOW, resume_at="2024-01-03T00:00:00Z"))
    assert _bounds(windows)[0] == ("2024-01-03T00:00:00Z", "2024-01-04T00:00:00Z")
    assert len(windows) == 2


def test_a_window_larger_than_the_range_is_one_window_up_to_now() -> None:
    windows = list(plan("2024-01-04T00:00:00Z", timedelta(days=365), NOW))
    assert _bounds(windows) == [("2024-01-04T00:00:00Z", "2024-01-04T12:30:00Z")]
    assert windows[0].last


@pytest.mark.parametrize("start", ["2024-01-04T12:30:00Z", "2024-06-01T00:00:00Z", "1893456000"])
def test_a_start_at_or_after_now_has_nothing_to_load(start: str) -> None:
    assert list(plan(start, DAY, NOW)) == []


def test_utc_arithmetic_ignores_dst_and_offsets() -> None:
    # 2024-03-31 is a DST change in Europe: a day is still 24 h, and an offset start is written in UTC.
    windows = list(plan("2024-03-30T01:00:00+01:00", DAY, datetime(2024, 4, 1, 0, 0, tzinfo=UTC)))
    assert _bounds(windows) == [
        ("2024-03-30T00:00:00Z", "2024-03-31T00:00:00Z"),
        ("2024-03-31T00:00:00Z", "2024-04-01T00:00:00Z"),
    ]


def test_a_start_without_a_zone_is_utc_and_windows_are_written_without_one() -> None:
    windows = list(plan("2024-01-03T00:00:00", DAY, NOW))
    assert _bounds(windows) == [
        ("2024-01-03T00:00:00", "2024-01-04T00:00:00"),
        ("2024-01-04T00:00:00", "2024-01-04T12:30:00"),
    ]


def test_a_date_is_midnight_utc_and_written_without_a_zone_like_it() -> None:
    assert _bounds(list(plan("2024-01-04", timedelta(hours=6), NOW))) == [
        ("2024-01-04T00:00:00", "2024-01-04T06:00:00"),
        ("2024-01-04T06:00:00", "2024-01-04T12:00:00"),
        ("2024-01-04T12:00:00", "2024-01-04T12:30:00"),
    ]


def test_a_fractional_now_is_kept_in_the_last_bound() -> None:
    now = datetime(2024, 1, 4, 0, 0, 1, 250_000, tzinfo=UTC)
    assert _bounds(list(plan("2024-01-04T00:00:00Z", DAY, now))) == [
        ("2024-01-04T00:00:00Z", "2024-01-04T00:00:01.25Z")
    ]


def test_epoch_seconds_step_in_seconds_up_to_now() -> None:
    start = int(datetime(2024, 1, 3, tzinfo=UTC).timestamp())
    windows = list(plan(str(start), DAY, NOW))
    assert _bounds(windows) == [
        (str(start), str(start + 86_400)),
        (str(start + 86_400), str(int(NOW.timestamp()))),
    ]


def test_epoch_milliseconds_from_twelve_digits_on() -> None:
    start = int(datetime(2024, 1, 4, 12, tzinfo=UTC).timestamp() * 1000)
    windows = list(plan(str(start), timedelta(minutes=10), NOW))
    assert _bounds(windows) == [
        (str(start), str(start + 600_000)),
        (str(start + 600_000), str(start + 1_200_000)),
        (str(start + 1_200_000), str(int(NOW.timestamp() * 1000))),
    ]
    assert axis_of(str(start)).kind == "epoch_ms"
    assert axis_of("99999999999").kind == "epoch_s"


@pytest.mark.parametrize("start", ["yesterday", "abc123", "2024-13-01T00:00:00Z", "12.5"])
def test_other_kinds_of_start_are_refused_naming_the_field(start: str) -> None:
    with pytest.raises(WindowSpecError, match=r"^spec\.incremental\.start: "):
        list(plan(start, DAY, NOW))


def test_a_zero_window_is_refused_naming_the_field() -> None:
    with pytest.raises(WindowSpecError, match=r"^spec\.incremental\.window: "):
        list(plan("2024-01-01", timedelta(0), NOW))


def test_progress_round_trips_and_marks_the_last_window_done() -> None:
    load = WindowedLoad("2024-01-01T00:00:00Z", DAY)
    first, *_, last = plan(load.start, load.window, NOW)
    assert load.progress(first) == {"start": load.start, "next": "2024-01-02T00:00:00Z", "done": False}
    assert WindowProgress.from_json(load.progress(last)) == WindowProgress(
        load.start, "2024-01-04T12:30:00Z", done=True
    )
