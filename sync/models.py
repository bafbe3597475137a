from django.db import models


class OutboxMessage(models.Model):
    """A message written in the same transaction as the change it announces.

    The relay publishes unpublished rows to Kafka in id order, then marks them; marked rows are
    pruned after `OUTBOX_RETENTION_SECONDS`.
    """

    topic = models.CharField(max_length=255)
    key = models.CharField(max_length=255, blank=True, default="")
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["id"], condition=models.Q(published_at__isnull=True), name="outbox_unpublished"),
            models.Index(fields=["published_at"], name="outbox_published_at"),
        ]

    def __str__(self) -> str:
        return f"{self.topic}[{self.key}] #{self.pk}"


class InboxEvent(models.Model):
    """An external event already applied, so a redelivery of it is recognised and skipped."""

    source = models.CharField(max_length=50)
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=100, blank=True, default="")
    processed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "event_id"], name="inbox_event_unique")]

    def __str__(self) -> str:
        return f"{self.source}:{self.event_id}"
