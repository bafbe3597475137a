import django_filters
from django.db.models import QuerySet

from synchub.filters import UtcIsoDateTimeFilter

from .models import CatalogIntegration, Customer, SyncStatus
from .selectors import customers_with_email

UNSYNCED = "unsynced"


class CustomerFilter(django_filters.FilterSet):
    sync_status = django_filters.ChoiceFilter(
        choices=[*SyncStatus.choices, (UNSYNCED, "Not linked to any integration")],
        method="filter_sync_status",
        label="Sync status",
    )
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    updated_after = UtcIsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    email = django_filters.CharFilter(method="filter_email", label="Email (any case)")

    class Meta:
        model = Customer
        fields = ["sync_status", "created_after", "created_before", "updated_after", "email"]

    def filter_email(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return customers_with_email(value, queryset=queryset)

    def filter_sync_status(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == UNSYNCED:
            linked = CatalogIntegration.objects.exclude(integration_id=None).values("catalog_item_id")
            return queryset.exclude(pk__in=linked)
        return queryset.filter(pk__in=CatalogIntegration.objects.filter(status=value).values("catalog_item_id"))


class IntegrationFilter(django_filters.FilterSet):
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = CatalogIntegration
        fields = ["integration_type", "status", "created_after", "created_before"]
