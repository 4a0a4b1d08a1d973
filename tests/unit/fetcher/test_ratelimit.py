from __future__ import annotations

import pytest

from restlake.fetcher.ratelimit import RateLimiter, TokenBucket, parse_rate_limit_headers, reset_seconds

NOW = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_bucket_spends_the_burst_then_spaces_requests_at_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=4.0, burst=2, clock=clock)
    assert [bucket.take(), bucket.take()] == [0.0, 0.0]
    assert bucket.take() == pytest.approx(0.25)
    assert bucket.take() == pytest.approx(0.5)  # reservations queue up behind each other
    clock.t += 10
    assert bucket.take() == 0.0  # refilled, but never beyond the burst
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.25)


def test_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        TokenBucket(rate=0, burst=1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (NOW + 30, 30.0),  # epoch seconds (GitHub)
        ((NOW + 12.5) * 1000, 12.5),  # epoch milliseconds
        (42, 42.0),  # delta-seconds
        (NOW - 5, 0.0),  # in the past: now
        (NOW + 86_400, 3600.0),  # implausibly far: capped
    ],
)
def test_reset_is_told_apart_by_magnitude(value, expected) -> None:
    assert reset_seconds(value, NOW) == pytest.approx(expected)


def test_github_style_headers() -> None:
    hint = parse_rate_limit_headers(
        {"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "7", "X-RateLimit-Reset": str(int(NOW + 20))},
        NOW,
    )
    assert (hint.limit, hint.remaining, hint.reset_after) == (60, 7, 20.0)


def test_ietf_headers_win_and_reset_is_always_delta() -> None:
    headers = {
        "RateLimit-Limit": "10",
        "RateLimit-Remaining": "3",
        "RateLimit-Reset": "4",
        "X-RateLimit-Remaining": "99",
        "X-RateLimit-Reset": str(int(NOW + 500)),
    }
    hint = parse_rate_limit_headers(headers, NOW)
    assert (hint.limit, hint.remaining, hint.reset_after) == (10, 3, 4.0)


def test_ietf_structured_fields() -> None:
    headers = {"RateLimit": '"default";r=0;t=7', "RateLimit-Policy": '"default";q=100;w=60'}
    hint = parse_rate_limit_headers(headers, NOW)
    assert (hint.limit, hint.remaining, hint.reset_after) == (100, 0, 7.0)


def test_no_headers_no_hint() -> None:
    hint = parse_rate_limit_headers({}, NOW)
    assert (hint.limit, hint.remaining, hint.reset_after) == (None, None, None)


def test_limiter_waits_for_the_reset_when_nothing_is_left_and_paces_when_little_is() -> None:
    clock = Clock()
    limiter = RateLimiter(1000.0, 100, clock=clock, wall=lambda: NOW)
    assert limiter.delay() == 0.0
    limiter.observe({"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "3"})
    assert limiter.delay() == pytest.approx(3.05)
    clock.t += 4
    assert limiter.delay() == 0.0
    limiter.observe({"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "5", "X-RateLimit-Reset": "10"})
    assert limiter.delay() == pytest.approx(2.0)  # 5 left for 10 s: one every 2 s
    clock.t += 2
    limiter.observe({"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "50", "X-RateLimit-Reset": "10"})
    assert limiter.delay() == 0.0  # plenty left: no pacing


def test_limiter_ignores_headers_when_told_to() -> None:
    limiter = RateLimiter(1000.0, 100, respect_headers=False, clock=Clock())
    assert limiter.observe({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "30"}) is None
    assert limiter.delay() == 0.0


def test_hold_is_a_floor() -> None:
    clock = Clock()
    limiter = RateLimiter(1000.0, 100, clock=clock)
    limiter.hold(5)
    limiter.hold(1)  # a shorter hold never shortens a longer one
    assert limiter.delay() == pytest.approx(5)
