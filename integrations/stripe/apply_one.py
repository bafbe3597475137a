"""Inward, one event at a time: what the batch leaves to a savepoint of its own (creates,
deletes, conflicts, links by email, events read back from Stripe), and the merge both use."""

from __future__ import annotations

import logging
from typing import Any

import stripe

from catalog.models import CatalogIntegration, Customer, SyncStatus
from catalog.selectors import customers_with_email
from catalog.services import (
    customer_create,
    customer_email_taken,
    customer_update,
    integration_for_item,
    integration_link,
    integration_record_agreed,
    integration_record_synced,
    integration_remove,
)
from sync.audit import SyncResult, event_result
from sync.inbox import Inbox, IncomingEvent
from sync.merge import MergeOutcome, merge_three_way
from sync.conflicts import conflicts_record
from sync.outward import applying_remote_change
from sync.tasks import PermanentTaskError
from sync.tombstones import DeletedBy, tombstones_clear

from . import INTEGRATION_TYPE
from .client import stripe_client
from .fields import PER_KEY_FIELDS, customer_values, inward_only_fields, inward_values, local_id_of
from .records import stripe_tombstone

logger = logging.getLogger(__name__)


def event_apply_alone(
    event: IncomingEvent,
    customer: dict[str, Any],
    inbox: Inbox,
    mapping: CatalogIntegration | None,
    customers: dict[int, Customer],
) -> tuple[SyncResult, Customer | None]:
    """One event (not a skip: the batch reported those) applied on its own, in the caller's
    savepoint: its result, and the local customer to push afterwards (it won a conflict)."""

    with applying_remote_change(INTEGRATION_TYPE):
        state = None if customer.get("deleted") else customer
        if not event.deletes and inbox.is_ambiguous(event, last_pushed_at=mapping.last_synced_at if mapping else None):
            state = _fetch_remote(event.object_id)
        if event.deletes or state is None:
            item_id = mapping.catalog_item_id if mapping else None
            integration_remove(integration_type=INTEGRATION_TYPE, integration_id=event.object_id)
            stripe_tombstone(deleted_by=DeletedBy.REMOTE, external_id=event.object_id, item_id=item_id, model=Customer)
            return event_result(event=event, action="unlinked: deleted in Stripe", item_id=item_id), None
        local, resync, fields = _apply_customer_state(state, event.event_id, mapping, customers)
        return event_result(event=event, action="applied", item_id=local.pk, fields=fields), local if resync else None


def _fetch_remote(remote_id: str) -> dict[str, Any] | None:
    """Stripe's customer now; None when deleted (Stripe answers `deleted: true`, emulators 404)."""
    try:
        remote = stripe_client().v1.customers.retrieve(remote_id).to_dict(recursive=True)
    except stripe.InvalidRequestError as exc:
        if getattr(exc, "http_status", None) == 404:
            return None
        raise
    return None if remote.get("deleted") else remote


def _apply_customer_state(
    remote: dict[str, Any], event_id: str, mapping: CatalogIntegration | None, customers: dict[int, Customer]
) -> tuple[Customer, bool, tuple[str, ...]]:
    """Bring the local customer to the Stripe state `remote` (`mapping`: the one linked to it, if
    any; `customers`: linked customers already read); return it, whether it needs a push, and
    the fields written."""
    if mapping is not None:
        local = customers.get(mapping.catalog_item_id) or Customer.objects.non_polymorphic().get(
            pk=mapping.catalog_item_id
        )
        return _merge_remote(local, mapping, inward_values(remote), event_id)
    remote_id = remote["id"]
    incoming = inward_values(remote)
    local = _unlinked_local_customer(remote, incoming.get("email"))
    if local is not None:
        mapping = integration_for_item(item_id=local.pk, integration_type=INTEGRATION_TYPE)
        if mapping is not None:
            # Our own create coming back before the worker recorded it.
            integration_link(item_id=local.pk, integration_type=INTEGRATION_TYPE, integration_id=remote_id)
            return _merge_remote(local, mapping, incoming, event_id)
        _update_local(local, incoming, remote_id)  # linked by email: Stripe's record wins
        # Linked anew: an old delete of its previous Stripe customer must not hold up its pushes.
        tombstones_clear(integration_type=INTEGRATION_TYPE, item_id=local.pk)
    else:
        if customer_email_taken(email=incoming.get("email")):
            raise PermanentTaskError(
                f"Stripe customer {remote_id} has email {incoming['email']!r}, which a local customer "
                "already linked to another Stripe customer has"
            )
        local = customer_create(**incoming)
    integration_record_synced(
        item_id=local.pk, integration_type=INTEGRATION_TYPE, integration_id=remote_id, agreed_fields=incoming
    )
    return local, False, tuple(incoming)


def _merge_remote(
    local: Customer, mapping: CatalogIntegration, incoming: dict[str, Any], event_id: str
) -> tuple[Customer, bool, tuple[str, ...]]:
    """Three-way merge per field (`sync.merge`) against the values both sides last agreed on;
    conflicts keep the local value and are recorded. Returns the customer and whether the local
    side needs a push (it won a conflict and none is under way), and the fields written."""
    pending = mapping.status == SyncStatus.PENDING
    merged = customer_merge(local, mapping, incoming)
    if merged.apply_local:
        _update_local(local, merged.apply_local, mapping.integration_id or "")
    integration_record_agreed(mapping=mapping, agreed_fields=merged.agreed)
    if not merged.conflicts:
        return local, False, tuple(merged.apply_local)
    conflicts_record(
        item_id=local.pk, integration_type=INTEGRATION_TYPE, conflicts=merged.conflicts, kept="local",
        remote_event_id=event_id,
    )
    fields = ", ".join(conflict.field for conflict in merged.conflicts)
    logger.warning("conflict on %s %s: kept local %s", INTEGRATION_TYPE, mapping.integration_id, fields)
    return local, not pending, tuple(merged.apply_local)


def customer_merge(local: Customer, mapping: CatalogIntegration, incoming: dict[str, Any]) -> MergeOutcome:
    """The three-way merge of Stripe's values `incoming` into the linked customer `local`."""
    return merge_three_way(
        base=mapping.synced_fields,
        local=customer_values(local),
        remote=incoming,
        local_pending=mapping.status == SyncStatus.PENDING,
        per_key=PER_KEY_FIELDS,
        remote_wins=inward_only_fields(),
    )


def _update_local(local: Customer, fields: dict[str, Any], remote_id: str) -> None:
    if fields.get("email") and customer_email_taken(email=fields["email"], exclude_id=local.pk):
        raise PermanentTaskError(
            f"Stripe customer {remote_id} changed its email to {fields['email']!r}, which another local customer has"
        )
    customer_update(customer=local, **fields)


def _unlinked_local_customer(remote: dict[str, Any], email: str | None) -> Customer | None:
    """The local customer this Stripe customer stands for but is not linked to yet: the one we
    created it from (its `metadata.local_id`), else the one with the same email."""
    linked = CatalogIntegration.objects.filter(integration_type=INTEGRATION_TYPE, integration_id__isnull=False).values(
        "catalog_item_id"
    )
    candidates = Customer.objects.exclude(pk__in=linked)
    local_id = local_id_of(remote)
    if local_id is not None:
        local = candidates.filter(pk=local_id).first()
        if local is not None:
            return local
    if email:
        return customers_with_email(email, queryset=candidates).first()
    return None
