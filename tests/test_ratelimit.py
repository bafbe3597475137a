"""The client-side Stripe rate limit: a token bucket, on a fake clock (no real sleeps)."""

import stripe

from integrations.stripe.ratelimit import TokenBucket


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


def test_stripe_client_takes_a_token_per_request(settings, monkeypatch):
    from integrations.stripe import client as client_module

    settings.STRIPE_RATE_LIMIT_PER_SECOND = 7
    client_module.stripe_client.cache_clear()
    try:
        http_client = client_module.stripe_client()._requestor._client
        assert isinstance(http_client, client_module.StripeHttpClient)
        assert http_client.bucket is client_module.stripe_rate_limit() and http_client.bucket.rate == 7
        taken = []
        monkeypatch.setattr(http_client.bucket, "acquire", lambda timeout=None: taken.append(1) or True)
        monkeypatch.setattr(
            stripe.RequestsClient, "request", lambda self, method, url, headers, post_data=None: (b"{}", 200, {})
        )
        http_client.request("get", "http://127.0.0.1:9/v1/customers", {})
        http_client.request("post", "http://127.0.0.1:9/v1/customers", {}, "name=x")
        assert len(taken) == 2
    finally:
        client_module.stripe_client.cache_clear()

    settings.STRIPE_RATE_LIMIT_PER_SECOND = 0
    try:
        assert client_module.stripe_client()._requestor._client.bucket is None
    finally:
        client_module.stripe_client.cache_clear()


def test_stripe_client_reads_the_proxy_environment_once(monkeypatch):
    from integrations.stripe.client import StripeHttpClient

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert StripeHttpClient(api_base="https://api.stripe.com")._proxy == {
        "https": "http://proxy.invalid:3128"
    }
    assert StripeHttpClient(api_base="http://127.0.0.1:8420")._proxy is None
    client = StripeHttpClient()
    session = client.thread_session()
    assert session.trust_env is False and client.thread_session() is session


def pytest_approx(value: float):
    import pytest

    return pytest.approx(value, abs=1e-9)
