from rest_framework import serializers

from .conflicts import KEEP_CHOICES
from .models import DeadLetter, SyncConflict, SyncEvent


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
            "fields",
            "origin",
        ]


class DeadLetterSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeadLetter
        fields = ["id", "created_at", "task", "topic", "key", "message_id", "kwargs", "attempts", "error", "replayed_at"]


class ProblemQuerySerializer(serializers.Serializer):
    """Filters of a problems list, handed to its selector as keyword arguments (`item` there is
    `item_id`)."""

    def selector_kwargs(self) -> dict:
        data = dict(self.validated_data)
        if "item" in data:
            data["item_id"] = data.pop("item")
        return data


class DeadLetterQuerySerializer(ProblemQuerySerializer):
    """The dead letters' filters (`sync.dead_letters.dead_letters_filter`)."""

    status = serializers.ChoiceField(choices=["pending", "replayed"], required=False, help_text="Replayed or not.")
    integration = serializers.CharField(required=False, max_length=50, help_text="Its tasks' letters.")
    task = serializers.CharField(required=False, max_length=255)
    error = serializers.CharField(required=False, max_length=200, help_text="A fragment of the error (any case).")
    item = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1, help_text="The item it was about.")


class DeadLetterReplaySerializer(DeadLetterQuerySerializer):
    """Which dead letters to replay: `ids`, or `all` pending ones matching the filters given."""

    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1), required=False, max_length=1000
    )
    all = serializers.BooleanField(default=False)

    def validate(self, attrs):
        if not attrs.get("all") and not attrs.get("ids"):
            raise serializers.ValidationError({"ids": ["Give the ids to replay, or all: true with optional filters."]})
        return attrs

    def selector_kwargs(self) -> dict:
        data = super().selector_kwargs()
        data.pop("ids", None)
        data.pop("all", None)
        return data


class ReplayedSerializer(serializers.Serializer):
    replayed = serializers.IntegerField(help_text="How many dead letters were queued again.")


class SyncConflictSerializer(serializers.ModelSerializer):
    item_id = serializers.IntegerField(source="catalog_item_id", read_only=True)
    item_type = serializers.CharField(source="catalog_item.catalog_type", read_only=True)

    class Meta:
        model = SyncConflict
        fields = [
            "id",
            "created_at",
            "item_id",
            "item_type",
            "integration_type",
            "field",
            "local_value",
            "remote_value",
            "kept",
            "remote_event_id",
            "resolved_at",
            "resolution",
            "resolved_by",
        ]


class SyncConflictQuerySerializer(ProblemQuerySerializer):
    """The conflicts' filters (`sync.conflicts.conflicts_filter`)."""

    status = serializers.ChoiceField(choices=["open", "resolved"], required=False)
    integration = serializers.CharField(required=False, max_length=50, help_text="stripe, webhooks:3 …")
    field = serializers.CharField(required=False, max_length=100, help_text="name, metadata.plan …")
    item = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    item_type = serializers.CharField(required=False, max_length=50, help_text="customer, invoice …")


class ConflictResolveSerializer(serializers.Serializer):
    keep = serializers.ChoiceField(
        choices=KEEP_CHOICES, help_text="The value the item keeps: this hub's (local) or the other system's (remote)."
    )
