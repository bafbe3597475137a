"""The staff's Customer admin: sync status per row, resync, CSV import and export.

Registered here rather than in catalog/admin.py because it uses the sync engine and the
integrations' registry, which the catalog app must not depend on.
"""

import csv
import io
import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html
from polymorphic.admin import PolymorphicChildModelAdmin

from catalog import selectors, services
from catalog.admin import adopt_saved_row
from catalog.bulk import MAX_ROWS, customers_bulk_save
from catalog.models import ADDRESS_PARTS, CatalogIntegration, Customer, catalog_types, item_id_in_range
from sync.integrations import external_url, integration_label
from sync.outward import request_resync
from synchub.permissions import RESYNC_PERMISSION
from synchub.parsers import has_lone_surrogate

from .forms import (
    CUSTOMER_FIELDS,
    LocalesField,
    MetadataField,
    SerializerValidationMixin,
    parse_locales,
    serializer_field_errors,
    serializer_payload,
)
from .presentation import customer_integration

# The columns of the CSV export and import, in order: the customer's fields (model names; the
# metadata as a JSON object, the preferred locales comma-separated), and `id` to update.
CSV_COLUMNS = ["id", *CUSTOMER_FIELDS]
# Exported, and ignored on import like any column not in CSV_COLUMNS.
CSV_EXPORT_ONLY_COLUMNS = ["sync_status"]


class CatalogIntegrationInline(admin.TabularInline):
    model = CatalogIntegration
    extra = 0
    fields = ["integration", "integration_id", "status", "last_synced_at", "last_error"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="integration")
    def integration(self, mapping: CatalogIntegration) -> str:
        """Its label, linked to the item's page in that system's dashboard when it has one."""
        link = external_url(mapping)
        label = integration_label(mapping.integration_type)
        return format_html('<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>', link, label) if link else label


def _with_mappings(model_admin: admin.ModelAdmin) -> None:
    """Give a catalog type's admin the inline of its items' mappings (which the catalog, knowing
    no integration, cannot label or link)."""
    if CatalogIntegrationInline not in model_admin.inlines:
        model_admin.inlines = [*model_admin.inlines, CatalogIntegrationInline]


class SyncStatusFilter(admin.SimpleListFilter):
    title = "sync status"
    parameter_name = "sync_status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return selectors.CUSTOMER_SYNC_STATUSES

    def queryset(self, request: HttpRequest, queryset: QuerySet[Customer]) -> QuerySet[Customer]:
        if self.value() in selectors.CUSTOMER_SYNC_STATUS_VALUES:
            return queryset.filter(sync_status=self.value())
        return queryset


class CustomerAdminForm(SerializerValidationMixin, forms.ModelForm):
    """The admin's change form: checked by the API's serializer, as the console's form is
    (console/forms.py), with metadata as key=value lines and locales comma-separated."""

    metadata = MetadataField(label="Metadata", required=False, help_text="One key=value per line, e.g. plan=gold.")
    preferred_locales = LocalesField(
        label="Preferred locales", required=False, help_text="Comma-separated language tags, e.g. fr-FR, en."
    )

    class Meta:
        model = Customer
        fields = CUSTOMER_FIELDS

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        # Before _post_clean applies the values: the serializer compares with the saved row.
        self.validate_with_serializer(self.instance if self.instance.pk else None)
        return cleaned


@admin.register(Customer)
class CustomerAdmin(PolymorphicChildModelAdmin):
    base_model = Customer
    form = CustomerAdminForm
    show_in_index = True
    list_display = ["id", "name", "email", "phone", "address_country", "sync_status", "updated_at"]
    list_filter = [SyncStatusFilter]
    search_fields = ["name", "email", "phone"]
    readonly_fields = ["created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "email", "phone", "description"]}),
        (
            "Address",
            {
                "fields": [
                    "address_line1",
                    "address_line2",
                    ("address_postal_code", "address_city"),
                    "address_state",
                    "address_country",
                ]
            },
        ),
        ("Preferences and metadata", {"fields": ["preferred_locales", "metadata"]}),
        ("History", {"fields": [("created_at", "updated_at")], "classes": ["collapse"]}),
    ]
    inlines = [CatalogIntegrationInline]
    actions = ["resync_selected", "export_csv"]
    change_list_template = "admin/catalog/customer/change_list.html"

    class Media:
        # The sync status colours, as classes: the Content-Security-Policy allows no inline styles.
        css = {"all": ["console/admin.css"]}

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Customer | None:
        # An id no customer can have: "does not exist", as any unknown id (the look-up overflows).
        if from_field is None and not item_id_in_range(object_id):
            return None
        return super().get_object(request, object_id, from_field)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Customer]:
        # The status comes with the list query (a subquery), not one query per row.
        return selectors.with_sync_status(super().get_queryset(request), integration_type=customer_integration())

    def save_model(self, request: HttpRequest, obj: Customer, form: CustomerAdminForm, change: bool) -> None:
        """Save through the catalog services, with the values the serializer validated; the
        admin's object then takes the saved row's values (its id, for the redirect and log)."""
        if change:
            saved = services.customer_update(
                customer=Customer.objects.non_polymorphic().get(pk=obj.pk), **form.validated_data
            )
        else:
            saved = services.customer_create(**form.validated_data)
        adopt_saved_row(obj, saved)

    @admin.display(description="Sync status", ordering="sync_status")
    def sync_status(self, customer: Customer) -> str:
        status = customer.sync_status
        return format_html(
            '<strong class="sync-status sync-status-{}" title="{}">{}</strong>',
            status,
            customer.sync_error,
            dict(selectors.CUSTOMER_SYNC_STATUSES).get(status, status),
        )

    def has_resync_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(RESYNC_PERMISSION)

    @admin.action(description="Resync selected customers", permissions=["resync"])
    def resync_selected(self, request: HttpRequest, queryset: QuerySet[Customer]) -> None:
        customers = list(queryset)
        for customer in customers:
            request_resync(item=customer, revive=True)
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
        writer.writerow([*CSV_COLUMNS, *CSV_EXPORT_ONLY_COLUMNS])
        for customer in queryset.order_by("id"):
            writer.writerow(csv_export_row(customer))
        return response

    def get_urls(self):
        return [
            path("import-csv/", self.admin_site.admin_view(self.import_csv), name="catalog_customer_import_csv"),
            *super().get_urls(),
        ]

    def import_csv(self, request: HttpRequest) -> HttpResponse:
        """Upload a CSV (the columns of the export, and id to update): the valid rows are saved,
        the invalid ones listed with their errors, as with POST /api/customers/bulk."""
        if not self.has_add_permission(request) or not self.has_change_permission(request):
            return redirect("admin:catalog_customer_changelist")
        form = CustomerCsvImportForm(request.POST or None, request.FILES or None)
        results = None
        if request.method == "POST" and form.is_valid():
            results = import_rows(form.cleaned_data["rows"])
            saved = sum(r["status"] != "error" for r in results)
            level = messages.SUCCESS if saved == len(results) else messages.WARNING
            self.message_user(request, f"{saved} of {len(results)} rows saved.", level)
        context = {
            **self.admin_site.each_context(request),
            "title": "Import customers from CSV",
            "opts": self.model._meta,
            "form": form,
            "failed": [
                {**r, "messages": _error_lines(r["errors"], form.cleaned_data["rows"][r["index"]][0])}
                for r in results or []
                if r["status"] == "error"
            ],
            "columns": CSV_COLUMNS,
        }
        return TemplateResponse(request, "admin/catalog/customer/import_csv.html", context)


def _error_lines(errors: dict[str, Any], row: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """A row's errors as (CSV column, messages); "row" for errors about no one column."""
    return [(field or "row", messages) for field, messages in serializer_field_errors(errors, row).items()]


def csv_export_row(customer: Customer) -> list[Any]:
    """A customer as a row of CSV_COLUMNS + CSV_EXPORT_ONLY_COLUMNS."""
    return [
        customer.pk,
        customer.name,
        customer.email or "",
        customer.phone,
        customer.description,
        *(customer.address[part] for part in ADDRESS_PARTS),
        json.dumps(customer.metadata or {}, ensure_ascii=False, sort_keys=True),
        ",".join(customer.preferred_locales or []),
        customer.sync_status,
    ]


def csv_row_values(raw: dict[str, str]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """A CSV row (columns of CSV_COLUMNS, as text) as a row of customers_bulk_save, and the
    errors of the values that could not be read (the serializer checks the rest)."""
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for column, text in raw.items():
        if column == "metadata":
            try:
                values[column] = json.loads(text) if text else {}
                if has_lone_surrogate(values[column]):
                    errors[column] = ["Not JSON text that can be stored: a \\u escape is half a surrogate pair."]
            except json.JSONDecodeError as exc:
                errors[column] = [f'Not JSON text such as {{"plan": "gold"}}: {exc.msg} (character {exc.pos + 1}).']
            except RecursionError:  # nested deeper than Python can parse
                errors[column] = ['Not JSON text such as {"plan": "gold"}: nested too deeply.']
        elif column == "preferred_locales":
            values[column] = parse_locales(text)
        elif column != "id" or text:
            values[column] = text
    return serializer_payload(values), errors


def import_rows(rows: list[tuple[dict[str, Any], dict[str, list[str]]]]) -> list[dict[str, Any]]:
    """customers_bulk_save's results for the rows read from a CSV; a row with a value that
    could not be read is not saved, and reported like a row the serializer refused."""
    readable = [(index, row) for index, (row, errors) in enumerate(rows) if not errors]
    results: list[dict[str, Any]] = [
        {"index": index, "status": "error", "id": row.get("id"), "errors": errors}
        for index, (row, errors) in enumerate(rows)
    ]
    for (index, _), result in zip(readable, customers_bulk_save(rows=[row for _, row in readable]), strict=True):
        results[index] = {**result, "index": index}
    return results


class CustomerCsvImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text=f"The columns of the CSV export (others are ignored), and id to update; at most {MAX_ROWS} rows.",
    )

    def clean_file(self):
        raw = self.cleaned_data["file"].read()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError("The file is not UTF-8 text.") from None
        reader = csv.DictReader(io.StringIO(text))
        try:
            header = {f.strip().lower() for f in reader.fieldnames or [] if f}
            if not header & set(CUSTOMER_FIELDS):
                raise forms.ValidationError(
                    f"The first line must name the columns: {', '.join(CUSTOMER_FIELDS)} (any of them), "
                    "and id to update."
                )
            rows = [
                csv_row_values(
                    {
                        key.strip().lower(): (value or "").strip()
                        for key, value in row.items()
                        if key and key.strip().lower() in CSV_COLUMNS
                    }
                )
                for row in reader
            ]
        except csv.Error as exc:  # e.g. a field over the csv module's limit (128 KiB)
            raise forms.ValidationError(f"The file is not readable CSV: {exc}.") from None
        if not rows:
            raise forms.ValidationError("The file has no rows.")
        if len(rows) > MAX_ROWS:
            raise forms.ValidationError(f"At most {MAX_ROWS} rows per file.")
        self.cleaned_data["rows"] = rows
        return raw


# Every other catalog type's admin (the catalog registers them) lists its mappings the same way.
for _model in catalog_types():
    if _model is not Customer and admin.site.is_registered(_model):
        _with_mappings(admin.site.get_model_admin(_model))
