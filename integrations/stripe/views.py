import json
import logging
from typing import Any

import stripe
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils.decorators import method_decorator
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from sync.metrics import WEBHOOKS_RECEIVED

from . import INTEGRATION_TYPE
from .services import stripe_webhook_event_accept

logger = logging.getLogger(__name__)


# The request needs no transaction: it writes only when Kafka is down (then to the outbox).
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class StripeWebhookView(APIView):
    """Receives Stripe's signed events; answers 2xx only once the event is durably recorded."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    # Stripe reads JSON only; the browsable API's renderers would be built for every webhook.
    renderer_classes = [JSONRenderer]

    @extend_schema(
        summary="Stripe webhook endpoint",
        description=(
            "Verifies the `Stripe-Signature` header against `STRIPE_WEBHOOK_SECRET` on the raw body, "
            "then records `customer.created/updated/deleted` for the inward worker. Other event types "
            "are acknowledged and ignored."
        ),
        request={"application/json": {"type": "object"}},
        responses={
            200: OpenApiResponse(description="Recorded (or ignored: not a customer event)"),
            400: OpenApiResponse(description="Missing or invalid signature, or malformed payload"),
            503: OpenApiResponse(description="Could not be recorded now; Stripe will deliver it again"),
        },
        auth=[],
    )
    def post(self, request):
        response = self._receive(request)
        WEBHOOKS_RECEIVED.labels(integration=INTEGRATION_TYPE, outcome=self._outcome(response)).inc()
        return response

    @staticmethod
    def _outcome(response: Response) -> str:
        if response.status_code == 200:
            return "queued" if response.data.get("queued") else "ignored"
        return "rejected" if response.status_code == 400 else "unavailable"

    def _receive(self, request) -> Response:
        event = self.verified_event(request)
        return event if isinstance(event, Response) else self.handle_event(event)

    @staticmethod
    def verified_event(request) -> dict[str, Any] | Response:
        """The event as parsed JSON, once its signature on the raw body checks out; else the
        error response."""
        if not settings.STRIPE_WEBHOOK_SECRET:
            logger.error("STRIPE_WEBHOOK_SECRET is not set; webhook refused")
            return Response({"detail": "Webhook secret not configured."}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        signature = request.META.get("HTTP_STRIPE_SIGNATURE")
        if not signature:
            return Response({"detail": "Missing Stripe-Signature header."}, status=status.HTTP_400_BAD_REQUEST)
        try:
            payload = request.body.decode("utf-8")
            stripe.WebhookSignature.verify_header(
                payload, signature, settings.STRIPE_WEBHOOK_SECRET, settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS
            )
            event = json.loads(payload)
        except stripe.SignatureVerificationError:
            return Response({"detail": "Invalid Stripe signature."}, status=status.HTTP_400_BAD_REQUEST)
        except (ValueError, UnicodeDecodeError):
            return Response({"detail": "Malformed JSON payload."}, status=status.HTTP_400_BAD_REQUEST)
        if not isinstance(event, dict):
            return Response({"detail": "Not a well-formed Stripe event."}, status=status.HTTP_400_BAD_REQUEST)
        return event

    def handle_event(self, event: dict[str, Any]) -> Response:
        """Hand the verified event to the inward worker (subclasses may do otherwise)."""
        try:
            message_id = stripe_webhook_event_accept(event)
        except ValueError:
            return Response({"detail": "Not a well-formed Stripe event."}, status=status.HTTP_400_BAD_REQUEST)
        except DatabaseError:
            logger.exception("webhook %s could not be recorded", event.get("id", "?"))
            return Response({"detail": "Event not recorded; retry later."}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response({"received": True, "id": event.get("id"), "queued": message_id is not None})
