from rest_framework import serializers

from .models import SyncEvent


class SyncEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = SyncEvent
        fields = [
            "id",
            "created_at",
            "direction",
            "integration",
            "task",
            "item_id",
            "action",
            "outcome",
            "error",
            "duration_ms",
            "attempt",
            "message_id",
            "external_id",
            "external_event_id",
        ]
