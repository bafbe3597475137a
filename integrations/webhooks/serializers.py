from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from .services import endpoint_url_check

EVENT_TYPE_PATTERN = r"^[a-z_]+\.(\*|[a-z_]+)$"


class WebhookEndpointSerializer(serializers.ModelSerializer):
    event_types = serializers.ListField(
        child=serializers.RegexField(EVENT_TYPE_PATTERN, max_length=100),
        required=False,
        max_length=50,
        help_text="Event types it receives, e.g. customer.updated or invoice.*; empty: every one.",
    )
    pending = serializers.SerializerMethodField(help_text="Deliveries not yet made.")

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id", "url", "description", "event_types", "enabled", "disabled_reason", "failing_since", "pending",
            "created_at", "updated_at",
        ]
        read_only_fields = ["disabled_reason", "failing_since", "created_at", "updated_at"]

    @extend_schema_field(serializers.IntegerField())
    def get_pending(self, endpoint: WebhookEndpoint) -> int:
        # Annotated on lists (one query); counted for a single endpoint just made or changed.
        pending = getattr(endpoint, "pending", None)
        if pending is None:
            pending = endpoint.deliveries.filter(status=WebhookDelivery.Status.PENDING).count()
        return pending

    def validate_url(self, value: str) -> str:
        try:
            endpoint_url_check(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        return value


class WebhookEndpointSecretSerializer(WebhookEndpointSerializer):
    """An endpoint with its signing secret: answered once, when it is made or rotated."""

    secret = serializers.CharField(read_only=True, help_text="`whsec_…`: shown only now; keep it.")

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = ["attempted_at", "status_code", "latency_ms", "response_excerpt", "error"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    attempt_log = WebhookAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id", "message_id", "event_type", "item_id", "catalog_type", "status", "attempts", "next_attempt_at",
            "last_status_code", "last_error", "created_at", "delivered_at", "payload", "attempt_log",
        ]
