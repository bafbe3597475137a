"""Webhook endpoints, and the deliveries queued, tried and dead-lettered per endpoint."""

from __future__ import annotations

from django.db import models

from . import endpoint_integration_type


class WebhookEndpoint(models.Model):
    """A system that hears about catalog changes (and may send its own back), at `url`."""

    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=255, blank=True, default="")
    # Event types it wants ("customer.updated", "invoice.*"); empty: every one.
    event_types = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    # `whsec_<base64>`, as the specification has it; the previous one stays valid until
    # `previous_secret_expires_at` after a rotation.
    secret = models.CharField(max_length=100)
    previous_secret = models.CharField(max_length=100, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    # Set at its first failed delivery, cleared at the next success: disabled when it has been
    # failing for WEBHOOKS_DISABLE_AFTER_SECONDS.
    failing_since = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=500, blank=True, default="")
    # "Resend everything" asked and not done yet: the sender queues every item for it, in pages
    # (the last catalog item id queued).
    resend_requested_at = models.DateTimeField(null=True, blank=True)
    resend_cursor = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        permissions = [("replay_webhookdelivery", "Can replay webhook deliveries and resend to an endpoint")]

    def __str__(self) -> str:
        return self.description or self.url

    @property
    def integration_type(self) -> str:
        return endpoint_integration_type(self.pk)


class WebhookDelivery(models.Model):
    """One message to one endpoint: pending until the endpoint answers 2xx, retried on the
    schedule, dead (its dead letter) after the last attempt or when the endpoint is disabled."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        DEAD = "dead", "Dead-lettered"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    # The `webhook-id` header: the same for every attempt, so the receiver can dedupe.
    message_id = models.CharField(max_length=64, unique=True)
    event_type = models.CharField(max_length=100)
    # No foreign key: a deletion's message outlives the item.
    item_id = models.BigIntegerField(db_index=True)
    catalog_type = models.CharField(max_length=50)
    payload = models.JSONField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "webhook deliveries"
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
            models.Index(fields=["endpoint", "item_id", "id"], name="delivery_item_order"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.item_id} -> endpoint {self.endpoint_id} ({self.status})"


class WebhookAttempt(models.Model):
    """One HTTP attempt of a delivery: what the endpoint answered, and how fast."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField(auto_now_add=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(default=0)
    # The start of the answer (or the error), bounded: an endpoint may answer megabytes.
    response_excerpt = models.TextField(blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["-id"]

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class InboundMessage(models.Model):
    """A message an endpoint's system sent us (its `webhook-id`): a replay of one is refused."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="inbound")
    message_id = models.CharField(max_length=255)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["endpoint", "message_id"], name="inbound_message_unique")]
