"""Inward: apply Stripe's customer events to the catalog (the inward task's handler), a poll's
events at once; the events that are not plain changes go one by one (`apply_one`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, transaction

from catalog.models import CatalogIntegration, Customer
from catalog.services import customers_update, integrations_by_external_id, integrations_record_agreed
from sync.audit import SyncResult, event_result
from sync.inbox import Inbox, IncomingEvent
from sync.merge import MergeOutcome
from sync.outward import applying_remote_change, request_resync

from . import INTEGRATION_TYPE
from .apply_one import customer_merge, event_apply_alone
from .fields import inward_values
from .records import stripe_incoming

logger = logging.getLogger(__name__)

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
    incoming = [stripe_incoming(event, kind="customer") for event in events]
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
            skipped = event_skip_result(event, inbox)
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
                    outcome, resync = event_apply_alone(
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


def event_skip_result(event: IncomingEvent, inbox: Inbox) -> SyncResult | None:
    """The result of an event not to apply (a repeat, stale, about something deleted), marked
    handled unless a repeat; None for an event to apply. Writes nothing."""
    reason = inbox.skip_reason(event)
    if reason is None:
        return None
    logger.info("stripe event %s (%s) about %s: %s", event.event_id, event.event_type, event.object_id, reason)
    if reason != "duplicate":
        inbox.mark_handled(event)
    tombstone = inbox.tombstone_of(event)
    return event_result(event=event, action=reason, item_id=tombstone.item_id if tombstone else None)


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
    outcome = customer_merge(local, mapping, inward_values(customer))
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
        outcomes[plain.index] = event_result(
            event=plain.event, action="applied", item_id=plain.local.pk, fields=plain.outcome.apply_local
        )
    return True


def _reread(
    mappings: dict[str, CatalogIntegration], customers: dict[int, Customer]
) -> tuple[dict[str, CatalogIntegration], dict[int, Customer]]:
    """The mappings and customers as stored (a refused batch left the objects changed)."""
    fresh = integrations_by_external_id(integration_type=INTEGRATION_TYPE, integration_ids=list(mappings))
    return fresh, Customer.objects.non_polymorphic().in_bulk(list(customers))
