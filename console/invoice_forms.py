"""The console's invoice form: the admin's rules (catalog/invoice_forms.py, the API serializer's
checks), with the customer given by id and picked from a list of suggestions."""

from __future__ import annotations

from typing import Any

from django import forms

from catalog.invoice_forms import InvoiceLinesField, InvoiceSerializerValidationMixin
from catalog.models import Invoice


class InvoiceForm(InvoiceSerializerValidationMixin, forms.Form):
    # A plain Form: the serializer is the one set of rules; the fields only parse.
    customer = forms.IntegerField(label="Customer", help_text="The customer's id; type a name to pick one.")
    currency = forms.CharField(label="Currency", initial="eur", help_text="ISO 4217 code, e.g. eur or usd.")
    due_date = forms.DateField(label="Due date", required=False)
    description = forms.CharField(label="Description", required=False, widget=forms.Textarea(attrs={"rows": 2}))
    lines = InvoiceLinesField(label="Lines")

    def __init__(self, *args: Any, instance: Invoice | None = None, **kwargs: Any) -> None:
        self.instance = instance
        if instance is not None:
            kwargs.setdefault("initial", invoice_initial(instance))
        super().__init__(*args, **kwargs)
        self.fields["currency"].widget.attrs["maxlength"] = "3"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        self.validate_with_serializer()
        return cleaned


def invoice_initial(invoice: Invoice) -> dict[str, Any]:
    return {
        "customer": invoice.customer_id,
        "currency": invoice.currency,
        "due_date": invoice.due_date,
        "description": invoice.description,
        "lines": list(invoice.lines),
    }
