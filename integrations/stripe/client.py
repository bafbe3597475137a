from functools import cache

import stripe
from django.conf import settings


@cache
def stripe_client() -> stripe.StripeClient:
    """The process's Stripe client: the library's own network retries, a bounded timeout, and
    `STRIPE_API_BASE` to point it at an emulator."""
    base_addresses = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
    return stripe.StripeClient(
        settings.STRIPE_API_KEY,
        base_addresses=base_addresses,
        max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
        http_client=stripe.RequestsClient(timeout=settings.STRIPE_TIMEOUT_SECONDS),
    )
