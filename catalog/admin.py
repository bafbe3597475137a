from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from polymorphic.admin import PolymorphicChildModelAdmin, PolymorphicChildModelFilter, PolymorphicParentModelAdmin

from . import invoice_services
from .currencies import amount_format
from .invoice_forms import InvoiceAdminForm
from .models import CatalogIntegration, CatalogItem, Invoice, InvoiceStatus, catalog_types, item_id_in_range

# The Customer admin (sync status, resync, CSV import/export) is registered by the console app:
# it needs the sync engine and the integrations, which the catalog does not know.



def adopt_saved_row(obj: models.Model, saved: models.Model) -> None:
    """Make the admin's unsaved object the row a service saved (its id, for the admin's redirect
    and log): admins save through the services, never with `obj.save()`."""
    for field in type(saved)._meta.concrete_fields:
        setattr(obj, field.attname, getattr(saved, field.attname))
    obj._state.adding, obj._state.db = False, saved._state.db

@admin.register(CatalogItem)
class CatalogItemAdmin(PolymorphicParentModelAdmin):
    base_model = CatalogItem
    list_display = ["id", "catalog_type", "created_at", "updated_at"]
    list_filter = [PolymorphicChildModelFilter]

    def get_child_models(self) -> list[type[CatalogItem]]:
        # Every subclass of CatalogItem, asked once every model is loaded: a new catalog type
        # shows up here without being listed.
        return catalog_types()


@admin.register(CatalogIntegration)
class CatalogIntegrationAdmin(admin.ModelAdmin):
    list_display = ["id", "catalog_item", "integration_type", "integration_id", "status", "last_synced_at"]
    list_filter = ["integration_type", "status"]
    search_fields = ["integration_id"]
    readonly_fields = ["catalog_item", "created_at", "updated_at"]


@admin.register(Invoice)
class InvoiceAdmin(PolymorphicChildModelAdmin):
    """Invoices: drafts are edited here, the rest are read-only; every write, the lifecycle
    actions included, goes through catalog.invoice_services."""

    base_model = Invoice
    form = InvoiceAdminForm
    show_in_index = True
    list_display = ["id", "number", "customer", "status", "total_display", "currency", "due_date", "updated_at"]
    list_filter = ["status", "currency"]
    list_select_related = ["customer"]
    search_fields = ["number", "description", "customer__name", "customer__email"]
    autocomplete_fields = ["customer"]
    readonly_fields = ["number", "status", "total_display", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["customer", ("currency", "due_date"), "description", "lines"]}),
        ("Lifecycle", {"fields": [("status", "number"), "total_display"]}),
        ("History", {"fields": [("created_at", "updated_at")], "classes": ["collapse"]}),
    ]
    actions = [
        "finalize_selected",
        "mark_paid_selected",
        "mark_uncollectible_selected",
        "void_selected",
        "delete_drafts",
    ]

    @admin.display(description="Total", ordering="total")
    def total_display(self, invoice: Invoice) -> str:
        return amount_format(invoice.total, invoice.currency) if invoice.currency else ""

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Invoice | None:
        # An id no invoice can have: "does not exist", as any unknown id (the look-up overflows).
        if from_field is None and not item_id_in_range(object_id):
            return None
        return super().get_object(request, object_id, from_field)

    def get_readonly_fields(self, request: HttpRequest, obj: Invoice | None = None) -> list[str]:
        if obj is not None and obj.status != InvoiceStatus.DRAFT:
            # Only a draft can change: the form of any other shows its values and nothing to edit.
            return [*self.readonly_fields, "customer", "currency", "due_date", "description", "lines", "lines_display"]
        return list(self.readonly_fields)

    def get_fieldsets(self, request: HttpRequest, obj: Invoice | None = None) -> list:
        if obj is not None and obj.status != InvoiceStatus.DRAFT:
            shown = {"fields": ["customer", ("currency", "due_date"), "description", "lines_display"]}
            return [(None, shown), *self.fieldsets[1:]]
        return self.fieldsets

    @admin.display(description="Lines")
    def lines_display(self, invoice: Invoice) -> str:
        return "\n".join(
            f"{line['description']} | {line['quantity']} × {amount_format(line['unit_amount'], invoice.currency)}"
            for line in invoice.lines
        )

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        invoice = self.get_object(request, object_id)
        if invoice is not None and invoice.status != InvoiceStatus.DRAFT:
            extra_context = {
                **(extra_context or {}),
                "show_save": False,
                "show_save_and_continue": False,
                "show_save_and_add_another": False,
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def has_delete_permission(self, request: HttpRequest, obj: Invoice | None = None) -> bool:
        # Only drafts can be deleted (void the others); the list's bulk delete is `delete_drafts`.
        if obj is not None and obj.status != InvoiceStatus.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # a queryset delete, past the services
        return actions

    def save_model(self, request: HttpRequest, obj: Invoice, form: InvoiceAdminForm, change: bool) -> None:
        """Save through the services with the values the serializer validated; the admin's object
        then takes the saved row's values (its id, for the redirect and the log)."""
        if change and obj.status != InvoiceStatus.DRAFT:
            return  # its form had nothing to edit
        if change:
            saved = invoice_services.invoice_update(
                invoice=Invoice.objects.non_polymorphic().get(pk=obj.pk), **form.validated_data
            )
        else:
            saved = invoice_services.invoice_create(**form.validated_data)
        adopt_saved_row(obj, saved)

    def delete_model(self, request: HttpRequest, obj: Invoice) -> None:
        invoice_services.invoice_delete(invoice=obj)

    def _apply(self, request: HttpRequest, queryset: QuerySet[Invoice], action: str) -> None:
        done, refused = 0, []
        for invoice in queryset.order_by("id"):
            try:
                if action == "delete":
                    invoice_services.invoice_delete(invoice=invoice)
                else:
                    invoice_services.invoice_transition(invoice=invoice, action=action)
                done += 1
            except invoice_services.InvoiceStateError as exc:
                refused.append(f"{invoice}: {exc}")
        verb = "deleted" if action == "delete" else invoice_services.ACTION_VERBS[action]
        if done:
            self.message_user(request, f"{done} invoice{'s' if done != 1 else ''} {verb}.", messages.SUCCESS)
        for reason in refused:
            self.message_user(request, reason, messages.ERROR)

    @admin.action(description="Finalize selected draft invoices", permissions=["change"])
    def finalize_selected(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        self._apply(request, queryset, "finalize")

    @admin.action(description="Mark selected invoices paid", permissions=["change"])
    def mark_paid_selected(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        self._apply(request, queryset, "mark_paid")

    @admin.action(description="Mark selected invoices uncollectible", permissions=["change"])
    def mark_uncollectible_selected(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        self._apply(request, queryset, "mark_uncollectible")

    @admin.action(description="Void selected invoices", permissions=["change"])
    def void_selected(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        self._apply(request, queryset, "void")

    @admin.action(description="Delete selected draft invoices", permissions=["delete"])
    def delete_drafts(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        self._apply(request, queryset, "delete")
