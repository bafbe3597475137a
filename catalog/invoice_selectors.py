"""Reads of invoices for the API and the staff screens."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from .models import Invoice


def invoice_queryset() -> QuerySet[Invoice]:
    """Invoices with their customer (one join, no query per row); non-polymorphic, as every row
    is an Invoice already."""
    return Invoice.objects.non_polymorphic().select_related("customer")


def invoice_list(
    *, search: str = "", status: str = "", customer_id: int | None = None, ordering: str = "-id"
) -> QuerySet[Invoice]:
    """Invoices matching `search` (number, description, customer's name or email), of one
    `status` and one customer when given; ties broken by id so that pages never overlap."""
    invoices = invoice_queryset()
    if search:
        invoices = invoices.filter(
            Q(number__icontains=search)
            | Q(description__icontains=search)
            | Q(customer__name__icontains=search)
            | Q(customer__email__icontains=search)
        )
    if status:
        invoices = invoices.filter(status=status)
    if customer_id is not None:
        invoices = invoices.filter(customer_id=customer_id)
    if ordering.lstrip("-") == "id":
        return invoices.order_by(ordering)
    return invoices.order_by(ordering, "-id")


def invoice_get(*, invoice_id: int) -> Invoice | None:
    return invoice_queryset().filter(pk=invoice_id).first()

