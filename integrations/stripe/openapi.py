"""The webhook endpoint in the OpenAPI schema (/docs). It is a plain Django view, which
drf-spectacular does not see, so this postprocessing hook (SPECTACULAR_SETTINGS) adds it."""

from typing import Any

from django.urls import reverse

_DETAIL = {
    "application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}}}}
}

WEBHOOK_OPERATION = {
    "operationId": "webhooks_stripe_create",
    "summary": "Stripe webhook endpoint",
    "description": (
        "Verifies the `Stripe-Signature` header against `STRIPE_WEBHOOK_SECRET` (any of its comma-separated "
        "secrets, for rotations) on the raw body, then records for the inward workers "
        "`customer.created/updated/deleted` carrying a customer, and `invoice.created/updated/finalized/paid/"
        "payment_succeeded/payment_failed/voided/marked_uncollectible/deleted` carrying an invoice. Other "
        "events (other types, or an event carrying another object than its type names) are acknowledged and "
        "ignored. Bodies over `WEBHOOK_MAX_BYTES` are refused."
    ),
    "tags": ["webhooks"],
    "security": [],
    "parameters": [
        {
            "name": "Stripe-Signature",
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
            "description": "Stripe's signature of the raw body: `t=<unix time>,v1=<HMAC-SHA256 hex>`.",
        }
    ],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
    "responses": {
        "200": {
            "description": "Recorded (or ignored: not an event the hub syncs)",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "received": {"type": "boolean"},
                            "id": {"type": "string", "description": "The event's id"},
                            "queued": {"type": "boolean", "description": "False when the event is ignored"},
                        },
                    }
                }
            },
        },
        "400": {"description": "Missing or invalid signature, or malformed payload", "content": _DETAIL},
        "405": {"description": "Any method but POST"},
        "411": {"description": "No Content-Length (a chunked body)", "content": _DETAIL},
        "413": {"description": "Body larger than WEBHOOK_MAX_BYTES", "content": _DETAIL},
        "503": {"description": "Could not be recorded now; Stripe will deliver it again", "content": _DETAIL},
    },
}


def document_webhook(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    result.setdefault("paths", {})[reverse("stripe-webhook")] = {"post": WEBHOOK_OPERATION}
    return result
