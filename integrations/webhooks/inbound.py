"""Inbound: `POST /webhooks/inbound/<endpoint id>`, Standard Webhooks messages from an endpoint's
own system, carrying upserts and deletes of customers keyed by that system's id.

Answered 202 once the message is recorded (with its apply task, in one transaction): every 2xx
is applied. A bad signature, a timestamp off by more than five minutes (the library's
tolerance), a replayed `webhook-id` or a malformed body gets a clear 4xx and changes nothing.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from csp.decorators import csp_exempt
from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.http import HttpRequest, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from rest_framework import serializers
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from catalog.models import item_id_in_range
from catalog.serializers import CustomerSerializer
from catalog.services import normalize_email
from sync.metrics import WEBHOOKS_RECEIVED, series_start_at_zero
from synchub.parsers import has_lone_surrogate

from . import INTEGRATION_TYPE
from .models import InboundMessage, WebhookEndpoint
from .payloads import CUSTOMER_FIELDS
from .services import endpoint_secrets

logger = logging.getLogger(__name__)

series_start_at_zero(
    WEBHOOKS_RECEIVED,
    ({"integration": INTEGRATION_TYPE, "outcome": outcome} for outcome in ("queued", "rejected", "too_large", "unavailable")),
)

INBOUND_TYPES = ("customer.created", "customer.updated", "customer.upserted", "customer.deleted")


class InboundCustomerSerializer(CustomerSerializer):
    """A customer as another system sends it: its own `id`, and any of the hub's customer
    fields (validated as the API validates them)."""

    id = serializers.CharField(max_length=255, help_text="The customer's id in the sending system.")

    class Meta(CustomerSerializer.Meta):
        fields = ["id", *CUSTOMER_FIELDS]
        read_only_fields = []

    def validate_email(self, value: str | None) -> str | None:
        # Not refused when taken: applied, an email the catalog has links to that local customer.
        return normalize_email(value)


class InboundMessageSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=INBOUND_TYPES)
    timestamp = serializers.DateTimeField()
    data = serializers.DictField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        data = attrs["data"]
        if attrs["type"] == "customer.deleted":
            if not isinstance(data.get("id"), str) or not data["id"] or len(data["id"]) > 255:
                raise serializers.ValidationError({"data": {"id": ["The sending system's id of the customer."]}})
            attrs["customer"] = {"id": data["id"]}
            return attrs
        customer = InboundCustomerSerializer(data=data, partial=True)
        if not customer.is_valid():
            raise serializers.ValidationError({"data": customer.errors})
        if "id" not in customer.validated_data:
            raise serializers.ValidationError({"data": {"id": ["This field is required."]}})
        attrs["customer"] = {**{key: data[key] for key in data if key in customer.validated_data}}
        return attrs


def _reply(outcome: str, body: dict[str, Any], status: int) -> JsonResponse:
    WEBHOOKS_RECEIVED.labels(integration=INTEGRATION_TYPE, outcome=outcome).inc()
    return JsonResponse(body, status=status)


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(csp_exempt(), name="dispatch")
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class InboundWebhookView(View):
    http_method_names = ["post"]

    def post(self, request: HttpRequest, endpoint_id: str) -> JsonResponse:
        endpoint = WebhookEndpoint.objects.filter(pk=endpoint_id).first() if item_id_in_range(endpoint_id) else None
        if endpoint is None:
            return _reply("rejected", {"detail": "No such endpoint."}, 404)
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > settings.WEBHOOK_MAX_BYTES:
            return _reply("too_large", {"detail": f"Payload larger than {settings.WEBHOOK_MAX_BYTES} bytes."}, 413)
        try:
            body = request.body.decode("utf-8")
        except UnicodeDecodeError:
            return _reply("rejected", {"detail": "The body is not UTF-8."}, 400)
        failure = _verify(endpoint, body, request.headers)
        if failure is not None:
            return failure
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            return _reply("rejected", {"detail": "Malformed JSON body."}, 400)
        if not isinstance(parsed, dict) or has_lone_surrogate(parsed, source=body):
            return _reply("rejected", {"detail": "The body must be a JSON object."}, 400)
        message = InboundMessageSerializer(data=parsed)
        if not message.is_valid():
            return _reply("rejected", message.errors, 400)
        return self.accept(endpoint, request.headers["webhook-id"], message.validated_data)

    @staticmethod
    def accept(endpoint: WebhookEndpoint, message_id: str, message: dict[str, Any]) -> JsonResponse:
        from .tasks import apply_inbound_customer  # the tasks import the apply, which imports the catalog

        try:
            with transaction.atomic():
                InboundMessage.objects.create(endpoint=endpoint, message_id=message_id[:255])
                apply_inbound_customer.delay(
                    endpoint_id=endpoint.pk,
                    key=f"{endpoint.pk}:{message['customer']['id']}",
                    message_id=message_id[:255],
                    event_type=message["type"],
                    occurred_at=message["timestamp"].isoformat(),
                    customer=message["customer"],
                )
        except IntegrityError:
            return _reply("rejected", {"detail": f"Message {message_id} was already received."}, 409)
        except DatabaseError:
            logger.exception("inbound webhook %s could not be recorded", message_id)
            return _reply("unavailable", {"detail": "Not recorded; send it again later."}, 503)
        return _reply("queued", {"received": True, "id": message_id}, 202)


def _verify(endpoint: WebhookEndpoint, body: str, headers) -> JsonResponse | None:
    """None when a valid secret of the endpoint signed the body within the time tolerance."""
    wanted = {name: headers.get(name, "") for name in ("webhook-id", "webhook-timestamp", "webhook-signature")}
    if not all(wanted.values()):
        return _reply("rejected", {"detail": "Missing webhook-id, webhook-timestamp or webhook-signature header."}, 401)
    problem = "No valid signature."
    for secret in endpoint_secrets(endpoint):
        try:
            Webhook(secret).verify(body, wanted, json_parse=False)
            return None
        except WebhookVerificationError as exc:
            problem = str(exc)
            if "timestamp" in problem.lower():
                return _reply("rejected", {"detail": f"{problem}: the timestamp must be within five minutes of now."}, 400)
        except (ValueError, TypeError, IndexError):  # a malformed signature header
            problem = "Malformed webhook-signature header."
    return _reply("rejected", {"detail": f"{problem}."}, 401)
