from django.contrib import admin
from polymorphic.admin import PolymorphicChildModelAdmin, PolymorphicChildModelFilter, PolymorphicParentModelAdmin

from .models import CatalogIntegration, CatalogItem, Customer


class CatalogIntegrationInline(admin.TabularInline):
    model = CatalogIntegration
    extra = 0
    fields = ["integration_type", "integration_id", "status", "last_synced_at", "last_error"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Customer)
class CustomerAdmin(PolymorphicChildModelAdmin):
    base_model = Customer
    show_in_index = True
    list_display = ["id", "name", "email", "updated_at"]
    search_fields = ["name", "email"]
    inlines = [CatalogIntegrationInline]


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
