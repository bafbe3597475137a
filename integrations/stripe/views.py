import json
import logging
from typing import Any

import stripe
from csp.decorators import csp_exempt
from django.conf import settings
from django.db import DatabaseError, transaction
from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from sync.metrics import WEBHOOKS_RECEIVED, series_start_at_zero
from synchub.parsers import has_lone_surrogate

from . import INTEGRATION_TYPE
from .client import stripe_webhook_secrets
from .events import stripe_webhook_event_accept

logger = logging.getLogger(__name__)

WEBHOOK_OUTCOMES = ("queued", "ignored", "rejected", "too_large", "unavailable")
series_start_at_zero(
    WEBHOOKS_RECEIVED, ({"integration": INTEGRATION_TYPE, "outcome": outcome} for outcome in WEBHOOK_OUTCOMES)
)


def webhook_reply(outcome: str, body: dict[str, Any], status: int = 200) -> JsonResponse:
    """The answer to a webhook, counted in `synchub_webhooks_received_total` by `outcome`
    (queued, ignored, rejected, too_large, unavailable)."""
    WEBHOOKS_RECEIVED.labels(integration=INTEGRATION_TYPE, outcome=outcome).inc()
    return JsonResponse(body, status=status)


def _rejected(detail: str) -> JsonResponse:
    return webhook_reply("rejected", {"detail": detail}, status=400)


def _refused_body(request: HttpRequest) -> JsonResponse | None:
    """413 for a body over `WEBHOOK_MAX_BYTES` (an accepted event must fit in a Kafka record, so
    a larger one is refused at the door rather than accepted and never applied), 411 for one of
    no declared length."""
    limit = settings.WEBHOOK_MAX_BYTES
    if not request.META.get("CONTENT_LENGTH") and request.META.get("HTTP_TRANSFER_ENCODING"):
        # A chunked body reads as empty here (Django reads what CONTENT_LENGTH declares); Stripe
        # always sends a length, so say what is wrong instead of "invalid signature".
        return webhook_reply("rejected", {"detail": "Content-Length required."}, status=411)
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    # The server reads no more than the declared length, so checking it bounds the body.
    if declared <= limit:
        return None
    logger.warning("webhook refused: %d bytes, over WEBHOOK_MAX_BYTES (%d)", declared, limit)
    return webhook_reply("too_large", {"detail": f"Payload larger than {limit} bytes."}, status=413)


def _signed_with(payload: str, signature: str, secret: str) -> bool:
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError:
        return False
    return True


# A plain Django view, not DRF's: Stripe posts JSON and reads the status code only, and DRF's
# request and response handling was 0.07 of the 0.18 ms a webhook costs in Django
# (bench/analysis.md). It is documented in /docs by `openapi.document_webhook`.
# No transaction either: it writes only when Kafka is down (then to the outbox). No
# Content-Security-Policy: its JSON answers are read by Stripe, not rendered by a browser.
@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(csp_exempt(), name="dispatch")
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class StripeWebhookView(View):
    """Receives Stripe's signed events; answers 2xx only once the event is durably recorded."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest) -> JsonResponse:
        event = self.verified_event(request)
        return event if isinstance(event, JsonResponse) else self.handle_event(event)

    @staticmethod
    def verified_event(request: HttpRequest) -> dict[str, Any] | JsonResponse:
        """The event as parsed JSON, once its signature on the raw body checks out (against
        any of the configured secrets, for rotations); else the error response."""
        secrets = stripe_webhook_secrets()
        if not secrets:
            logger.error("STRIPE_WEBHOOK_SECRET is not set; webhook refused")
            return webhook_reply("unavailable", {"detail": "Webhook secret not configured."}, status=503)
        refused = _refused_body(request)
        if refused is not None:
            return refused
        signature = request.META.get("HTTP_STRIPE_SIGNATURE")
        if not signature:
            return _rejected("Missing Stripe-Signature header.")
        try:
            payload = request.body.decode("utf-8")
        except UnicodeDecodeError:
            return _rejected("Malformed JSON payload.")
        if not any(_signed_with(payload, signature, secret) for secret in secrets):
            return _rejected("Invalid Stripe signature.")
        try:
            event = json.loads(payload)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python can parse
            return _rejected("Malformed JSON payload.")
        if not isinstance(event, dict) or has_lone_surrogate(event, source=payload):
            return _rejected("Not a well-formed Stripe event.")
        return event

    def handle_event(self, event: dict[str, Any]) -> JsonResponse:
        """Hand the verified event to the inward worker (subclasses may do otherwise)."""
        try:
            message_id = stripe_webhook_event_accept(event)
        except ValueError:
            return _rejected("Not a well-formed Stripe event.")
        except DatabaseError:
            logger.exception("webhook %s could not be recorded", event.get("id", "?"))
            return webhook_reply("unavailable", {"detail": "Event not recorded; retry later."}, status=503)
        queued = message_id is not None
        return webhook_reply("queued" if queued else "ignored", {"received": True, "id": event.get("id"), "queued": queued})
