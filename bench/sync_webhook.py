"""The benchmark's peer for webhook intake: a synchronous handler that applies the event to the
database inside the request, as dj-stripe does (verify, then process in the request's
transaction), instead of handing it to Kafka. Same framework, same checks, same service
(`stripe_event_apply`) the inward worker runs: only *where* the work happens differs."""

import stripe
from django.conf import settings
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from integrations.stripe.services import CUSTOMER_EVENT_TYPES, stripe_event_apply


class SyncStripeWebhookView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    def post(self, request):
        signature = request.META.get("HTTP_STRIPE_SIGNATURE")
        if not signature:
            return Response({"detail": "Missing Stripe-Signature header."}, status=status.HTTP_400_BAD_REQUEST)
        try:
            event = stripe.Webhook.construct_event(
                request.body, signature, settings.STRIPE_WEBHOOK_SECRET, settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError:
            return Response({"detail": "Invalid Stripe signature."}, status=status.HTTP_400_BAD_REQUEST)
        except (ValueError, UnicodeDecodeError):
            return Response({"detail": "Malformed JSON payload."}, status=status.HTTP_400_BAD_REQUEST)
        if event.type in CUSTOMER_EVENT_TYPES:
            stripe_event_apply(
                event_id=event.id,
                event_type=event.type,
                customer=event.data.object.to_dict(recursive=True),
                created=getattr(event, "created", None),
            )
        return Response({"received": True, "id": event.id})
