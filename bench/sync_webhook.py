"""The benchmark's peer for webhook intake: a synchronous handler that applies the event to the
database inside the request, as dj-stripe does (verify, then process in the request's
transaction), instead of handing it to Kafka. Same framework, same checks, same service
(`stripe_event_apply`) the inward worker runs: only *where* the work happens differs."""

import stripe
from rest_framework.response import Response

from integrations.stripe.services import CUSTOMER_EVENT_TYPES, stripe_event_apply
from integrations.stripe.views import StripeWebhookView


class SyncStripeWebhookView(StripeWebhookView):
    """The same signature checks; the event is applied here, in the request."""

    def handle_event(self, event: stripe.Event) -> Response:
        if event.type in CUSTOMER_EVENT_TYPES:
            stripe_event_apply(
                event_id=event.id,
                event_type=event.type,
                customer=event.data.object.to_dict(recursive=True),
                created=getattr(event, "created", None),
            )
        return Response({"received": True, "id": event.id})
