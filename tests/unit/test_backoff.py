"""Capped exponential backoff with full jitter; Retry-After and 418/429 floors; reset on data."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daedalus.collector.backoff import (
    DEFAULT_RATE_LIMIT_SECONDS,
    Backoff,
    parse_retry_after,
    retry_after_from_headers,
)


@given(
    initial=st.floats(0.01, 10),
    factor=st.floats(1, 100),
    attempts=st.integers(0, 200),
    seed=st.integers(0, 2**32),
)
def test_delay_is_full_jitter_under_a_capped_exponential_ceiling(initial, factor, attempts, seed) -> None:
    maximum = initial * factor
    b = Backoff(initial, maximum, rng=random.Random(seed))
    for _ in range(attempts):
        b.next_delay()
    ceiling = min(maximum, initial * 2**attempts)
    assert b.ceiling() == pytest.approx(ceiling)
    d = b.next_delay()
    assert 0.0 <= d <= ceiling


def test_ceiling_doubles_then_caps_and_reset_restarts() -> None:
    b = Backoff(1.0, 8.0, rng=random.Random(1))
    ceilings = []
    for _ in range(6):
        ceilings.append(b.ceiling())
        b.next_delay()
    assert ceilings == [1, 2, 4, 8, 8, 8]
    b.reset()
    assert b.ceiling() == 1.0 and b.attempts == 0


def test_jitter_spreads_delays() -> None:
    b = Backoff(1.0, 1.0, rng=random.Random(3))
    delays = [b.next_delay() for _ in range(200)]
    assert min(delays) < 0.1 and max(delays) > 0.9  # full jitter: the whole [0, ceiling] range


@given(retry=st.floats(0, 1000), seed=st.integers(0, 1000))
def test_retry_after_is_a_floor_never_jittered_down(retry, seed) -> None:
    b = Backoff(0.1, 1.0, rng=random.Random(seed))
    assert b.next_delay(retry_after=retry) >= retry


def test_rate_limit_status_without_header_waits_the_default() -> None:
    b = Backoff(0.1, 1.0, rng=random.Random(0))
    assert b.next_delay(status=429) >= DEFAULT_RATE_LIMIT_SECONDS
    assert b.next_delay(status=418) >= DEFAULT_RATE_LIMIT_SECONDS
    assert b.next_delay(status=503) <= 1.0


@pytest.mark.parametrize(
    ("value", "expected"), [("7", 7.0), (" 2.5", 2.5), (3, 3.0), ("-1", 0.0), ("soon", None), (None, None)]
)
def test_parse_retry_after(value, expected) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_header_lookup_ignores_case() -> None:
    assert retry_after_from_headers({"retry-after": "12"}) == 12.0
    assert retry_after_from_headers({"Retry-After": "1"}) == 1.0
    assert retry_after_from_headers({"Content-Type": "x"}) is None
    assert retry_after_from_headers(None) is None


def test_bad_bounds_are_rejected() -> None:
    with pytest.raises(ValueError):
        Backoff(0, 1)
    with pytest.raises(ValueError):
        Backoff(2, 1)
