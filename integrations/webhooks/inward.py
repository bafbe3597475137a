"""Inward: apply a customer change an endpoint's system sent (the inward task's handler), with
the guarantees Stripe's changes have: each message once (the inbox), nothing older than what was
applied, nothing deleted comes back (tombstones), and a per-field three-way merge against what
the hub and that system last agreed on. The change then flows on to Stripe and to the other
endpoints, never back to its own (`applying_remote_change`, and its mapping's agreed values).

An upsert links to the customer the system's id is mapped to, else to the customer with its
email, else creates one. A delete deletes the local customer (that system is the source of the
news), refused with the reason when it has invoices.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction

from catalog.models import CatalogIntegration, Customer, SyncStatus
from catalog.selectors import customers_with_email
from catalog.services import (
    CustomerHasInvoices,
    customer_create,
    customer_delete,
    customer_email_taken,
    customer_update,
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
from sync.tasks import PermanentTaskError
from sync.tombstones import DeletedBy, tombstone_record

from . import endpoint_integration_type
from .payloads import customer_values

logger = logging.getLogger(__name__)

PER_KEY_FIELDS = frozenset({"metadata", "address"})


def inbound_customer_apply(
    *, endpoint_id: int, message_id: str, event_type: str, occurred_at: str, customer: dict[str, Any]
) -> SyncResult:
    integration_type = endpoint_integration_type(endpoint_id)
    event = IncomingEvent(
        event_id=message_id,
        event_type=event_type,
        object_id=customer["id"],
        occurred_at=datetime.fromisoformat(occurred_at),
        deletes=event_type == "customer.deleted",
    )

    with transaction.atomic():
        inbox = Inbox(source=integration_type, events=[event])
        reason = inbox.skip_reason(event)
        if reason is not None:
            if reason != "duplicate":
                inbox.mark_handled(event)
                inbox.record()
            return event_result(event=event, action=reason)
        mapping = integrations_by_external_id(integration_type=integration_type, integration_ids=[event.object_id]).get(
            event.object_id
        )
        with applying_remote_change(integration_type):
            if event.deletes:
                action, item_id = _delete(integration_type, event.object_id, mapping)
                outcome = event_result(event=event, action=action, item_id=item_id)
                resync = None
            else:
                incoming = {key: value for key, value in customer.items() if key != "id"}
                local, resync, fields = _upsert(integration_type, event.object_id, incoming, mapping, message_id)
                outcome = event_result(event=event, action="applied", item_id=local.pk, fields=fields)
        inbox.mark_handled(event)
        inbox.record()
    if resync is not None:
        request_resync(item=resync)  # the local side won a conflict: every system gets its value
    return outcome


def _delete(integration_type: str, external_id: str, mapping: CatalogIntegration | None) -> tuple[str, int | None]:
    item_id = mapping.catalog_item_id if mapping is not None else None
    # First: later news of this id is ignored, and the deletion is not told back to this system.
    tombstone_record(
        integration_type=integration_type, deleted_by=DeletedBy.REMOTE, external_id=external_id, item_id=item_id,
        catalog_type=Customer.catalog_type_name(),
    )
    if mapping is None:
        return "ignored: never linked", None
    integration_remove(integration_type=integration_type, integration_id=external_id)
    customer = Customer.objects.non_polymorphic().filter(pk=item_id).first()
    if customer is None:
        return "already deleted", item_id
    try:
        customer_delete(customer=customer)
    except CustomerHasInvoices as exc:
        raise PermanentTaskError(f"customer {item_id} not deleted: {exc}") from exc
    return "deleted", item_id


def _upsert(
    integration_type: str, external_id: str, incoming: dict[str, Any], mapping: CatalogIntegration | None, message_id: str
) -> tuple[Customer, Customer | None, tuple[str, ...]]:
    """The customer the event is about, brought to the sender's values; the customer to push
    afterwards (it won a conflict), if any; and the fields written here."""
    if mapping is not None:
        local = Customer.objects.non_polymorphic().get(pk=mapping.catalog_item_id)
        current = customer_values(local)
        # A dict field sent in part sets the keys sent and keeps the others.
        incoming = {
            name: {**(current[name] or {}), **value} if name in PER_KEY_FIELDS and isinstance(value, dict) else value
            for name, value in incoming.items()
        }
        merged = merge_three_way(
            base=mapping.synced_fields,
            local=current,
            remote=incoming,
            local_pending=mapping.status == SyncStatus.PENDING,
            per_key=PER_KEY_FIELDS,
        )
        if merged.apply_local:
            _update(local, merged.apply_local, external_id)
        integration_record_agreed(mapping=mapping, agreed_fields=merged.agreed)
        if not merged.conflicts:
            return local, None, tuple(merged.apply_local)
        conflicts_record(
            item_id=local.pk, integration_type=integration_type, conflicts=merged.conflicts, kept="local",
            remote_event_id=message_id,
        )
        return local, local, tuple(merged.apply_local)
    local = customers_with_email(incoming["email"]).first() if incoming.get("email") else None
    if local is not None:
        _update(local, incoming, external_id)  # linked by email: the sending system's values win
    else:
        local = customer_create(**incoming)
    integration_record_synced(
        item_id=local.pk, integration_type=integration_type, integration_id=external_id,
        agreed_fields=customer_values(local),
    )
    return local, None, tuple(incoming)


def _update(local: Customer, fields: dict[str, Any], external_id: str) -> None:
    if fields.get("email") and customer_email_taken(email=fields["email"], exclude_id=local.pk):
        raise PermanentTaskError(f"customer {external_id} has email {fields['email']!r}, which another local customer has")
    customer_update(customer=local, **fields)
