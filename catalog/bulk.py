"""Create or update many customers at once (REST bulk endpoint, admin CSV import): each row is
validated and saved on its own, so valid rows succeed and invalid ones are reported whole."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from . import services
from .models import Customer
from .serializers import CustomerSerializer

MAX_ROWS = 1000


def customers_bulk_save(*, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One result per row, in order: {"index", "status": created|updated|error, "id", "errors"}.

    A row with an "id" updates that customer (only the fields it names); one without creates.
    Every row is saved in a savepoint of its own: an invalid row leaves nothing behind.
    """
    return [_save_row(index, row) for index, row in enumerate(rows)]


def _save_row(index: int, row: Any) -> dict[str, Any]:
    if not isinstance(row, dict):
        return {"index": index, "status": "error", "id": None, "errors": {"non_field_errors": ["Expected an object."]}}
    customer_id = row.get("id")
    instance = None
    if customer_id not in (None, ""):
        instance = Customer.objects.filter(pk=customer_id).first() if str(customer_id).isdigit() else None
        if instance is None:
            return {"index": index, "status": "error", "id": customer_id, "errors": {"id": ["No such customer."]}}
    fields = {key: value for key, value in row.items() if key != "id"}
    serializer = CustomerSerializer(instance, data=fields, partial=instance is not None)
    if not serializer.is_valid():
        return {"index": index, "status": "error", "id": customer_id, "errors": serializer.errors}
    try:
        with transaction.atomic():
            if instance is None:
                customer = services.customer_create(**serializer.validated_data)
            else:
                customer = services.customer_update(customer=instance, **serializer.validated_data)
    except ValidationError as exc:
        return {"index": index, "status": "error", "id": customer_id, "errors": exc.message_dict}
    return {"index": index, "status": "created" if instance is None else "updated", "id": customer.pk, "errors": {}}
