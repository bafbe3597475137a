"""The hub's URLs plus the benchmark's synchronous webhook peer."""

from django.urls import path

from synchub.urls import urlpatterns as hub_urlpatterns

from .sync_webhook import SyncStripeWebhookView

urlpatterns = [
    path("bench/webhooks/stripe-sync", SyncStripeWebhookView.as_view(), name="bench-stripe-webhook-sync"),
    *hub_urlpatterns,
]
