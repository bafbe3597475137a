"""Customer sync with Stripe, both ways. Called by the tasks in `tasks.py` and by the webhook."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from datetime import datetime
from datetime import timezone as dt_timezone

import stripe
from django.db import IntegrityError, transaction
from django.db.models import Max

from catalog.models import CatalogIntegration, Customer, SyncStatus
from catalog.selectors import customers_with_email
from catalog.services import (
    customer_create,
    customer_email_taken,
    customer_update,
    integration_begin_create,
    integration_for_item,
    integration_get,
    integration_link,
    integration_record_agreed,
    integration_record_error,
    integration_record_synced,
    integration_remove,
    normalize_email,
)
from sync.audit import SyncResult
from sync.models import InboxEvent, SyncConflict
from sync.outward import ACTION_DELETE, applying_remote_change, request_resync
from sync.tasks import PermanentTaskError

from . import INTEGRATION_TYPE
from .client import stripe_client

logger = logging.getLogger(__name__)

CUSTOMER_EVENT_TYPES = frozenset({"customer.created", "customer.updated", "customer.deleted"})
# Worth another try: Stripe or the network failed, or Stripe asked us to slow down.
RETRYABLE_ERRORS = (stripe.RateLimitError, stripe.APIConnectionError, stripe.APIError)


def _is_missing(exc: stripe.StripeError) -> bool:
    return getattr(exc, "http_status", None) == 404


# --- Outward: local -> Stripe ---------------------------------------------------------------


def customer_push(
    *, item_id: int, action: str, event_id: str, external_id: str | None = None, full: bool = False
) -> SyncResult:
    """Make Stripe match the local customer `item_id` as it is now (or delete it remotely).

    Reads the current local state rather than the event's, so a late or repeated event can only
    re-send the newest state. Sends only the fields changed since both sides last agreed, unless
    `full` (a staff resync) asks for every field.
    """
    try:
        if action == ACTION_DELETE:
            deleted = _delete_remote(external_id, event_id)
            return SyncResult(action="deleted" if deleted else "already deleted", item_id=item_id,
                              external_id=external_id or "")
        return _upsert_remote(item_id, event_id, full=full)
    except RETRYABLE_ERRORS as exc:
        integration_record_error(item_id=item_id, integration_type=INTEGRATION_TYPE, error=str(exc), final=False)
        raise
    except stripe.StripeError as exc:
        # A client error (bad data, bad key): retrying the same request cannot succeed, and a
        # rejected create created nothing.
        integration_record_error(
            item_id=item_id, integration_type=INTEGRATION_TYPE, error=str(exc), final=True, create_rejected=True
        )
        raise PermanentTaskError(str(exc)) from exc


def customer_push_failed(*, item_id: int, error: str) -> None:
    integration_record_error(item_id=item_id, integration_type=INTEGRATION_TYPE, error=error, final=True)


def local_fields(customer: Customer) -> dict[str, Any]:
    return {"name": customer.name or "", "email": customer.email}


def remote_fields(remote: dict[str, Any]) -> dict[str, Any]:
    return {"name": remote.get("name") or "", "email": normalize_email(remote.get("email"))}


def _stripe_params(fields: dict[str, Any]) -> dict[str, Any]:
    # Stripe clears a field given an empty string.
    return {name: "" if value is None else value for name, value in fields.items()}


def _idempotency(event_id: str, action: str, params: dict[str, Any] | None = None) -> dict[str, str]:
    """Derived from our event (a redelivered message repeats the call safely) and, for updates,
    from what is sent: Stripe refuses a key reused with other parameters."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12] if params else ""
    return {"idempotency_key": f"synchub-{event_id}-{action}{'-' + digest if digest else ''}"}


def _delete_remote(external_id: str | None, event_id: str) -> bool:
    if not external_id:
        return False
    try:
        stripe_client().v1.customers.delete(external_id, options=_idempotency(event_id, "delete"))
    except stripe.InvalidRequestError as exc:
        if not _is_missing(exc):
            raise
        logger.info("stripe customer %s was already deleted", external_id)
        return False
    return True


def _upsert_remote(item_id: int, event_id: str, *, full: bool) -> SyncResult:
    customer = Customer.objects.filter(pk=item_id).first()
    if customer is None:
        return SyncResult(action="skipped: deleted locally", item_id=item_id)  # its delete event removes it
    mapping = integration_for_item(item_id=item_id, integration_type=INTEGRATION_TYPE)
    if mapping is not None and mapping.integration_id:
        return _update_remote(customer, mapping, event_id, full=full)
    return _create_remote(customer, event_id)


def _update_remote(customer: Customer, mapping: CatalogIntegration, event_id: str, *, full: bool) -> SyncResult:
    current = local_fields(customer)
    agreed = mapping.synced_fields
    changed = current if full or not agreed else {f: v for f, v in current.items() if f not in agreed or agreed[f] != v}
    if changed:
        params = _stripe_params(changed)
        try:
            stripe_client().v1.customers.update(
                mapping.integration_id, params=params, options=_idempotency(event_id, "update", params)
            )
        except stripe.InvalidRequestError as exc:
            if not _is_missing(exc):
                raise
            # Deleted in Stripe: like a `customer.deleted` webhook, unlink and keep the local row.
            integration_remove(integration_type=INTEGRATION_TYPE, integration_id=mapping.integration_id)
            return SyncResult(action="unlinked: deleted in Stripe", item_id=customer.pk,
                              external_id=mapping.integration_id)
    integration_record_synced(
        item_id=customer.pk,
        integration_type=INTEGRATION_TYPE,
        integration_id=mapping.integration_id,
        agreed_fields=changed,
    )
    return SyncResult(action="updated" if changed else "unchanged", item_id=customer.pk,
                      external_id=mapping.integration_id)


def _create_remote(customer: Customer, event_id: str) -> SyncResult:
    client = stripe_client()
    current = local_fields(customer)
    key, resumed = integration_begin_create(
        item_id=customer.pk, integration_type=INTEGRATION_TYPE, key=_idempotency(event_id, "create")["idempotency_key"]
    )
    remote = _created_before(client, customer) if resumed else None
    if remote is None:
        try:
            remote = client.v1.customers.create(
                params={**_stripe_params(current), "metadata": {"local_id": str(customer.pk)}},
                options={"idempotency_key": key},
            )
        except stripe.IdempotencyError as exc:
            # The key's first use carried other values: that create went through; find it.
            remote = _created_before(client, customer)
            if remote is None:
                raise stripe.APIError(f"create under key {key} not found after {exc}") from exc
    created = remote_fields(remote.to_dict(recursive=True))
    if created != current:
        # An earlier attempt created it with older values.
        params = _stripe_params({f: v for f, v in current.items() if created[f] != v})
        client.v1.customers.update(remote.id, params=params, options=_idempotency(event_id, "update", params))
    try:
        with transaction.atomic():
            integration_record_synced(
                item_id=customer.pk, integration_type=INTEGRATION_TYPE, integration_id=remote.id, agreed_fields=current
            )
    except IntegrityError:
        if Customer.objects.filter(pk=customer.pk).exists():
            raise
        # Deleted locally while we were creating it: do not leave an orphan in Stripe.
        _delete_remote(remote.id, event_id)
        return SyncResult(action="created, then deleted: deleted locally meanwhile", item_id=customer.pk,
                          external_id=remote.id)
    return SyncResult(action="created", item_id=customer.pk, external_id=remote.id)


def _created_before(client: stripe.StripeClient, customer: Customer) -> stripe.Customer | None:
    """The Stripe customer an interrupted earlier create made for `customer`, if any.

    Real Stripe answers a repeated idempotency key with the first result anyway; this lookup
    covers emulators without idempotency keys. Stripe lists by email only, so a customer
    without one relies on the idempotency key alone.
    """
    if not customer.email:
        return None
    for remote in client.v1.customers.list(params={"email": customer.email, "limit": 100}).auto_paging_iter():
        if (remote.to_dict(recursive=True).get("metadata") or {}).get("local_id") == str(customer.pk):
            return remote
    return None


# --- Inward: Stripe -> local ----------------------------------------------------------------


def stripe_event_apply(
    *, event_id: str, event_type: str, customer: dict[str, Any], created: int | None = None
) -> SyncResult:
    """Apply one Stripe customer event to the catalog, once (a repeat is reported "duplicate").

    Deliveries come late, early and twice: an event older than one already applied for the same
    customer is ignored (and logged); one that ties with it, or predates our own last push, is
    resolved by reading the customer from Stripe; after a `customer.deleted` nothing revives it.
    Changes made here are not sent back to Stripe (`applying_remote_change`).
    """
    remote_id = customer["id"]
    occurred_at = datetime.fromtimestamp(created, tz=dt_timezone.utc) if created else None
    resync = False
    with transaction.atomic():
        _, first_time = InboxEvent.objects.get_or_create(
            source=INTEGRATION_TYPE,
            event_id=event_id,
            defaults={"event_type": event_type, "object_id": remote_id, "occurred_at": occurred_at},
        )
        def result(action: str, item_id: int | None = None) -> SyncResult:
            return SyncResult(action=action, item_id=item_id, external_id=remote_id, external_event_id=event_id)

        if not first_time:
            logger.info("stripe event %s already applied; skipped", event_id)
            return result("duplicate")
        earlier = InboxEvent.objects.filter(source=INTEGRATION_TYPE, object_id=remote_id).exclude(event_id=event_id)
        if event_type != "customer.deleted" and earlier.filter(event_type="customer.deleted").exists():
            logger.info("stripe event %s about deleted customer %s ignored", event_id, remote_id)
            return result("ignored: deleted in Stripe")
        latest = earlier.aggregate(latest=Max("occurred_at"))["latest"]
        if occurred_at is not None and latest is not None and occurred_at < latest:
            logger.info("stripe event %s (%s) is older than one already applied; ignored", event_id, occurred_at)
            return result("ignored: stale")
        mapping = integration_get(integration_type=INTEGRATION_TYPE, integration_id=remote_id)
        with applying_remote_change(INTEGRATION_TYPE):
            state = customer
            if event_type != "customer.deleted" and _is_ambiguous(remote_id, occurred_at, latest):
                state = _fetch_remote(remote_id)
            if event_type == "customer.deleted" or state is None:
                integration_remove(integration_type=INTEGRATION_TYPE, integration_id=remote_id)
                outcome = result("unlinked", mapping.catalog_item_id if mapping else None)
            else:
                local, resync = _apply_customer_state(state, event_id)
                outcome = result("applied", local.pk)
    if resync:
        # The local side won a conflict but has no push under way: send it.
        request_resync(item=local)
    return outcome


def _is_ambiguous(remote_id: str, occurred_at: datetime | None, latest: datetime | None) -> bool:
    """Whether the event's payload may be older than what Stripe holds now."""
    if occurred_at is None or (latest is not None and occurred_at <= latest):
        return True
    mapping = integration_get(integration_type=INTEGRATION_TYPE, integration_id=remote_id)
    # Stripe's timestamps are whole seconds: an event in the second of our last push may predate it.
    return bool(mapping and mapping.last_synced_at and occurred_at <= mapping.last_synced_at)


def _fetch_remote(remote_id: str) -> dict[str, Any] | None:
    try:
        remote = stripe_client().v1.customers.retrieve(remote_id).to_dict(recursive=True)
    except stripe.InvalidRequestError as exc:
        if _is_missing(exc):
            return None
        raise
    return None if remote.get("deleted") else remote


def _apply_customer_state(remote: dict[str, Any], event_id: str) -> tuple[Customer, bool]:
    """Bring the local customer to the Stripe state `remote`; return it, and whether it needs a push."""
    remote_id = remote["id"]
    incoming = remote_fields(remote)
    mapping = integration_get(integration_type=INTEGRATION_TYPE, integration_id=remote_id)
    if mapping is None:
        local = _unlinked_local_customer(remote, incoming["email"])
        mapping = local and integration_for_item(item_id=local.pk, integration_type=INTEGRATION_TYPE)
        if local is None or mapping is None:
            if local is None:
                if customer_email_taken(email=incoming["email"]):
                    raise PermanentTaskError(
                        f"Stripe customer {remote_id} has email {incoming['email']!r}, which a local customer "
                        "already linked to another Stripe customer has"
                    )
                local = customer_create(**incoming)
            else:
                _update_local(local, incoming, remote_id)  # linked by email: Stripe's record wins
            integration_record_synced(
                item_id=local.pk, integration_type=INTEGRATION_TYPE, integration_id=remote_id, agreed_fields=incoming
            )
            return local, False
        # Our own create coming back before the worker recorded it.
        integration_link(item_id=local.pk, integration_type=INTEGRATION_TYPE, integration_id=remote_id)
    return _merge_remote(mapping, incoming, event_id)


def _merge_remote(mapping: CatalogIntegration, incoming: dict[str, Any], event_id: str) -> tuple[Customer, bool]:
    """Three-way merge per field against the values both sides last agreed on: a field changed
    only in Stripe is applied, one changed only locally is kept (its push is on the way), one
    changed on both sides keeps the local value and is recorded as a conflict."""
    local = mapping.catalog_item.get_real_instance()
    current, base = local_fields(local), mapping.synced_fields
    to_apply: dict[str, Any] = {}
    agreed: dict[str, Any] = {}
    conflicts = []
    for field, remote_value in incoming.items():
        local_value = current[field]
        if remote_value == local_value:
            agreed[field] = remote_value
        elif field not in base:
            if mapping.status != SyncStatus.PENDING:  # nothing local in flight: Stripe's value
                to_apply[field] = agreed[field] = remote_value
        elif base[field] == remote_value:
            pass  # only the local side changed; its push sends it
        elif base[field] == local_value:
            to_apply[field] = agreed[field] = remote_value
        else:
            conflicts.append(
                SyncConflict(
                    catalog_item=local,
                    integration_type=INTEGRATION_TYPE,
                    field=field,
                    local_value=local_value,
                    remote_value=remote_value,
                    kept="local",
                    remote_event_id=event_id,
                )
            )
    if to_apply:
        _update_local(local, to_apply, mapping.integration_id or "")
    integration_record_agreed(mapping=mapping, agreed_fields=agreed)
    if conflicts:
        SyncConflict.objects.bulk_create(conflicts)
        logger.warning(
            "conflict on %s %s: kept local %s",
            INTEGRATION_TYPE,
            mapping.integration_id,
            ", ".join(c.field for c in conflicts),
        )
        return local, mapping.status != SyncStatus.PENDING
    return local, False


def _update_local(local: Customer, fields: dict[str, Any], remote_id: str) -> None:
    if fields.get("email") and customer_email_taken(email=fields["email"], exclude_id=local.pk):
        raise PermanentTaskError(
            f"Stripe customer {remote_id} changed its email to {fields['email']!r}, which another local customer has"
        )
    customer_update(customer=local, **fields)


def _unlinked_local_customer(remote: dict[str, Any], email: str | None) -> Customer | None:
    """The local customer this Stripe customer stands for but is not linked to yet: the one we
    created it from (its `metadata.local_id`), else the one with the same email."""
    local_id = str((remote.get("metadata") or {}).get("local_id") or "")
    linked = CatalogIntegration.objects.filter(
        integration_type=INTEGRATION_TYPE, integration_id__isnull=False
    ).values("catalog_item_id")
    candidates = Customer.objects.exclude(pk__in=linked)
    if local_id.isdigit():
        local = candidates.filter(pk=int(local_id)).first()
        if local is not None:
            return local
    if email:
        return customers_with_email(email, queryset=candidates).first()
    return None


def stripe_webhook_event_accept(event: stripe.Event) -> str | None:
    """Hand a verified webhook event to the inward worker; return its task message id, or None
    when the event type is not one the hub syncs."""
    from .tasks import apply_stripe_event  # the tasks module imports this one

    if event.type not in CUSTOMER_EVENT_TYPES:
        return None
    customer = event.data.object.to_dict(recursive=True)
    return apply_stripe_event.send(
        event_id=event.id,
        event_type=event.type,
        stripe_customer_id=customer["id"],
        customer=customer,
        created=getattr(event, "created", None),
    )


