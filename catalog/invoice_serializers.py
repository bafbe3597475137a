"""Invoices in the API: what staff may send (checked as Stripe would check it) and what is answered.

Status, number and total are never sent: the status moves through the lifecycle actions, the
number comes from the external system at finalization, and the total is the lines' sum.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .currencies import ISO_4217_CODES, currency_normalize
from .models import ITEM_ID_MAX, Customer, Invoice, item_id_in_range

# Stripe's limits where it has them (an invoice item's amount: 8 digits in minor units); the
# line count and quantity bound what one invoice may carry.
LINES_MAX = 250
LINE_DESCRIPTION_MAX_LENGTH = 500
QUANTITY_MAX = 1_000_000
UNIT_AMOUNT_MAX = 99_999_999
DESCRIPTION_MAX_LENGTH = 5000


class WholeNumberField(serializers.IntegerField):
    """An integer as JSON writes it: no "3" or 3.0 or true, which DRF's IntegerField would take
    for 3 (and 1); an amount sent as text is more likely a mistake than a choice."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "type": "string",
        "pattern": "^[A-Za-z]{3}$",
        "description": "ISO 4217 currency code, in either case; answered in lower case (eur).",
    }
)
class CurrencyField(serializers.CharField):
    default_error_messages = {"not_a_currency": "Enter an ISO 4217 currency code, such as eur or usd."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_length=3, max_length=3, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        code = currency_normalize(super().to_internal_value(data))
        if code not in ISO_4217_CODES:
            self.fail("not_a_currency")
        return code


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": ITEM_ID_MAX})
class CustomerIdField(serializers.PrimaryKeyRelatedField):
    """A customer's id: an integer (not its text), of an existing customer."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(queryset=Customer.objects.non_polymorphic(), **kwargs)

    def to_internal_value(self, data: Any) -> Customer:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("incorrect_type", data_type=type(data).__name__)
        if not item_id_in_range(data):  # the look-up would overflow; no customer has it
            self.fail("does_not_exist", pk_value=data)
        return super().to_internal_value(data)


class InvoiceLineSerializer(serializers.Serializer):
    """One line: a description, a quantity and a unit amount in minor units (cents)."""

    description = serializers.CharField(
        max_length=LINE_DESCRIPTION_MAX_LENGTH, required=False, allow_blank=True, default=""
    )
    quantity = WholeNumberField(min_value=1, max_value=QUANTITY_MAX)
    unit_amount = WholeNumberField(
        min_value=0, max_value=UNIT_AMOUNT_MAX, help_text="Price of one unit in minor units (cents for eur)."
    )

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        # DRF drops keys it does not know; a misspelt "unit_price" must not pass unseen.
        unknown = {
            str(key): ["Unknown field; a line has description, quantity and unit_amount."]
            for key in (data if isinstance(data, Mapping) else ())
            if key not in self.fields
        }
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown}) from None
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


class InvoiceSerializer(serializers.ModelSerializer):
    customer = CustomerIdField(help_text="The id of the customer invoiced.")
    currency = CurrencyField()
    description = serializers.CharField(
        max_length=DESCRIPTION_MAX_LENGTH, required=False, allow_blank=True, default=""
    )
    due_date = serializers.DateField(required=False, allow_null=True, default=None)
    # A list field, not a nested many=True serializer: its errors are keyed by the line's
    # index ({"lines": {"2": {"quantity": [...]}}}), the {field: [messages]} shape of every 400.
    lines = serializers.ListField(
        child=InvoiceLineSerializer(),
        min_length=1,
        max_length=LINES_MAX,
        help_text=f"1 to {LINES_MAX} lines; the total is their sum of quantity × unit_amount.",
    )
    total = serializers.IntegerField(read_only=True, help_text="Sum of the lines, in minor units.")
    number = serializers.CharField(
        read_only=True, help_text="Given by the external system (Stripe) when the invoice is finalized."
    )

    class Meta:
        model = Invoice
        fields = [
            "id",
            "catalog_type",
            "customer",
            "currency",
            "description",
            "due_date",
            "status",
            "number",
            "lines",
            "total",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "catalog_type", "status", "number", "total", "created_at", "updated_at"]
