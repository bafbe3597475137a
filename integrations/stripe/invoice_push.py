"""Outward: make Stripe's invoice match a local one (the invoice outward task's handler).

State-based like the customer push: each push reads the local invoice and Stripe's as they are
now, so a late or repeated message can only bring the newest state. A draft becomes a Stripe
draft with one invoice item per line; its content follows while both are drafts; its status
moves Stripe's forward (finalize, pay out of band, void, mark uncollectible), never back.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from django.db import transaction

from catalog.invoice_services import invoice_record_remote
from catalog.models import CatalogIntegration, Invoice, InvoiceStatus, SyncStatus
from catalog.services import (
    integration_for_item,
    integration_record_error,
    integration_record_synced,
    integration_remove,
    integrations_begin_create,
)
from sync.audit import SyncResult
from sync.merge import Conflict, merge_three_way
from sync.conflicts import conflicts_record
from sync.outward import ACTION_DELETE, applying_remote_change
from sync.tasks import PermanentTaskError, RetryLater
from sync.tombstones import DeletedBy

from . import INTEGRATION_TYPE
from .client import idempotency_options, stripe_client
from .invoice_fields import (
    DRAFT_CONTENT_FIELDS,
    FINAL_CONTENT_FIELDS,
    STATUS_RANK,
    catalog_fields,
    local_invoice_values,
    stripe_invoice_create_params,
    stripe_invoice_terms,
    stripe_invoice_values,
    stripe_line_item_ids,
    stripe_line_params,
)
from .push import RETRYABLE_ERRORS
from .records import stripe_tombstone

logger = logging.getLogger(__name__)


class CustomerNotInStripeYet(RetryLater):
    """The invoice's customer has no Stripe customer yet (its own push is under way): the
    invoice waits for it, without using up its attempts, instead of failing."""


def invoice_push(
    *, item_id: int, action: str, event_id: str, external_id: str | None = None, full: bool = False
) -> SyncResult:
    """Make Stripe's invoice match the local invoice `item_id` as it is now (or delete it)."""
    try:
        if action == ACTION_DELETE:
            return _delete_remote(item_id, external_id or "", event_id)
        invoice = Invoice.objects.non_polymorphic().filter(pk=item_id).first()
        if invoice is None:
            return SyncResult(action="skipped: deleted locally", item_id=item_id)  # its delete event removes it
        return _push(invoice, event_id)
    except RETRYABLE_ERRORS as exc:
        integration_record_error(item_id=item_id, integration_type=INTEGRATION_TYPE, error=str(exc), final=False)
        raise
    except stripe.StripeError as exc:
        # Refused (bad data, a state Stripe does not allow): the same request cannot succeed.
        integration_record_error(
            item_id=item_id, integration_type=INTEGRATION_TYPE, error=str(exc), final=True, create_rejected=True
        )
        raise PermanentTaskError(str(exc)) from exc


def invoice_push_failed(*, item_id: int, error: str) -> None:
    integration_record_error(item_id=item_id, integration_type=INTEGRATION_TYPE, error=error, final=True)


def _push(invoice: Invoice, event_id: str) -> SyncResult:
    customer_mapping = integration_for_item(item_id=invoice.customer_id, integration_type=INTEGRATION_TYPE)
    _require_customer_in_stripe(invoice, customer_mapping)
    mapping = integration_for_item(item_id=invoice.pk, integration_type=INTEGRATION_TYPE)
    local = local_invoice_values(invoice)
    client = stripe_client()
    changed_in_stripe: set[str] = set()
    if mapping is None or not mapping.integration_id:
        remote, done = _create_remote(client, event_id, invoice, local, customer_mapping.integration_id, mapping), "created"
    else:
        try:
            remote, done = _retrieve(client, mapping.integration_id), "updated"
        except stripe.InvalidRequestError as exc:
            if getattr(exc, "http_status", None) != 404:
                raise
            return _unlink(invoice, mapping.integration_id)
        remote, changed_in_stripe = _follow_draft(client, remote, local, mapping.synced_fields, event_id, invoice.pk)
    remote = _advance_status(client, remote, local["status"], event_id)
    theirs = stripe_invoice_values(remote)
    with transaction.atomic():
        _take_stripe_state(
            invoice, local, theirs, base=mapping.synced_fields if mapping is not None else {}, also=changed_in_stripe
        )
        integration_record_synced(
            item_id=invoice.pk, integration_type=INTEGRATION_TYPE, integration_id=remote["id"], agreed_fields=theirs
        )
    base = mapping.synced_fields if mapping is not None else {}
    sent = tuple(name for name, value in local.items() if done == "created" or base.get(name) != value)
    return SyncResult(action=done, item_id=invoice.pk, external_id=remote["id"], fields=sent)


def _require_customer_in_stripe(invoice: Invoice, mapping: CatalogIntegration | None) -> None:
    """Raise unless the invoice's customer is in Stripe: wait while its push is under way; fail
    when it failed, or when the customer is not synced with Stripe at all (deleted there)."""
    if mapping is not None and mapping.integration_id:
        return
    customer = f"customer {invoice.customer_id} of invoice {invoice.pk}"
    if mapping is None:
        raise PermanentTaskError(f"{customer} is not synced with Stripe (deleted there?); resync the customer first")
    if mapping.status == SyncStatus.FAILED:
        raise PermanentTaskError(f"{customer} could not be created in Stripe: {mapping.last_error[:300]}")
    raise CustomerNotInStripeYet(f"{customer} is not in Stripe yet")


def _retrieve(client: stripe.StripeClient, invoice_id: str) -> dict[str, Any]:
    return client.v1.invoices.retrieve(invoice_id).to_dict(recursive=True)


def _create_remote(
    client: stripe.StripeClient,
    event_id: str,
    invoice: Invoice,
    local: dict[str, Any],
    stripe_customer_id: str,
    mapping: CatalogIntegration | None,
) -> dict[str, Any]:
    """A Stripe draft with the invoice's lines. The create key is recorded first and reused by
    an interrupted create's retry, and each line's key derives from it, so a retry finds what
    the first attempt made instead of making it twice."""
    begun = integrations_begin_create(
        integration_type=INTEGRATION_TYPE,
        keys={invoice.pk: idempotency_options(event_id, "create")["idempotency_key"]},
        mappings={invoice.pk: mapping} if mapping is not None else {},
    )
    key, _resumed = begun[invoice.pk]
    params = stripe_invoice_create_params(local, stripe_customer_id=stripe_customer_id, local_id=invoice.pk)
    created = client.v1.invoices.create(params=params, options={"idempotency_key": key})
    for index, line in enumerate(local["lines"]):
        client.v1.invoice_items.create(
            params={"customer": stripe_customer_id, "invoice": created.id, "currency": local["currency"],
                    **stripe_line_params(line)},
            options={"idempotency_key": f"{key}-line-{index}"},
        )
    return _retrieve(client, created.id)


def _follow_draft(
    client: stripe.StripeClient,
    remote: dict[str, Any],
    local: dict[str, Any],
    base: dict[str, Any],
    event_id: str,
    item_id: int,
) -> tuple[dict[str, Any], set[str]]:
    """While Stripe's invoice is a draft, send it the content changed here since both sides last
    agreed (`base`): description, terms, lines (replaced whole: a draft's items are ours alone).
    Content changed only in Stripe is not overwritten: its names are returned, to be taken here.
    Changed on both sides, the local value is sent and the conflict recorded, as for customers."""
    if remote.get("status") != InvoiceStatus.DRAFT:
        return remote, set()
    theirs = stripe_invoice_values(remote)
    merged = merge_three_way(
        base={name: base[name] for name in DRAFT_CONTENT_FIELDS if name in base},
        local={name: local[name] for name in DRAFT_CONTENT_FIELDS},
        remote={name: theirs[name] for name in DRAFT_CONTENT_FIELDS},
        local_pending=True,  # no agreement known yet: this side's values are the ones to send
    )
    conflicts_record(item_id=item_id, integration_type=INTEGRATION_TYPE, conflicts=merged.conflicts, kept="local")
    send = {name for name in DRAFT_CONTENT_FIELDS if local[name] != theirs[name] and name not in merged.apply_local}
    update: dict[str, Any] = {}
    if "description" in send:
        update["description"] = local["description"]
    if "due_date" in send:
        update.update(stripe_invoice_terms(local))
    if update:
        client.v1.invoices.update(remote["id"], params=update, options=idempotency_options(event_id, "update", update))
    if "lines" in send:
        for item_id in stripe_line_item_ids(remote):
            client.v1.invoice_items.delete(item_id, options=idempotency_options(event_id, f"line-delete-{item_id}"))
        for index, line in enumerate(local["lines"]):
            params = {"customer": remote["customer"], "invoice": remote["id"], "currency": local["currency"],
                      **stripe_line_params(line)}
            client.v1.invoice_items.create(params=params, options=idempotency_options(event_id, f"line-{index}", params))
    return (_retrieve(client, remote["id"]) if send else remote), set(merged.apply_local)


def _advance_status(client: stripe.StripeClient, remote: dict[str, Any], wanted: str, event_id: str) -> dict[str, Any]:
    """Move Stripe's invoice forward to `wanted` (finalize first when it is a draft); a status
    Stripe has already moved past (paid, void) stays Stripe's."""
    invoices = client.v1.invoices
    current = remote.get("status")
    if wanted == InvoiceStatus.DRAFT or current == wanted or STATUS_RANK.get(current, 0) >= STATUS_RANK[wanted]:
        return remote
    invoice_id = remote["id"]
    if current == InvoiceStatus.DRAFT:
        remote = invoices.finalize_invoice(
            invoice_id, params={"auto_advance": False}, options=idempotency_options(event_id, "finalize")
        ).to_dict(recursive=True)
        if wanted == InvoiceStatus.OPEN:
            return remote
    if wanted == InvoiceStatus.PAID:
        # Paid outside Stripe (staff marked it paid): Stripe records it without charging.
        answer = invoices.pay(invoice_id, params={"paid_out_of_band": True}, options=idempotency_options(event_id, "pay"))
    elif wanted == InvoiceStatus.VOID:
        answer = invoices.void_invoice(invoice_id, options=idempotency_options(event_id, "void"))
    else:
        answer = invoices.mark_uncollectible(invoice_id, options=idempotency_options(event_id, "uncollectible"))
    return answer.to_dict(recursive=True)


def _take_stripe_state(
    invoice: Invoice, local: dict[str, Any], theirs: dict[str, Any], *, base: dict[str, Any], also: set[str]
) -> None:
    """What Stripe holds that the push did not change, taken here so both sides agree: its
    number; content changed only in Stripe (`also`); once it is no draft, its content (final
    there); and its status when Stripe moved past the local one (paid there while staff voided
    here: money moved in Stripe, so its word stands). A field the local side had changed too is
    recorded as a conflict, Stripe's kept."""
    taken = {"number"} | also | ({"status"} if theirs["status"] != local["status"] else set())
    if theirs["status"] != InvoiceStatus.DRAFT:
        taken |= FINAL_CONTENT_FIELDS
    fields = {name: theirs[name] for name in taken if theirs[name] != local[name]}
    if not fields:
        return
    conflicts = [name for name in fields if name in base and local[name] != base[name]]
    conflicts_record(
        item_id=invoice.pk,
        integration_type=INTEGRATION_TYPE,
        conflicts=[Conflict(name, local[name], theirs[name]) for name in conflicts],
        kept="remote",
    )
    if conflicts:
        logger.warning("invoice %s: Stripe's %s kept over the catalog's", invoice.pk, ", ".join(conflicts))
    with applying_remote_change(INTEGRATION_TYPE):
        invoice_record_remote(invoice=invoice, **catalog_fields(fields))


def _unlink(invoice: Invoice, external_id: str) -> SyncResult:
    """Gone from Stripe (deleted there, its webhook lost): like its `invoice.deleted`, the local
    invoice is kept and unlinked, and its tombstone keeps it from being pushed again."""
    with transaction.atomic():
        integration_remove(integration_type=INTEGRATION_TYPE, integration_id=external_id)
        _tombstone(DeletedBy.REMOTE, external_id, invoice.pk)
    return SyncResult(action="unlinked: deleted in Stripe", item_id=invoice.pk, external_id=external_id)


def _delete_remote(item_id: int, external_id: str, event_id: str) -> SyncResult:
    if not external_id:
        return SyncResult(action="skipped: never reached Stripe", item_id=item_id)
    try:
        stripe_client().v1.invoices.delete(external_id, options=idempotency_options(event_id, "delete"))
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "http_status", None) == 404:
            return SyncResult(action="already deleted", item_id=item_id, external_id=external_id)
        raise
    return SyncResult(action="deleted", item_id=item_id, external_id=external_id)


def _tombstone(deleted_by: str, external_id: str, item_id: int) -> None:
    stripe_tombstone(deleted_by=deleted_by, external_id=external_id, item_id=item_id, model=Invoice)
