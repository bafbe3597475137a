from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from polymorphic.admin import PolymorphicChildModelAdmin, PolymorphicChildModelFilter, PolymorphicParentModelAdmin

from integrations.stripe import INTEGRATION_TYPE as STRIPE
from sync.outward import request_resync

from . import selectors
from .models import CatalogIntegration, CatalogItem, Customer

# Colours of the sync status in the customer list (the admin's own palette).
STATUS_COLOURS = {"synced": "#198754", "pending": "#997404", "failed": "#dc3545", "unsynced": "#6c757d"}


class CatalogIntegrationInline(admin.TabularInline):
    model = CatalogIntegration
    extra = 0
    fields = ["integration_type", "integration_id", "status", "last_synced_at", "last_error"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class SyncStatusFilter(admin.SimpleListFilter):
    title = "Stripe sync status"
    parameter_name = "sync_status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return selectors.CUSTOMER_SYNC_STATUSES

    def queryset(self, request: HttpRequest, queryset: QuerySet[Customer]) -> QuerySet[Customer]:
        if self.value() in selectors.CUSTOMER_SYNC_STATUS_VALUES:
            return queryset.filter(sync_status=self.value())
        return queryset


@admin.register(Customer)
class CustomerAdmin(PolymorphicChildModelAdmin):
    base_model = Customer
    show_in_index = True
    list_display = ["id", "name", "email", "sync_status", "updated_at"]
    list_filter = [SyncStatusFilter]
    search_fields = ["name", "email"]
    inlines = [CatalogIntegrationInline]
    actions = ["resync_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Customer]:
        # The status comes with the list query (a subquery), not one query per row.
        return selectors.with_sync_status(super().get_queryset(request), integration_type=STRIPE)

    @admin.display(description="Stripe sync", ordering="sync_status")
    def sync_status(self, customer: Customer) -> str:
        status = customer.sync_status
        return format_html(
            '<strong style="color: {}" title="{}">{}</strong>',
            STATUS_COLOURS.get(status, "inherit"),
            customer.sync_error,
            dict(selectors.CUSTOMER_SYNC_STATUSES).get(status, status),
        )

    @admin.action(description="Resync selected customers", permissions=["change"])
    def resync_selected(self, request: HttpRequest, queryset: QuerySet[Customer]) -> None:
        customers = list(queryset)
        for customer in customers:
            request_resync(item=customer)
        self.message_user(
            request,
            f"Resync requested for {len(customers)} customer{'s' if len(customers) != 1 else ''}.",
            messages.SUCCESS,
        )


@admin.register(CatalogItem)
class CatalogItemAdmin(PolymorphicParentModelAdmin):
    base_model = CatalogItem
    child_models = [Customer]
    list_display = ["id", "catalog_type", "created_at", "updated_at"]
    list_filter = [PolymorphicChildModelFilter]


@admin.register(CatalogIntegration)
class CatalogIntegrationAdmin(admin.ModelAdmin):
    list_display = ["id", "catalog_item", "integration_type", "integration_id", "status", "last_synced_at"]
    list_filter = ["integration_type", "status"]
    search_fields = ["integration_id"]
    readonly_fields = ["catalog_item", "created_at", "updated_at"]
