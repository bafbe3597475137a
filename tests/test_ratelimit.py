"""The client-side Stripe rate limit: a token bucket, on a fake clock (no real sleeps)."""

from sync.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def bucket(rate: float, **kwargs) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock()
    return TokenBucket(rate, clock=clock, sleep=clock.sleep, **kwargs), clock


def test_spaces_requests_evenly_at_the_rate():
    limiter, clock = bucket(10)
    start = clock.now
    for _ in range(50):
        limiter.acquire()
    # The first goes at once, then one every 1/rate seconds.
    assert clock.now - start == pytest_approx(49 / 10)
    assert all(abs(s - 0.1) < 1e-9 for s in clock.slept)


def test_never_more_than_rate_in_any_one_second_window():
    limiter, clock = bucket(25)
    times = []
    for _ in range(200):
        limiter.acquire()
        times.append(clock.now)
    for i, t in enumerate(times):
        assert sum(1 for u in times[i:] if u < t + 1.0 - 1e-6) <= 25  # (float rounding at the edge)


def test_idle_time_refills_only_up_to_the_burst():
    limiter, clock = bucket(5, burst=3)
    for _ in range(3):
        assert limiter.try_acquire() == 0.0
    assert limiter.try_acquire() == pytest_approx(0.2)
    clock.now += 60  # a long pause does not bank more than `burst` tokens
    assert [limiter.try_acquire() for _ in range(4)][:3] == [0.0, 0.0, 0.0]
    assert limiter.try_acquire() > 0


def test_zero_rate_is_unlimited():
    limiter, clock = bucket(0)
    for _ in range(10_000):
        limiter.acquire()
    assert clock.slept == [] and limiter.unlimited


def test_acquire_gives_up_after_its_timeout():
    limiter, clock = bucket(1)
    assert limiter.acquire()
    assert limiter.acquire(timeout=0.25) is False
    assert clock.now - 1000.0 == pytest_approx(0.25)
    assert limiter.acquire(timeout=1.0) is True


def pytest_approx(value: float):
    import pytest

    return pytest.approx(value, abs=1e-9)
