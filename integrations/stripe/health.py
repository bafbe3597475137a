from django.conf import settings

from .client import stripe_client


def stripe_reachable(timeout: float) -> None:
    """Raise unless Stripe (or the emulator of STRIPE_API_BASE) answers an authenticated read."""
    if not settings.STRIPE_API_KEY:
        raise RuntimeError("STRIPE_API_KEY is not set")
    stripe_client().v1.customers.list(params={"limit": 1}, options={"max_network_retries": 0})
