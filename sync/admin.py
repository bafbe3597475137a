from django.contrib import admin, messages

from .dead_letters import dead_letter_replay
from synchub.permissions import REPLAY_PERMISSION

from .models import DeadLetter, OutboxMessage, SyncConflict, SyncEvent, Tombstone


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "task", "key", "attempts", "short_error", "replayed_at"]
    list_filter = ["task", ("replayed_at", admin.EmptyFieldListFilter)]
    search_fields = ["key", "error", "message_id"]
    readonly_fields = [f.name for f in DeadLetter._meta.fields]
    actions = ["replay"]

    @admin.display(description="error")
    def short_error(self, letter: DeadLetter) -> str:
        return letter.error[:120]

    def has_replay_permission(self, request) -> bool:
        return request.user.has_perm(REPLAY_PERMISSION)

    @admin.action(description="Replay selected dead letters", permissions=["replay"])
    def replay(self, request, queryset) -> None:
        letters = list(queryset.filter(replayed_at__isnull=True))
        for letter in letters:
            dead_letter_replay(letter=letter)
        self.message_user(request, f"{len(letters)} dead letter(s) replayed.", messages.SUCCESS)

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):
    list_display = ["id", "topic", "key", "created_at", "published_at"]
    list_filter = ["topic", ("published_at", admin.EmptyFieldListFilter)]
    readonly_fields = [f.name for f in OutboxMessage._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(SyncEvent)
class SyncEventAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "direction", "integration", "item_id", "action", "outcome", "duration_ms"]
    list_filter = ["direction", "integration", "outcome", "task"]
    search_fields = ["external_id", "external_event_id", "message_id", "error"]
    readonly_fields = [f.name for f in SyncEvent._meta.fields]
    date_hierarchy = "created_at"
    # No COUNT(*) of the whole trail (a million rows) on every filtered page.
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(SyncConflict)
class SyncConflictAdmin(admin.ModelAdmin):
    list_display = ["id", "created_at", "catalog_item", "integration_type", "field", "local_value", "remote_value", "kept"]
    list_filter = ["integration_type", "field"]
    readonly_fields = [f.name for f in SyncConflict._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Tombstone)
class TombstoneAdmin(admin.ModelAdmin):
    """What was deleted where, for `SYNC_TOMBSTONE_RETENTION` days: deleting a row here lets
    late news of that item through again."""

    list_display = ["id", "deleted_at", "integration_type", "external_id", "item_id", "catalog_type", "deleted_by"]
    list_filter = ["integration_type", "deleted_by", "catalog_type"]
    search_fields = ["external_id", "=item_id"]
    readonly_fields = [f.name for f in Tombstone._meta.fields]
    date_hierarchy = "deleted_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
