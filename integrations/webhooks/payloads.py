"""What an endpoint is told about a catalog item: its event type and the `data` of the message
(the item as the hub's API shows it), per catalog type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from catalog.models import CatalogItem, Customer, Invoice

# Fields of a customer an endpoint's system may also send back (the API's names).
CUSTOMER_FIELDS = ("name", "email", "phone", "description", "address", "metadata", "preferred_locales")
# An invoice's status change is told by its own event type, as Stripe's are.
INVOICE_STATUS_EVENTS = {
    "open": "invoice.finalized",
    "paid": "invoice.paid",
    "void": "invoice.voided",
    "uncollectible": "invoice.marked_uncollectible",
}


def customer_values(customer: Customer) -> dict[str, Any]:
    return {
        "name": customer.name,
        "email": customer.email,
        "phone": customer.phone,
        "description": customer.description,
        "address": customer.address,
        "metadata": dict(customer.metadata or {}),
        "preferred_locales": list(customer.preferred_locales or []),
    }


def invoice_values(invoice: Invoice) -> dict[str, Any]:
    return {
        "customer": invoice.customer_id,
        "currency": invoice.currency,
        "description": invoice.description,
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "lines": list(invoice.lines),
        "total": invoice.total,
        "status": invoice.status,
        "number": invoice.number,
    }


_VALUES: dict[type[CatalogItem], Callable[[Any], dict[str, Any]]] = {Customer: customer_values, Invoice: invoice_values}


def item_values(item: CatalogItem) -> dict[str, Any]:
    """The item's values as endpoints read them (what decides whether an endpoint is up to date)."""
    return _VALUES[type(item)](item)


def item_event_type(item: CatalogItem, *, known: dict[str, Any] | None) -> str:
    """`<type>.created` for an endpoint that never heard of the item; an invoice whose status
    changed since the endpoint last heard, by that change; else `<type>.updated`."""
    catalog_type = item.catalog_type_name()
    if known is None:
        return f"{catalog_type}.created"
    if isinstance(item, Invoice) and known.get("status") != item.status and item.status in INVOICE_STATUS_EVENTS:
        return INVOICE_STATUS_EVENTS[item.status]
    return f"{catalog_type}.updated"


def item_data(item: CatalogItem, values: dict[str, Any], *, external_id: str | None) -> dict[str, Any]:
    """The message's `data`: the item's id, type, values and times, and the id the endpoint's
    own system gave it, when it has one."""
    data = {"id": item.pk, "object": item.catalog_type_name(), **values}
    data["created_at"] = item.created_at.isoformat()
    data["updated_at"] = item.updated_at.isoformat()
    if external_id:
        data["external_id"] = external_id
    return data
