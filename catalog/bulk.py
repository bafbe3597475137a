"""Create or update many customers at once (REST bulk endpoint, admin CSV import): each row is
validated and saved on its own, so valid rows succeed and invalid ones are reported whole."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework import serializers

from . import services
from .models import ITEM_ID_MAX, Customer
from .serializers import CustomerSerializer

MAX_ROWS = 1000


def customers_bulk_save(*, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One result per row, in order: {"index", "status": created|updated|error, "id", "errors"}.

    A row with an "id" updates that customer (only the fields it names); one without creates.
    Every row is saved in a savepoint of its own: an invalid row leaves nothing behind.
    """
    return [_save_row(index, row) for index, row in enumerate(rows)]


# A row's id, validated before it reaches the database (beyond BigAutoField's range it overflows).
ROW_ID_FIELD = serializers.IntegerField(min_value=1, max_value=ITEM_ID_MAX)


def _error(index: int, errors: dict[str, Any], customer_id: int | None = None) -> dict[str, Any]:
    return {"index": index, "status": "error", "id": customer_id, "errors": errors}


def _save_row(index: int, row: Any) -> dict[str, Any]:
    if not isinstance(row, dict):
        return _error(index, {"non_field_errors": ["Expected an object."]})
    instance = None
    customer_id = None
    if row.get("id") not in (None, ""):
        # The result's id is an integer or null, as documented: never the invalid value echoed.
        try:
            customer_id = ROW_ID_FIELD.run_validation(row["id"])
        except serializers.ValidationError as exc:
            return _error(index, {"id": exc.detail})
        instance = Customer.objects.filter(pk=customer_id).first()
        if instance is None:
            return _error(index, {"id": ["No such customer."]}, customer_id)
    fields = {key: value for key, value in row.items() if key != "id"}
    serializer = CustomerSerializer(instance, data=fields, partial=instance is not None)
    if not serializer.is_valid():
        return _error(index, serializer.errors, customer_id)
    try:
        with transaction.atomic():
            if instance is None:
                customer = services.customer_create(**serializer.validated_data)
            else:
                customer = services.customer_update(customer=instance, **serializer.validated_data)
    except ValidationError as exc:
        return _error(index, exc.message_dict, customer_id)
    return {"index": index, "status": "created" if instance is None else "updated", "id": customer.pk, "errors": {}}
