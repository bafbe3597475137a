from functools import cache

import stripe
from django.conf import settings

from .ratelimit import TokenBucket


class RateLimitedRequestsClient(stripe.RequestsClient):
    """`stripe.RequestsClient` that takes a token from `bucket` before every HTTP request,
    including the library's own retries (each is a request Stripe counts)."""

    def __init__(self, *, bucket: TokenBucket, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bucket = bucket

    def request(self, method, url, headers, post_data=None):
        self.bucket.acquire()
        return super().request(method, url, headers, post_data)

    def request_stream(self, method, url, headers, post_data=None):
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
    http_client = (
        stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_SECONDS)
        if bucket.unlimited
        else RateLimitedRequestsClient(bucket=bucket, timeout=settings.STRIPE_TIMEOUT_SECONDS)
    )
    return stripe.StripeClient(
        settings.STRIPE_API_KEY,
        base_addresses=base_addresses,
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
        http_client=http_client,
    )
