"""Inward: apply Stripe's customer events to the catalog (the inward task's handler)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

import stripe
from django.db import DatabaseError, transaction

from catalog.models import CatalogIntegration, Customer, SyncStatus
from catalog.selectors import customers_with_email
from catalog.services import (
    customer_create,
    customer_email_taken,
    customer_update,
    customers_update,
    integration_for_item,
    integration_link,
    integration_record_agreed,
    integration_record_synced,
    integration_remove,
    integrations_record_agreed,
    integrations_by_external_id,
)
from sync.audit import SyncResult
from sync.inbox import Inbox, IncomingEvent
from sync.merge import MergeOutcome, merge_three_way
from sync.models import SyncConflict
from sync.outward import applying_remote_change, request_resync
from sync.tasks import PermanentTaskError
from sync.tombstones import DeletedBy, tombstone_record, tombstones_clear

from . import INTEGRATION_TYPE
from .client import stripe_client
from .fields import LOCAL_ID_KEY, PER_KEY_FIELDS, customer_values, inward_only_fields, inward_values

logger = logging.getLogger(__name__)

DELETED = "customer.deleted"


def stripe_event_apply(
    *, event_id: str, event_type: str, customer: dict[str, Any], created: int | None = None
) -> SyncResult:
    """Apply one Stripe customer event (`stripe_events_apply` for a batch of one)."""
    [outcome] = stripe_events_apply(
        [{"event_id": event_id, "event_type": event_type, "customer": customer, "created": created}]
    )
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def stripe_events_apply(events: list[dict[str, Any]]) -> list[SyncResult | Exception]:
    """Apply Stripe customer events (of distinct customers; each the inward task's arguments) to
    the catalog, each once; return, in order, each one's result or the exception it failed with.

    Deliveries come late, early and twice (`sync.inbox`): a repeat is reported "duplicate", an
    event older than one already applied for the customer is ignored, one that may be older
    than Stripe's state is resolved by reading the customer from Stripe, and news of a customer
    deleted on either side is ignored, so nothing deleted comes back. Changes made here are not
    sent back to Stripe (`applying_remote_change`).

    One transaction for the batch. The inbox, tombstones, mappings and customers are read in a
    few statements for the whole batch. The common event, a linked customer's change that merges
    without conflict and keeps its email, is written with the others like it in a few
    statements (`_apply_merged`); every other event in a savepoint of its own, so a failing
    event leaves nothing behind (not even its inbox row, so its retry applies it) and the
    others commit together.
    """
    incoming = [_incoming(event) for event in events]
    outcomes: list[SyncResult | Exception | None] = [None] * len(events)
    resyncs: list[Customer] = []
    with transaction.atomic():
        inbox = Inbox(source=INTEGRATION_TYPE, events=incoming)
        mappings = integrations_by_external_id(
            integration_type=INTEGRATION_TYPE, integration_ids=[event.object_id for event in incoming]
        )
        customers = Customer.objects.non_polymorphic().in_bulk([m.catalog_item_id for m in mappings.values()])
        merged: list[_Merged] = []
        one_by_one: list[int] = []
        for index, (event, raw) in enumerate(zip(incoming, events)):
            skipped = _skipped(event, inbox)
            if skipped is not None:
                outcomes[index] = skipped
                continue
            plain = _plain_merge(index, event, raw["customer"], inbox, mappings.get(event.object_id), customers)
            if plain is not None:
                merged.append(plain)
            else:
                one_by_one.append(index)
        if not _apply_merged(merged, inbox, outcomes):
            # A row the database refused fails the statement of them all: find it, one by one.
            one_by_one = sorted(one_by_one + [plain.index for plain in merged])
            mappings, customers = _reread(mappings, customers)
        for index in one_by_one:
            event, raw = incoming[index], events[index]
            try:
                with transaction.atomic():
                    outcome, resync = _apply_one(
                        event, raw["customer"], inbox, mappings.get(event.object_id), customers
                    )
            except Exception as exc:  # noqa: BLE001 - reported per event; the others go on
                outcomes[index] = exc
                continue
            inbox.mark_handled(event)
            if resync is not None:
                resyncs.append(resync)
            outcomes[index] = outcome
        inbox.record()
    for local in resyncs:
        # The local side won a conflict but has no push under way: send it.
        request_resync(item=local)
    return [outcome for outcome in outcomes if outcome is not None]


@dataclass(frozen=True)
class _Merged:
    """An event whose change merged into its linked customer without conflict."""

    index: int
    event: IncomingEvent
    local: Customer
    mapping: CatalogIntegration
    outcome: MergeOutcome


def _skipped(event: IncomingEvent, inbox: Inbox) -> SyncResult | None:
    """The result of an event not to apply (a repeat, stale, about something deleted), marked
    handled unless a repeat; None for an event to apply. Writes nothing."""
    reason = inbox.skip_reason(event)
    if reason is None:
        return None
    logger.info("stripe event %s (%s) about %s: %s", event.event_id, event.event_type, event.object_id, reason)
    if reason != "duplicate":
        inbox.mark_handled(event)
    tombstone = inbox.tombstone_of(event)
    return SyncResult(
        action=reason,
        item_id=tombstone.item_id if tombstone else None,
        external_id=event.object_id,
        external_event_id=event.event_id,
    )


def _plain_merge(
    index: int,
    event: IncomingEvent,
    customer: dict[str, Any],
    inbox: Inbox,
    mapping: CatalogIntegration | None,
    customers: dict[int, Customer],
) -> _Merged | None:
    """The event's merge when it is the plain case (a linked customer, unambiguous,
    no conflict, the email kept); None for any other event, which goes one by one."""
    if event.deletes or customer.get("deleted") or mapping is None or mapping.catalog_item_id not in customers:
        return None
    if inbox.is_ambiguous(event, last_pushed_at=mapping.last_synced_at):
        return None
    local = customers[mapping.catalog_item_id]
    outcome = _merge(local, mapping, inward_values(customer))
    if outcome.conflicts or "email" in outcome.apply_local:
        return None
    return _Merged(index=index, event=event, local=local, mapping=mapping, outcome=outcome)


def _apply_merged(merged: list[_Merged], inbox: Inbox, outcomes: list[SyncResult | Exception | None]) -> bool:
    """Write the plain merges together; False (nothing written) when the database refused."""
    if not merged:
        return True
    try:
        with transaction.atomic(), applying_remote_change(INTEGRATION_TYPE):
            customers_update(changes=[(plain.local, plain.outcome.apply_local) for plain in merged])
            integrations_record_agreed(agreements=[(plain.mapping, plain.outcome.agreed) for plain in merged])
    except (DatabaseError, ValueError):
        logger.warning("batch of %d Stripe events refused; applying them one by one", len(merged), exc_info=True)
        return False
    for plain in merged:
        inbox.mark_handled(plain.event)
        outcomes[plain.index] = SyncResult(
            action="applied",
            item_id=plain.local.pk,
            external_id=plain.event.object_id,
            external_event_id=plain.event.event_id,
        )
    return True


def _reread(
    mappings: dict[str, CatalogIntegration], customers: dict[int, Customer]
) -> tuple[dict[str, CatalogIntegration], dict[int, Customer]]:
    """The mappings and customers as stored (a refused batch left the objects changed)."""
    fresh = integrations_by_external_id(integration_type=INTEGRATION_TYPE, integration_ids=list(mappings))
    return fresh, Customer.objects.non_polymorphic().in_bulk(list(customers))


def _incoming(event: dict[str, Any]) -> IncomingEvent:
    created = event.get("created")
    return IncomingEvent(
        event_id=event["event_id"],
        event_type=event["event_type"],
        object_id=event["customer"]["id"],
        occurred_at=datetime.fromtimestamp(created, tz=dt_timezone.utc) if created else None,
        deletes=event["event_type"] == DELETED,
        local_id=local_id_of(event["customer"]),
    )


def _apply_one(
    event: IncomingEvent,
    customer: dict[str, Any],
    inbox: Inbox,
    mapping: CatalogIntegration | None,
    customers: dict[int, Customer],
) -> tuple[SyncResult, Customer | None]:
    """One event's result, and the local customer to push afterwards (it won a conflict)."""

    def result(action: str, item_id: int | None = None) -> SyncResult:
        return SyncResult(action=action, item_id=item_id, external_id=event.object_id, external_event_id=event.event_id)

    with applying_remote_change(INTEGRATION_TYPE):
        state = None if customer.get("deleted") else customer
        if not event.deletes and inbox.is_ambiguous(event, last_pushed_at=mapping.last_synced_at if mapping else None):
            state = _fetch_remote(event.object_id)
        if event.deletes or state is None:
            item_id = mapping.catalog_item_id if mapping else None
            integration_remove(integration_type=INTEGRATION_TYPE, integration_id=event.object_id)
            tombstone_record(
                integration_type=INTEGRATION_TYPE,
                deleted_by=DeletedBy.REMOTE,
                external_id=event.object_id,
                item_id=item_id,
                catalog_type=Customer.catalog_type_name(),
            )
            return result("unlinked: deleted in Stripe", item_id), None
        local, resync = _apply_customer_state(state, event.event_id, mapping, customers)
        return result("applied", local.pk), local if resync else None


def local_id_of(remote: dict[str, Any]) -> int | None:
    """The local id the hub stored in the Stripe customer it created, if any."""
    value = str((remote.get("metadata") or {}).get(LOCAL_ID_KEY) or "")
    return int(value) if value.isdigit() and len(value) < 19 else None


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
) -> tuple[Customer, bool]:
    """Bring the local customer to the Stripe state `remote` (`mapping`: the one linked to it, if
    any; `customers`: linked customers already read); return it, and whether it needs a push."""
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
    return local, False


def _merge_remote(
    local: Customer, mapping: CatalogIntegration, incoming: dict[str, Any], event_id: str
) -> tuple[Customer, bool]:
    """Three-way merge per field (`sync.merge`) against the values both sides last agreed on;
    conflicts keep the local value and are recorded. Returns the customer and whether the local
    side needs a push (it won a conflict and none is under way)."""
    pending = mapping.status == SyncStatus.PENDING
    merged = _merge(local, mapping, incoming)
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


def _merge(local: Customer, mapping: CatalogIntegration, incoming: dict[str, Any]) -> MergeOutcome:
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
