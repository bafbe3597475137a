from django.contrib import admin
from polymorphic.admin import PolymorphicChildModelFilter, PolymorphicParentModelAdmin

from .models import CatalogIntegration, CatalogItem, Customer

# The Customer admin (sync status, resync, CSV import/export) is registered by the console app:
# it needs the sync engine and the integrations, which the catalog does not know.


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
