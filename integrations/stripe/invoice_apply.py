"""Inward: apply Stripe's invoice events to the catalog (the invoice inward task's handler).

The same guarantees as customers' (`apply.py`): each event once (the inbox), nothing stale,
nothing deleted comes back (tombstones), a payload of the same second as newer news is read
again from Stripe, and changes made here are not sent back to Stripe. Invoices appear locally
for Stripe customers the catalog knows; an invoice of a customer whose own event has not been
applied yet waits for it (retried), rather than being dropped.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from django.db import transaction

from catalog.invoice_services import invoice_create, invoice_delete, invoice_record_remote, invoice_update
from catalog.models import CatalogIntegration, Customer, Invoice, SyncStatus
from catalog.services import (
    integration_link,
    integration_record_agreed,
    integration_record_synced,
    integration_remove,
    integrations_by_external_id,
)
from sync.audit import SyncResult, event_result
from sync.inbox import Inbox, IncomingEvent
from sync.merge import merge_three_way
from sync.conflicts import conflicts_record
from sync.outward import applying_remote_change, request_resync
from sync.tasks import PermanentTaskError, RetryLater
from sync.tombstones import DeletedBy, tombstones_alive

from . import INTEGRATION_TYPE
from .apply import event_skip_result
from .client import stripe_client
from .fields import local_id_of
from .invoice_fields import (
    FINAL_CONTENT_FIELDS,
    INWARD_ONLY_FIELDS,
    catalog_fields,
    local_invoice_values,
    stripe_invoice_values,
)
from .records import stripe_incoming, stripe_tombstone

logger = logging.getLogger(__name__)

class CustomerNotLinkedYet(RetryLater):
    """The invoice's Stripe customer is not in the catalog yet (its `customer.created` is still
    on its way): the event waits for it, without using up its attempts."""


def stripe_invoice_events_apply(events: list[dict[str, Any]]) -> list[SyncResult | Exception]:
    """Apply Stripe invoice events (of distinct invoices; each the inward task's arguments) in
    one transaction, each in a savepoint of its own; return each one's result or exception."""
    incoming = [stripe_incoming(event, kind="invoice") for event in events]
    outcomes: list[SyncResult | Exception] = []
    resyncs: list[Invoice] = []
    with transaction.atomic():
        inbox = Inbox(source=INTEGRATION_TYPE, events=incoming)
        mappings = integrations_by_external_id(
            integration_type=INTEGRATION_TYPE, integration_ids=[event.object_id for event in incoming]
        )
        for event, raw in zip(incoming, events):
            skipped = event_skip_result(event, inbox)
            if skipped is not None:
                outcomes.append(skipped)
                continue
            try:
                with transaction.atomic():
                    outcome, resync = _apply(event, raw["invoice"], inbox, mappings.get(event.object_id))
            except Exception as exc:  # noqa: BLE001 - reported per event; the others go on
                outcomes.append(exc)
                continue
            inbox.mark_handled(event)
            outcomes.append(outcome)
            if resync is not None:
                resyncs.append(resync)
        inbox.record()
    for invoice in resyncs:
        request_resync(item=invoice)  # the local side won a conflict: send it
    return outcomes


def _apply(
    event: IncomingEvent, payload: dict[str, Any], inbox: Inbox, mapping: CatalogIntegration | None
) -> tuple[SyncResult, Invoice | None]:
    with applying_remote_change(INTEGRATION_TYPE):
        remote: dict[str, Any] | None = payload
        if not event.deletes and inbox.is_ambiguous(event, last_pushed_at=mapping.last_synced_at if mapping else None):
            remote = _fetch_remote(event.object_id)
        if event.deletes or remote is None:
            action, item_id = _deleted_in_stripe(event.object_id, mapping)
            return event_result(event=event, action=action, item_id=item_id), None
        if event.event_type == "invoice.payment_failed" and mapping is not None:
            logger.info("stripe invoice %s: a payment failed (attempt %s)", event.object_id, remote.get("attempt_count"))
        if mapping is None:
            invoice = _link_or_create(remote)
            return event_result(event=event, action="applied", item_id=invoice.pk), None
        invoice = Invoice.objects.non_polymorphic().get(pk=mapping.catalog_item_id)
        resync, fields = _merge(invoice, mapping, remote, event.event_id)
        applied = event_result(event=event, action="applied", item_id=invoice.pk, fields=fields)
        return applied, invoice if resync else None


def _fetch_remote(invoice_id: str) -> dict[str, Any] | None:
    """Stripe's invoice now; None when it was deleted."""
    try:
        remote = stripe_client().v1.invoices.retrieve(invoice_id).to_dict(recursive=True)
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "http_status", None) == 404:
            return None
        raise
    return None if remote.get("deleted") else remote


def _deleted_in_stripe(invoice_id: str, mapping: CatalogIntegration | None) -> tuple[str, int | None]:
    """A draft deleted in Stripe is deleted here too; an invoice that is no draft here (staff
    finalized it meanwhile) is kept and unlinked. Either way its tombstone stays."""
    if mapping is None:
        stripe_tombstone(deleted_by=DeletedBy.REMOTE, external_id=invoice_id, item_id=None, model=Invoice)
        return "ignored: never linked", None
    invoice = Invoice.objects.non_polymorphic().filter(pk=mapping.catalog_item_id).first()
    if invoice is not None and invoice.is_draft:
        item_id = invoice.pk
        invoice_delete(invoice=invoice)  # its pre_delete records the tombstone (deleted in Stripe)
        return "deleted: deleted in Stripe", item_id
    stripe_tombstone(deleted_by=DeletedBy.REMOTE, external_id=invoice_id, item_id=mapping.catalog_item_id, model=Invoice)
    integration_remove(integration_type=INTEGRATION_TYPE, integration_id=invoice_id)
    return "unlinked: deleted in Stripe", mapping.catalog_item_id


def _link_or_create(remote: dict[str, Any]) -> Invoice:
    """The local invoice for a Stripe invoice the catalog has no link to: the one it was pushed
    from (its metadata names it; our own create coming back before the push recorded it), else a
    new one for the customer, whose Stripe customer must be linked already."""
    theirs = stripe_invoice_values(remote)
    local_id = local_id_of(remote)
    if local_id is not None:
        invoice = Invoice.objects.non_polymorphic().filter(pk=local_id).first()
        if invoice is not None:
            integration_link(item_id=invoice.pk, integration_type=INTEGRATION_TYPE, integration_id=remote["id"])
            return invoice
    customer = _local_customer(remote.get("customer"))
    invoice = invoice_create(customer=customer, **catalog_fields(theirs))
    integration_record_synced(
        item_id=invoice.pk, integration_type=INTEGRATION_TYPE, integration_id=remote["id"], agreed_fields=theirs
    )
    return invoice


def _local_customer(stripe_customer_id: Any) -> Customer:
    if isinstance(stripe_customer_id, dict):  # expanded
        stripe_customer_id = stripe_customer_id.get("id")
    mapping = integrations_by_external_id(
        integration_type=INTEGRATION_TYPE, integration_ids=[str(stripe_customer_id)]
    ).get(str(stripe_customer_id))
    if mapping is not None:
        return Customer.objects.non_polymorphic().get(pk=mapping.catalog_item_id)
    if tombstones_alive(integration_type=INTEGRATION_TYPE).filter(external_id=str(stripe_customer_id)).exists():
        raise PermanentTaskError(f"Stripe customer {stripe_customer_id} was deleted: its invoices are not imported")
    raise CustomerNotLinkedYet(f"Stripe customer {stripe_customer_id} is not in the catalog yet")


def _merge(
    invoice: Invoice, mapping: CatalogIntegration, remote: dict[str, Any], event_id: str
) -> tuple[bool, tuple[str, ...]]:
    """Three-way merge against what both sides last agreed on. Stripe's number always, and its
    content once it finalized the invoice (final there); a status both sides changed takes
    Stripe's (money moved there). Other conflicts keep the local value, which is pushed.
    Returns whether the local side needs a push, and the fields written here."""
    theirs = stripe_invoice_values(remote)
    remote_wins = INWARD_ONLY_FIELDS | (FINAL_CONTENT_FIELDS if theirs["status"] != "draft" else frozenset())
    merged = merge_three_way(
        base=mapping.synced_fields,
        local=local_invoice_values(invoice),
        remote=theirs,
        local_pending=mapping.status == SyncStatus.PENDING,
        remote_wins=remote_wins,
    )
    apply_local, agreed = dict(merged.apply_local), dict(merged.agreed)
    kept_local = []
    for conflict in merged.conflicts:
        if conflict.field == "status":
            apply_local["status"] = agreed["status"] = conflict.remote_value
        else:
            kept_local.append(conflict)
    kept_remote = [conflict for conflict in merged.conflicts if conflict not in kept_local]
    for kept, conflicts in (("local", kept_local), ("remote", kept_remote)):
        conflicts_record(
            item_id=invoice.pk, integration_type=INTEGRATION_TYPE, conflicts=conflicts, kept=kept,
            remote_event_id=event_id,
        )
    if apply_local:
        invoice_record_remote(invoice=invoice, **catalog_fields(apply_local))
    integration_record_agreed(mapping=mapping, agreed_fields=agreed)
    return bool(kept_local) and mapping.status != SyncStatus.PENDING, tuple(apply_local)


def invoice_field_write(*, item: Invoice, field: str, value: Any) -> bool:
    """Write one merged invoice field (a conflict staff resolved) to the local draft; whether it
    changed. Only a draft's content can change (InvoiceStateError otherwise, a ValueError)."""
    before = local_invoice_values(item)
    invoice = invoice_update(invoice=item, **catalog_fields({field: value}))
    return local_invoice_values(invoice) != before
