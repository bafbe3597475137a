from django.contrib import admin, messages

from .dead_letters import dead_letter_replay
from .models import DeadLetter, OutboxMessage


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

    @admin.action(description="Replay selected dead letters")
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
