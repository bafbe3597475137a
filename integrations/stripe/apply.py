"""Inward: apply Stripe's customer events to the catalog (the inward task's handler)."""

from __future__ import annotations

import logging
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

import stripe
from django.db import transaction
from django.db.models import Count, Max, Q

from catalog.models import CatalogIntegration, Customer, SyncStatus
from catalog.selectors import customers_with_email
from catalog.services import (
    customer_create,
    customer_email_taken,
    customer_update,
    integration_for_item,
    integration_get,
    integration_link,
    integration_record_agreed,
    integration_record_synced,
    integration_remove,
)
from sync.audit import SyncResult
from sync.merge import merge_three_way
from sync.models import InboxEvent, SyncConflict
from sync.outward import applying_remote_change, request_resync
from sync.tasks import PermanentTaskError
from sync.tombstones import DeletedBy, tombstone_find, tombstone_ignored, tombstone_record, tombstones_clear

from . import INTEGRATION_TYPE
from .client import stripe_client
from .fields import LOCAL_ID_KEY, PER_KEY_FIELDS, customer_values, inward_only_fields, inward_values

logger = logging.getLogger(__name__)

DELETED = "customer.deleted"


def stripe_event_apply(
    *, event_id: str, event_type: str, customer: dict[str, Any], created: int | None = None
) -> SyncResult:
    """Apply one Stripe customer event to the catalog, once (a repeat is reported "duplicate").

    Deliveries come late, early and twice: an event older than one already applied for the same
    customer is ignored (and logged); one that ties with it, or predates our own last push, is
    resolved by reading the customer from Stripe; news of a customer deleted on either side (a
    tombstone, or an earlier `customer.deleted`) is ignored, so nothing deleted comes back.
    Changes made here are not sent back to Stripe (`applying_remote_change`).
    """
    remote_id = customer["id"]
    occurred_at = datetime.fromtimestamp(created, tz=dt_timezone.utc) if created else None
    resync = False

    def result(action: str, item_id: int | None = None) -> SyncResult:
        return SyncResult(action=action, item_id=item_id, external_id=remote_id, external_event_id=event_id)

    with transaction.atomic():
        _, first_time = InboxEvent.objects.get_or_create(
            source=INTEGRATION_TYPE,
            event_id=event_id,
            defaults={"event_type": event_type, "object_id": remote_id, "occurred_at": occurred_at},
        )
        if not first_time:
            logger.info("stripe event %s already applied; skipped", event_id)
            return result("duplicate")
        tombstone = tombstone_find(
            integration_type=INTEGRATION_TYPE, external_id=remote_id, item_id=local_id_of(customer)
        )
        if tombstone is not None:
            reason = tombstone.get_deleted_by_display()
            logger.info("stripe event %s (%s) about %s ignored: %s", event_id, event_type, remote_id, reason)
            return result(tombstone_ignored(tombstone), tombstone.item_id)
        earlier = (
            InboxEvent.objects.filter(source=INTEGRATION_TYPE, object_id=remote_id)
            .exclude(event_id=event_id)
            .aggregate(latest=Max("occurred_at"), deletions=Count("pk", filter=Q(event_type=DELETED)))
        )
        latest = earlier["latest"]
        if event_type != DELETED and earlier["deletions"]:
            logger.info("stripe event %s about deleted customer %s ignored", event_id, remote_id)
            return result("ignored: deleted in Stripe")
        if occurred_at is not None and latest is not None and occurred_at < latest:
            logger.info("stripe event %s (%s) is older than one already applied; ignored", event_id, occurred_at)
            return result("ignored: stale")
        mapping = integration_get(integration_type=INTEGRATION_TYPE, integration_id=remote_id)
        with applying_remote_change(INTEGRATION_TYPE):
            state = None if customer.get("deleted") else customer
            if event_type != DELETED and _is_ambiguous(mapping, occurred_at, latest):
                state = _fetch_remote(remote_id)
            if event_type == DELETED or state is None:
                item_id = mapping.catalog_item_id if mapping else None
                integration_remove(integration_type=INTEGRATION_TYPE, integration_id=remote_id)
                tombstone_record(
                    integration_type=INTEGRATION_TYPE,
                    deleted_by=DeletedBy.REMOTE,
                    external_id=remote_id,
                    item_id=item_id,
                    catalog_type=Customer.catalog_type_name(),
                )
                outcome = result("unlinked: deleted in Stripe", item_id)
            else:
                local, resync = _apply_customer_state(state, event_id, mapping)
                outcome = result("applied", local.pk)
    if resync:
        # The local side won a conflict but has no push under way: send it.
        request_resync(item=local)
    return outcome


def local_id_of(remote: dict[str, Any]) -> int | None:
    """The local id the hub stored in the Stripe customer it created, if any."""
    value = str((remote.get("metadata") or {}).get(LOCAL_ID_KEY) or "")
    return int(value) if value.isdigit() and len(value) < 19 else None


def _is_ambiguous(mapping: CatalogIntegration | None, occurred_at: datetime | None, latest: datetime | None) -> bool:
    """Whether the event's payload may be older than what Stripe holds now (`mapping`: the
    customer's, if linked)."""
    if occurred_at is None or (latest is not None and occurred_at <= latest):
        return True
    # Stripe's timestamps are whole seconds: an event in the second of our last push may predate it.
    return bool(mapping and mapping.last_synced_at and occurred_at <= mapping.last_synced_at)


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
    remote: dict[str, Any], event_id: str, mapping: CatalogIntegration | None
) -> tuple[Customer, bool]:
    """Bring the local customer to the Stripe state `remote` (`mapping`: the one linked to it, if
    any); return it, and whether it needs a push."""
    if mapping is not None:
        return _merge_remote(mapping, inward_values(remote), event_id)
    remote_id = remote["id"]
    incoming = inward_values(remote)
    local = _unlinked_local_customer(remote, incoming.get("email"))
    if local is not None:
        mapping = integration_for_item(item_id=local.pk, integration_type=INTEGRATION_TYPE)
        if mapping is not None:
            # Our own create coming back before the worker recorded it.
            integration_link(item_id=local.pk, integration_type=INTEGRATION_TYPE, integration_id=remote_id)
            return _merge_remote(mapping, incoming, event_id)
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
    return local, False


def _merge_remote(mapping: CatalogIntegration, incoming: dict[str, Any], event_id: str) -> tuple[Customer, bool]:
    """Three-way merge per field (`sync.merge`) against the values both sides last agreed on;
    conflicts keep the local value and are recorded. Returns the customer and whether the local
    side needs a push (it won a conflict and none is under way)."""
    local = Customer.objects.non_polymorphic().get(pk=mapping.catalog_item_id)
    pending = mapping.status == SyncStatus.PENDING
    merged = merge_three_way(
        base=mapping.synced_fields,
        local=customer_values(local),
        remote=incoming,
        local_pending=pending,
        per_key=PER_KEY_FIELDS,
        remote_wins=inward_only_fields(),
    )
    if merged.apply_local:
        _update_local(local, merged.apply_local, mapping.integration_id or "")
    integration_record_agreed(mapping=mapping, agreed_fields=merged.agreed)
    if not merged.conflicts:
        return local, False
    SyncConflict.objects.bulk_create(
        SyncConflict(
            catalog_item=local,
            integration_type=INTEGRATION_TYPE,
            field=conflict.field,
            local_value=conflict.local_value,
            remote_value=conflict.remote_value,
            kept="local",
            remote_event_id=event_id,
        )
        for conflict in merged.conflicts
    )
    fields = ", ".join(conflict.field for conflict in merged.conflicts)
    logger.warning("conflict on %s %s: kept local %s", INTEGRATION_TYPE, mapping.integration_id, fields)
    return local, not pending


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
