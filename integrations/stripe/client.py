import time
from functools import cache

import requests
import stripe
from django.conf import settings

from sync.metrics import EXTERNAL_REQUESTS

from . import INTEGRATION_TYPE
from .ratelimit import TokenBucket

STRIPE_DEFAULT_API_BASE = "https://api.stripe.com"


class StripeHttpClient(stripe.RequestsClient):
    """`stripe.RequestsClient` that takes a token from `bucket` (if any) before every HTTP request,
    including the library's own retries (each is a request Stripe counts), and records each
    request's latency and outcome (`synchub_external_request_seconds`).

    It also reads the proxy environment (HTTPS_PROXY, NO_PROXY...) once, for the API's address,
    instead of on every request: requests does that per call by walking the whole environment,
    which cost about a tenth of a worker's CPU per Stripe call (bench/analysis.md).
    """

    def __init__(self, *, bucket: TokenBucket | None = None, api_base: str = STRIPE_DEFAULT_API_BASE, **kwargs) -> None:
        proxies = {k: v for k, v in requests.utils.get_environ_proxies(api_base).items() if k in ("http", "https")}
        super().__init__(proxy=proxies or None, **kwargs)
        self.bucket = bucket

    def thread_session(self) -> requests.Session:
        session = getattr(self._thread_local, "session", None)
        if session is None:  # one per thread, as the library does, but without the env look-ups
            session = self._thread_local.session = requests.Session()
            session.trust_env = False
        return session

    def request(self, method, url, headers, post_data=None):
        self.thread_session()
        if self.bucket is not None:
            self.bucket.acquire()
        started = time.monotonic()
        outcome = "network_error"
        try:
            content, status, response_headers = super().request(method, url, headers, post_data)
            outcome = "ok" if status < 400 else str(status) if status == 429 else f"{status // 100}xx"
            return content, status, response_headers
        finally:
            EXTERNAL_REQUESTS.labels(integration=INTEGRATION_TYPE, method=method.upper(), outcome=outcome).observe(
                time.monotonic() - started
            )

    def request_stream(self, method, url, headers, post_data=None):
        self.thread_session()
        if self.bucket is not None:
            self.bucket.acquire()
        return super().request_stream(method, url, headers, post_data)


def stripe_rate_limit() -> TokenBucket:
    """The process's Stripe request budget (`STRIPE_RATE_LIMIT_PER_SECOND`, 0 = unlimited),
    shared by its threads and by everything else in it that calls Stripe through
    `stripe_client()` (the worker's tasks, a reconciliation job)."""
    return _bucket(float(settings.STRIPE_RATE_LIMIT_PER_SECOND))


@cache
def _bucket(rate: float) -> TokenBucket:
    return TokenBucket(rate)


@cache
def stripe_client() -> stripe.StripeClient:
    """The process's Stripe client: the library's own network retries, a bounded timeout,
    `STRIPE_API_BASE` to point it at an emulator, and the client-side rate limit."""
    base_addresses = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
    bucket = stripe_rate_limit()
    http_client = StripeHttpClient(
        bucket=None if bucket.unlimited else bucket,
        api_base=settings.STRIPE_API_BASE or STRIPE_DEFAULT_API_BASE,
        timeout=settings.STRIPE_TIMEOUT_SECONDS,
    )
    return stripe.StripeClient(
        settings.STRIPE_API_KEY,
        base_addresses=base_addresses,
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
        http_client=http_client,
    )
