import django_filters
from django import forms
from django.core.validators import RegexValidator
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema_field

from synchub.filters import UtcIsoDateTimeFilter

from .currencies import currency_normalize
from .models import ITEM_ID_MAX, CatalogIntegration, Customer, Invoice, InvoiceStatus, SyncStatus
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




@extend_schema_field({"type": "integer", "minimum": 1, "maximum": ITEM_ID_MAX})
class ItemIdFilter(django_filters.Filter):
    """The id of a catalog item: an integer in BigAutoField's range (a larger one would overflow
    in the database), else a 400."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, min_value=1, max_value=ITEM_ID_MAX, **kwargs)


class IntegrationFilter(django_filters.FilterSet):
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    item = ItemIdFilter(field_name="catalog_item_id", help_text="Only the mappings of this catalog item.")
    item_type = django_filters.CharFilter(
        field_name="catalog_item__catalog_type", help_text="Only items of this catalog type (customer, invoice)."
    )

    class Meta:
        model = CatalogIntegration
        fields = ["integration_type", "status", "item", "item_type", "created_after", "created_before"]


class InvoiceFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=InvoiceStatus.choices)
    customer = ItemIdFilter(field_name="customer_id", label="Customer id")
    currency = extend_schema_field({"type": "string", "pattern": "^[A-Za-z]{3}$"})(
        django_filters.CharFilter(
            method="filter_currency",
            label="ISO 4217 currency code (any case)",
            validators=[RegexValidator(r"^[A-Za-z]{3}\Z", "Enter a three-letter currency code, such as eur.")],
        )
    )
    created_after = UtcIsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    updated_after = UtcIsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Invoice
        fields = ["status", "customer", "currency", "created_after", "updated_after"]

    def filter_currency(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(currency=currency_normalize(value))
