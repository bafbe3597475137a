"""The staff's invoice forms (Django admin and console): lines edited as text, one per row, and
every value checked by the API's serializer (catalog/invoice_serializers.py), whose errors are
shown beside the fields they are about. The forms only parse; writes go through the services.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from . import invoice_services
from .invoice_serializers import InvoiceSerializer
from .models import Customer, Invoice

INVOICE_FORM_FIELDS = ["customer", "currency", "due_date", "description", "lines"]
LINES_HELP = (
    "One line per row: description | quantity | unit amount in minor units (cents: 1250 is 12.50), "
    "e.g. “Consulting | 3 | 12500”."
)


def format_invoice_lines(lines: list[dict[str, Any]]) -> str:
    return "\n".join(f"{line['description']} | {line['quantity']} | {line['unit_amount']}" for line in lines)


def parse_invoice_lines(text: str) -> list[dict[str, Any]]:
    """Rows of `description | quantity | unit amount` (blank rows skipped) as the API's lines.
    The description may itself hold a "|": the last two parts are the numbers."""
    lines, errors = [], []
    for number, row in enumerate(text.splitlines(), start=1):
        if not row.strip():
            continue
        parts = [part.strip() for part in row.rsplit("|", 2)]
        if len(parts) != 3:
            errors.append(f"Row {number}: “{row.strip()[:60]}” is not description | quantity | unit amount.")
            continue
        description, quantity, unit_amount = parts
        values = {}
        for name, value in (("quantity", quantity), ("unit amount", unit_amount)):
            try:
                values[name] = int(value)
            except ValueError:
                errors.append(f"Row {number}: the {name} “{value[:20]}” is not a whole number.")
        if len(values) == 2:
            lines.append(
                {"description": description, "quantity": values["quantity"], "unit_amount": values["unit amount"]}
            )
    if errors:
        raise ValidationError(errors)
    return lines


class InvoiceLinesField(forms.CharField):
    """A list of lines edited as `description | quantity | unit amount` rows."""

    widget = forms.Textarea(attrs={"rows": 5, "spellcheck": "false"})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", LINES_HELP)
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        return format_invoice_lines(value) if isinstance(value, list) else value

    def to_python(self, value: Any) -> list[dict[str, Any]]:
        if isinstance(value, list):
            return value
        return parse_invoice_lines(super().to_python(value))

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.to_python(data) != (initial or [])
        except ValidationError:
            return True


def _messages(errors: Any, prefix: str = "") -> list[str]:
    """A serializer's errors under one field as flat strings; a line's are "Line 2: quantity: …"."""
    if isinstance(errors, dict):
        found = []
        for key, value in errors.items():
            label = f"Line {int(key) + 1}: " if str(key).isdigit() else f"{key}: " if key != "non_field_errors" else ""
            found.extend(_messages(value, prefix + label))
        return found
    if isinstance(errors, (list, tuple)):
        return [message for error in errors for message in _messages(error, prefix)]
    return [f"{prefix}{errors}"]


class InvoiceSerializerValidationMixin:
    """Checks a form's cleaned values with InvoiceSerializer; `validated_data` then holds what
    to pass to the services."""

    validated_data: dict[str, Any] | None = None

    def validate_with_serializer(self) -> None:
        values = {name: self.cleaned_data[name] for name in INVOICE_FORM_FIELDS if name in self.cleaned_data}
        if isinstance(values.get("customer"), Customer):
            values["customer"] = values["customer"].pk
        serializer = InvoiceSerializer(data=values)
        if serializer.is_valid():
            self.validated_data = dict(serializer.validated_data)
            return
        self.validated_data = None
        for field, errors in serializer.errors.items():
            if field in self.errors:
                continue  # the form could not read it: its own message says why ("required" would not)
            self.add_error(field if field in self.fields else None, _messages(errors))


def invoice_form_save(form: forms.BaseForm, invoice: Invoice | None) -> Invoice | None:
    """Create or update through the services with the form's validated values. Returns None,
    with the reason added to the form, when a rule refuses the change (no longer a draft)."""
    assert form.validated_data is not None, "save of an invalid form"
    try:
        if invoice is None:
            return invoice_services.invoice_create(**form.validated_data)
        return invoice_services.invoice_update(invoice=invoice, **form.validated_data)
    except invoice_services.InvoiceStateError as exc:
        form.add_error(None, str(exc))
        return None


class InvoiceAdminForm(InvoiceSerializerValidationMixin, forms.ModelForm):
    lines = InvoiceLinesField(label="Lines")

    class Meta:
        model = Invoice
        fields = INVOICE_FORM_FIELDS

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.fields:  # none on a finalized invoice's page: nothing to check, nothing saved
            self.validate_with_serializer()
        return cleaned
