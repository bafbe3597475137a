"""The staff's Customer admin: sync status per row, resync, CSV import and export.

Registered here rather than in catalog/admin.py because it uses the sync engine and the Stripe
integration, which the catalog app must not depend on.
"""

import csv
import io

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html
from polymorphic.admin import PolymorphicChildModelAdmin

from catalog import selectors
from catalog.bulk import MAX_ROWS, customers_bulk_save
from catalog.models import CatalogIntegration, Customer
from integrations.stripe import INTEGRATION_TYPE as STRIPE
from sync.outward import request_resync

CSV_COLUMNS = ["id", "name", "email"]

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
    actions = ["resync_selected", "export_csv"]
    change_list_template = "admin/catalog/customer/change_list.html"

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

    @admin.action(description="Export selected customers as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Customer]) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="customers.csv"'
        writer = csv.writer(response)
        writer.writerow([*CSV_COLUMNS, "sync_status"])
        for customer in queryset.order_by("id"):
            writer.writerow([customer.pk, customer.name, customer.email or "", customer.sync_status])
        return response

    def get_urls(self):
        return [
            path("import-csv/", self.admin_site.admin_view(self.import_csv), name="catalog_customer_import_csv"),
            *super().get_urls(),
        ]

    def import_csv(self, request: HttpRequest) -> HttpResponse:
        """Upload a CSV (columns name, email and, to update, id): the valid rows are saved, the
        invalid ones listed with their errors, as with POST /api/customers/bulk."""
        if not self.has_add_permission(request) or not self.has_change_permission(request):
            return redirect("admin:catalog_customer_changelist")
        form = CustomerCsvImportForm(request.POST or None, request.FILES or None)
        results = None
        if request.method == "POST" and form.is_valid():
            results = customers_bulk_save(rows=form.cleaned_data["rows"])
            saved = sum(r["status"] != "error" for r in results)
            level = messages.SUCCESS if saved == len(results) else messages.WARNING
            self.message_user(request, f"{saved} of {len(results)} rows saved.", level)
        context = {
            **self.admin_site.each_context(request),
            "title": "Import customers from CSV",
            "opts": self.model._meta,
            "form": form,
            "failed": [r for r in results or [] if r["status"] == "error"],
        }
        return TemplateResponse(request, "admin/catalog/customer/import_csv.html", context)


class CustomerCsvImportForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text=f"Columns: name, email, and id to update; at most {MAX_ROWS} rows.")

    def clean_file(self):
        raw = self.cleaned_data["file"].read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError("The file is not UTF-8 text.") from None
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or not {"name", "email"} & {f.strip().lower() for f in reader.fieldnames}:
            raise forms.ValidationError("The first line must name the columns: name, email (and id to update).")
        rows = [
            {key.strip().lower(): (value or "").strip() for key, value in row.items() if key and key.strip().lower() in CSV_COLUMNS}
            for row in reader
        ]
        if not rows:
            raise forms.ValidationError("The file has no rows.")
        if len(rows) > MAX_ROWS:
            raise forms.ValidationError(f"At most {MAX_ROWS} rows per file.")
        for row in rows:
            if not row.get("id"):
                row.pop("id", None)
        self.cleaned_data["rows"] = rows
        return raw
