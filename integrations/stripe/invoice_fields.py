"""Invoices between the catalog and Stripe: the values both sides hold, as the three-way merge
and the reconciler compare them (pure: no database, no network)."""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any

from catalog.models import Invoice, InvoiceStatus

from .fields import LOCAL_ID_KEY

# What the merge compares. `number` is Stripe's alone (it numbers an invoice when finalizing).
INVOICE_FIELDS = ("currency", "description", "due_date", "lines", "status", "number")
INWARD_ONLY_FIELDS = frozenset({"number"})
# Once Stripe has finalized an invoice its content cannot change there any more: Stripe's wins.
FINAL_CONTENT_FIELDS = frozenset({"currency", "description", "due_date", "lines"})
# What a push changes in a Stripe draft (its currency is set once, when it is created).
DRAFT_CONTENT_FIELDS = ("description", "due_date", "lines")
# The order of Stripe's lifecycle: a push moves the remote invoice forward, never back.
STATUS_RANK = {
    InvoiceStatus.DRAFT: 0,
    InvoiceStatus.OPEN: 1,
    InvoiceStatus.UNCOLLECTIBLE: 2,
    InvoiceStatus.PAID: 3,
    InvoiceStatus.VOID: 3,
}


def local_invoice_values(invoice: Invoice) -> dict[str, Any]:
    return {
        "currency": invoice.currency,
        "description": invoice.description,
        "due_date": invoice.due_date.isoformat() if invoice.due_date else None,
        "lines": [_line(line) for line in invoice.lines],
        "status": invoice.status,
        "number": invoice.number,
    }


def stripe_invoice_values(remote: dict[str, Any]) -> dict[str, Any]:
    """A Stripe invoice's values in the catalog's terms."""
    due = remote.get("due_date")
    lines = (remote.get("lines") or {}).get("data") or []
    return {
        "currency": str(remote.get("currency") or "").lower(),
        "description": remote.get("description") or "",
        "due_date": datetime.fromtimestamp(due, tz=timezone.utc).date().isoformat() if due else None,
        "lines": [_stripe_line(line) for line in lines],
        "status": remote.get("status") or InvoiceStatus.DRAFT,
        "number": remote.get("number") or "",
    }


def catalog_fields(values: dict[str, Any]) -> dict[str, Any]:
    """Merged values as the catalog's services take them (a due date as a date)."""
    fields = dict(values)
    if "due_date" in fields:
        fields["due_date"] = date.fromisoformat(fields["due_date"]) if fields["due_date"] else None
    return fields


def stripe_due_date(value: str | None) -> int | None:
    """A due date as Stripe's timestamp: noon UTC, so it reads as the same day in any time zone
    within twelve hours of UTC (Stripe's dashboard shows the account's)."""
    return int(datetime.combine(date.fromisoformat(value), time(12), tzinfo=timezone.utc).timestamp()) if value else None


def stripe_invoice_create_params(values: dict[str, Any], *, stripe_customer_id: str, local_id: int) -> dict[str, Any]:
    params: dict[str, Any] = {
        "customer": stripe_customer_id,
        "currency": values["currency"],
        "description": values["description"],
        # Never let Stripe finalize or charge on its own: the catalog says when.
        "auto_advance": False,
        # Only the lines sent for this invoice, not the customer's other pending items.
        "pending_invoice_items_behavior": "exclude",
        "metadata": {LOCAL_ID_KEY: str(local_id)},
    }
    params.update(stripe_invoice_terms(values))
    return params


def stripe_invoice_terms(values: dict[str, Any]) -> dict[str, Any]:
    """How the invoice is collected: a due date means it is sent and paid by then; without one
    Stripe would charge the customer's payment method."""
    due = stripe_due_date(values["due_date"])
    if due is None:
        return {"collection_method": "charge_automatically"}
    return {"collection_method": "send_invoice", "due_date": due}


def stripe_line_params(line: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": line["description"],
        "quantity": line["quantity"],
        "unit_amount_decimal": str(line["unit_amount"]),
    }


def _line(line: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": str(line.get("description") or ""),
        "quantity": int(line.get("quantity") or 1),
        "unit_amount": int(line.get("unit_amount") or 0),
    }


def _stripe_line(line: dict[str, Any]) -> dict[str, Any]:
    """A line as the catalog keeps it. Stripe gives the amount and the quantity, and the unit
    amount under `pricing` (today's API) or `price` (older versions); when it gives none, the
    unit amount is derived, or the line kept whole as one unit."""
    quantity = int(line.get("quantity") or 1)
    amount = int(line.get("amount") or 0)
    unit = (line.get("pricing") or {}).get("unit_amount_decimal") or (line.get("price") or {}).get("unit_amount")
    if unit is not None and float(unit).is_integer() and int(float(unit)) * quantity == amount:
        unit_amount = int(float(unit))
    elif amount % quantity == 0:
        unit_amount = amount // quantity
    else:
        quantity, unit_amount = 1, amount
    return {"description": line.get("description") or "", "quantity": quantity, "unit_amount": unit_amount}


def stripe_line_item_ids(remote: dict[str, Any]) -> list[str]:
    """The invoice items behind a Stripe invoice's lines, in order."""
    ids = []
    for line in (remote.get("lines") or {}).get("data") or []:
        details = ((line.get("parent") or {}).get("invoice_item_details") or {}).get("invoice_item")
        item = details or line.get("invoice_item")
        if item:
            ids.append(item)
    return ids
