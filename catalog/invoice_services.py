"""Business rules of invoices: every write to an invoice goes through here.

Each write is a model `save()` (or `delete()`), never a queryset update: the save's post_save
is what the sync engine turns into an outward sync. Staff may edit and delete drafts only and
move an invoice along Stripe's lifecycle (`invoice_transition`); the external system, through
`invoice_record_remote`, sets whatever it holds.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from .currencies import currency_normalize
from .models import Customer, Invoice, InvoiceStatus

# What staff may change on a draft; status and number only change through the lifecycle and
# the external system.
EDITABLE_FIELDS = frozenset({"customer", "currency", "lines", "description", "due_date"})
REMOTE_FIELDS = frozenset({"status", "number", "lines", "description", "due_date", "currency"})

# action -> (statuses it starts from, status it leads to), as Stripe's invoice lifecycle.
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "finalize": ((InvoiceStatus.DRAFT,), InvoiceStatus.OPEN),
    "void": ((InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE), InvoiceStatus.VOID),
    "mark_paid": ((InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE), InvoiceStatus.PAID),
    "mark_uncollectible": ((InvoiceStatus.OPEN,), InvoiceStatus.UNCOLLECTIBLE),
}
ACTION_VERBS = {
    "finalize": "finalized",
    "void": "voided",
    "mark_paid": "marked paid",
    "mark_uncollectible": "marked uncollectible",
}


class InvoiceStateError(ValueError):
    """The invoice's status does not allow what was asked (the API answers 409)."""


def invoice_allowed_actions(*, invoice: Invoice) -> list[str]:
    """The transitions the invoice's status allows, in TRANSITIONS order."""
    return [action for action, (sources, _) in TRANSITIONS.items() if invoice.status in sources]


def invoice_require_draft(*, invoice: Invoice, doing: str = "changed") -> None:
    """Raise InvoiceStateError unless the invoice (as given) is a draft, the one state staff
    may edit or delete; `doing` names the refused change in the message."""
    if invoice.status != InvoiceStatus.DRAFT:
        advice = ": void it instead" if doing == "deleted" else ""
        raise InvoiceStateError(f"Only a draft invoice can be {doing}; this one is {invoice.status}{advice}.")


def invoice_create(
    *,
    customer: Customer,
    currency: str,
    lines: Iterable[Mapping[str, Any]],
    description: str = "",
    due_date: datetime.date | None = None,
    status: str = InvoiceStatus.DRAFT,
    number: str = "",
) -> Invoice:
    """A new invoice (a draft unless `status` says otherwise, as an import from the external
    system does); its total is computed from the lines."""
    invoice = Invoice(
        customer=customer,
        currency=currency_normalize(currency),
        lines=_lines(lines),
        description=description or "",
        due_date=due_date,
        status=_status(status),
        number=number or "",
    )
    invoice.save()
    return invoice


def invoice_update(*, invoice: Invoice, **fields: Any) -> Invoice:
    """Change a draft's `fields` (customer, currency, lines, description, due_date); saves only
    when something changed. Anything but a draft raises InvoiceStateError."""
    unknown = set(fields) - EDITABLE_FIELDS
    if unknown:
        raise TypeError(f"invoice_update() cannot change {', '.join(sorted(unknown))}")
    with transaction.atomic():
        current = _locked(invoice)
        invoice_require_draft(invoice=current)
        changed = _assign(current, fields)
        if changed:
            current.save(update_fields=[*changed, "updated_at"])
    return _refreshed(invoice, current)


def invoice_transition(*, invoice: Invoice, action: str) -> Invoice:
    """Move the invoice along its lifecycle: finalize (draft -> open), void (open or
    uncollectible -> void), mark_paid (open or uncollectible -> paid), mark_uncollectible
    (open -> uncollectible). A transition its status does not allow raises InvoiceStateError."""
    if action not in TRANSITIONS:
        raise ValueError(f"Unknown invoice action {action!r}; one of {', '.join(TRANSITIONS)}.")
    sources, target = TRANSITIONS[action]
    with transaction.atomic():
        current = _locked(invoice)
        if current.status not in sources:
            allowed = " or ".join(str(status) for status in sources)
            article = "an" if allowed[0] in "aeiou" else "a"
            raise InvoiceStateError(
                f"Only {article} {allowed} invoice can be {ACTION_VERBS[action]}; this one is {current.status}."
            )
        if action == "finalize" and not current.lines:
            raise InvoiceStateError("An invoice needs at least one line to be finalized.")
        current.status = target
        current.save(update_fields=["status", "updated_at"])
    return _refreshed(invoice, current)


def invoice_record_remote(*, invoice: Invoice, **fields: Any) -> Invoice:
    """Set what the external system says of the invoice (status, number, lines, description,
    due_date, currency), whatever its status; saves only the fields that changed."""
    unknown = set(fields) - REMOTE_FIELDS
    if unknown:
        raise TypeError(f"invoice_record_remote() cannot set {', '.join(sorted(unknown))}")
    changed = _assign(invoice, fields)
    if changed:
        # Invoice.save adds `total` when the lines are among the fields.
        invoice.save(update_fields=[*changed, "updated_at"])
    return invoice


def invoice_delete(*, invoice: Invoice) -> None:
    """Delete a draft. A finalized invoice is a record (Stripe deletes drafts only): it raises
    InvoiceStateError; void it instead."""
    with transaction.atomic():
        current = _locked(invoice)
        invoice_require_draft(invoice=current, doing="deleted")
        current.delete()


# --- Helpers --------------------------------------------------------------------------------


def _locked(invoice: Invoice) -> Invoice:
    """The invoice's row as committed, locked until the transaction ends (on databases that
    lock rows): two staff acting at once cannot both finalize, or edit what was just finalized."""
    try:
        return Invoice.objects.non_polymorphic().select_for_update().get(pk=invoice.pk)
    except Invoice.DoesNotExist:
        raise InvoiceStateError("This invoice no longer exists.") from None


def _refreshed(invoice: Invoice, current: Invoice) -> Invoice:
    """The caller's instance with the saved row's values (so a view's object is up to date)."""
    # Setting customer_id drops a cached customer of another id (Django's FK attribute does).
    for field in Invoice._meta.concrete_fields:
        setattr(invoice, field.attname, getattr(current, field.attname))
    return invoice


def _assign(invoice: Invoice, fields: dict[str, Any]) -> list[str]:
    """Set `fields` (normalized) on `invoice`; the names of those that changed."""
    changed = []
    for name, value in fields.items():
        if name == "currency":
            value = currency_normalize(value)
        elif name == "lines":
            value = _lines(value)
        elif name == "status":
            value = _status(value)
        elif name in ("description", "number"):
            value = value or ""
        elif name == "due_date" and isinstance(value, str):
            value = datetime.date.fromisoformat(value) if value else None
        elif name == "customer":
            if invoice.customer_id != value.pk:
                invoice.customer = value
                changed.append(name)
            continue
        if getattr(invoice, name) != value:
            setattr(invoice, name, value)
            changed.append(name)
    return changed


def _lines(lines: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Lines as stored: exactly description, quantity and unit_amount each, amounts as integers.
    The API validates ranges (catalog/invoice_serializers.py); this keeps the stored shape."""
    stored = []
    for number, line in enumerate(lines, start=1):
        try:
            stored.append(
                {
                    "description": str(line.get("description") or ""),
                    "quantity": _integer(line.get("quantity")),
                    "unit_amount": _integer(line.get("unit_amount")),
                }
            )
        except (AttributeError, TypeError, ValueError):
            raise ValidationError(
                {"lines": [f"Line {number}: a description, an integer quantity and an integer unit_amount."]}
            ) from None
    return stored


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("not an integer")
    return value


def _status(status: str) -> str:
    if status not in InvoiceStatus.values:
        raise ValueError(f"Unknown invoice status {status!r}; one of {', '.join(InvoiceStatus.values)}.")
    return str(status)
