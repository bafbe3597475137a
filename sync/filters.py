import django_filters

from synchub.filters import UtcIsoDateTimeFilter

from .models import SyncEvent


class SyncEventFilter(django_filters.FilterSet):
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = SyncEvent
        fields = ["direction", "integration", "outcome", "task", "item_id", "external_id", "external_event_id"]
