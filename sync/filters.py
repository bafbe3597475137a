import django_filters

from .models import SyncEvent


class SyncEventFilter(django_filters.FilterSet):
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = SyncEvent
        fields = ["direction", "integration", "outcome", "task", "item_id", "external_id", "external_event_id"]
