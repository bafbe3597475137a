"""Customer sync with Stripe, both ways. Called by the tasks in `tasks.py` and by the webhook."""

from __future__ import annotations

import logging
from typing import Any

import stripe
from django.db import IntegrityError, transaction

from catalog.models import CatalogIntegration, Customer, SyncStatus
from catalog.services import (
    customer_create,
    customer_email_taken,
    customer_update,
    integration_begin_create,
    integration_for_item,
    integration_get,
    integration_link,
    integration_record_error,
    integration_record_synced,
    integration_remove,
    normalize_email,
)
from sync.models import InboxEvent
from sync.outward import ACTION_DELETE, applying_remote_change
from sync.tasks import PermanentTaskError

from . import INTEGRATION_TYPE
from .client import stripe_client

logger = logging.getLogger(__name__)

CUSTOMER_EVENT_TYPES = frozenset({"customer.created", "customer.updated", "customer.deleted"})
# Worth another try: Stripe or the network failed, or Stripe asked us to slow down.
RETRYABLE_ERRORS = (stripe.RateLimitError, stripe.APIConnectionError, stripe.APIError)


def _is_missing(exc: stripe.StripeError) -> bool:
    return getattr(exc, "http_status", None) == 404


def _idempotency(event_id: str, action: str) -> dict[str, str]:
    # Derived from our event, so a redelivered Kafka message repeats the call safely.
    return {"idempotency_key": f"synchub-{event_id}-{action}"}


# --- Outward: local -> Stripe ---------------------------------------------------------------


def customer_push(*, item_id: int, action: str, event_id: str, external_id: str | None = None) -> None:
    """Make Stripe match the local customer `item_id` as it is now (or delete it remotely).

    Reads the current local state rather than the event's, so a late or repeated event can
    only re-send the newest state.
    """
    try:
        if action == ACTION_DELETE:
            _delete_remote(external_id, event_id)
        else:
            _upsert_remote(item_id, event_id)
    except RETRYABLE_ERRORS as exc:
        integration_record_error(item_id=item_id, integration_type=INTEGRATION_TYPE, error=str(exc), final=False)
        raise
    except stripe.StripeError as exc:
        # A client error (bad data, bad key): retrying the same request cannot succeed.
        integration_record_error(item_id=item_id, integration_type=INTEGRATION_TYPE, error=str(exc), final=True)
        raise PermanentTaskError(str(exc)) from exc


def customer_push_failed(*, item_id: int, error: str) -> None:
    integration_record_error(item_id=item_id, integration_type=INTEGRATION_TYPE, error=error, final=True)


def _customer_params(customer: Customer) -> dict[str, Any]:
    return {"name": customer.name or "", "email": customer.email or ""}


def _delete_remote(external_id: str | None, event_id: str) -> None:
    if not external_id:
        return
    try:
        stripe_client().v1.customers.delete(external_id, options=_idempotency(event_id, "delete"))
    except stripe.InvalidRequestError as exc:
        if not _is_missing(exc):
            raise
        logger.info("stripe customer %s was already deleted", external_id)


def _upsert_remote(item_id: int, event_id: str) -> None:
    customer = Customer.objects.filter(pk=item_id).first()
    if customer is None:
        return  # deleted since; the delete's own event removes it remotely
    mapping = integration_for_item(item_id=item_id, integration_type=INTEGRATION_TYPE)
    client = stripe_client()
    if mapping is not None and mapping.integration_id:
        try:
            client.v1.customers.update(
                mapping.integration_id, params=_customer_params(customer), options=_idempotency(event_id, "update")
            )
        except stripe.InvalidRequestError as exc:
            if not _is_missing(exc):
                raise
            # Deleted in Stripe: like a `customer.deleted` webhook, unlink and keep the local row.
            integration_remove(integration_type=INTEGRATION_TYPE, integration_id=mapping.integration_id)
            return
        integration_record_synced(
            item_id=item_id, integration_type=INTEGRATION_TYPE, integration_id=mapping.integration_id
        )
        return
    key, resumed = integration_begin_create(
        item_id=item_id, integration_type=INTEGRATION_TYPE, key=_idempotency(event_id, "create")["idempotency_key"]
    )
    remote = _created_before(client, customer) if resumed else None
    if remote is None:
        remote = client.v1.customers.create(
            params={**_customer_params(customer), "metadata": {"local_id": str(item_id)}},
            options={"idempotency_key": key},
        )
    try:
        with transaction.atomic():
            integration_record_synced(item_id=item_id, integration_type=INTEGRATION_TYPE, integration_id=remote.id)
    except IntegrityError:
        if Customer.objects.filter(pk=item_id).exists():
            raise
        # Deleted locally while we were creating it: do not leave an orphan in Stripe.
        _delete_remote(remote.id, event_id)


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


def stripe_event_apply(*, event_id: str, event_type: str, customer: dict[str, Any]) -> bool:
    """Apply one Stripe customer event to the catalog, once; return False for a repeat.

    The changes made here are not sent back to Stripe (`applying_remote_change`), and a local
    change still waiting to reach Stripe wins over the remote values (it is pushed next).
    """
    with transaction.atomic():
        _, first_time = InboxEvent.objects.get_or_create(
            source=INTEGRATION_TYPE, event_id=event_id, defaults={"event_type": event_type}
        )
        if not first_time:
            logger.info("stripe event %s already applied; skipped", event_id)
            return False
        with applying_remote_change(INTEGRATION_TYPE):
            if event_type == "customer.deleted":
                integration_remove(integration_type=INTEGRATION_TYPE, integration_id=customer["id"])
            else:
                _apply_customer_state(customer)
    return True


def _apply_customer_state(remote: dict[str, Any]) -> None:
    remote_id = remote["id"]
    fields = {"name": remote.get("name") or "", "email": normalize_email(remote.get("email"))}
    mapping = integration_get(integration_type=INTEGRATION_TYPE, integration_id=remote_id)
    if mapping is not None:
        if mapping.status == SyncStatus.PENDING:
            logger.info("customer %s has a local change in flight; remote values of %s not applied",
                        mapping.catalog_item_id, remote_id)
            return
        local = mapping.catalog_item.get_real_instance()
        _update_local(local, fields, remote_id)
        return
    local = _unlinked_local_customer(remote, fields["email"])
    if local is None:
        if customer_email_taken(email=fields["email"]):
            raise PermanentTaskError(
                f"Stripe customer {remote_id} has email {fields['email']!r}, which a local customer "
                "already linked to another Stripe customer has"
            )
        local = customer_create(**fields)
    else:
        pending = integration_for_item(item_id=local.pk, integration_type=INTEGRATION_TYPE)
        if pending is not None and pending.status == SyncStatus.PENDING:
            # Our own create coming back before the worker recorded it: link only; the local
            # values are the ones on their way to Stripe.
            integration_link(item_id=local.pk, integration_type=INTEGRATION_TYPE, integration_id=remote_id)
            return
        _update_local(local, fields, remote_id)
    integration_record_synced(item_id=local.pk, integration_type=INTEGRATION_TYPE, integration_id=remote_id)


def _update_local(local: Customer, fields: dict[str, Any], remote_id: str) -> None:
    if fields["email"] and customer_email_taken(email=fields["email"], exclude_id=local.pk):
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
        return candidates.filter(email__iexact=email).first()
    return None


def stripe_webhook_event_accept(event: stripe.Event) -> str | None:
    """Hand a verified webhook event to the inward worker; return its task message id, or None
    when the event type is not one the hub syncs."""
    from .tasks import apply_stripe_event  # the tasks module imports this one

    if event.type not in CUSTOMER_EVENT_TYPES:
        return None
    customer = event.data.object.to_dict(recursive=True)
    return apply_stripe_event.send(
        event_id=event.id, event_type=event.type, stripe_customer_id=customer["id"], customer=customer
    )


def mapping_is_synced(mapping: CatalogIntegration) -> bool:
    return mapping.status == SyncStatus.SYNCED and bool(mapping.integration_id)
