"""The benchmark's peer for webhook intake: a synchronous handler that applies the event to the
database inside the request, as dj-stripe does (verify, then process in the request's
transaction), instead of handing it to Kafka. Same framework, same checks, same service
(`stripe_event_apply`) the inward worker runs: only *where* the work happens differs."""

from typing import Any

from django.http import JsonResponse

from integrations.stripe.apply import stripe_event_apply
from integrations.stripe.events import stripe_customer_event
from integrations.stripe.views import StripeWebhookView


class SyncStripeWebhookView(StripeWebhookView):
    """The same signature checks; the event is applied here, in the request."""

    def handle_event(self, event: dict[str, Any]) -> JsonResponse:
        arguments = stripe_customer_event(event)
        if arguments is not None:
            arguments.pop("stripe_customer_id")
            stripe_event_apply(**arguments)
        return JsonResponse({"received": True, "id": event["id"]})
