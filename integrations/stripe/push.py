"""Outward: make Stripe match local customers (the outward task's batch handler)."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

import stripe
from django.conf import settings
from django.db import IntegrityError

from catalog.models import CatalogIntegration, Customer
from catalog.services import (
    integration_record_error,
    integration_remove,
    integrations_begin_create,
    integrations_for_items,
    integrations_record_synced,
)
from sync.audit import SyncResult
from sync.merge import changed_since_agreed
from sync.outward import ACTION_DELETE
from sync.tasks import PermanentTaskError
from sync.tombstones import DeletedBy

from . import INTEGRATION_TYPE
from .client import idempotency_options, stripe_client
from .fields import LOCAL_ID_KEY, PER_KEY_FIELDS, SENT_WHOLE_FIELDS, inward_values, outward_values, stripe_create_params, stripe_params
from .records import stripe_tombstone

logger = logging.getLogger(__name__)

# Worth another try: Stripe or the network failed, or Stripe asked us to slow down.
RETRYABLE_ERRORS = (stripe.RateLimitError, stripe.APIConnectionError, stripe.APIError)


def _is_missing(exc: stripe.StripeError) -> bool:
    return getattr(exc, "http_status", None) == 404


# --- Outward: local -> Stripe ---------------------------------------------------------------


@dataclass
class _Push:
    """One outward change and what the database said about it before the Stripe calls."""

    item_id: int
    action: str
    event_id: str
    external_id: str | None = None
    full: bool = False
    customer: Customer | None = None
    mapping: CatalogIntegration | None = None
    create_key: str = ""
    resumed: bool = False


@dataclass
class _Pushed:
    """What Stripe did for one change, and what to record for it."""

    result: SyncResult
    confirmed_id: str = ""  # the Stripe customer that now matches; empty: nothing to record
    agreed: dict[str, Any] | None = None
    created: bool = False
    unlinked: bool = False  # deleted in Stripe: drop the mapping


def customer_push(
    *, item_id: int, action: str, event_id: str, external_id: str | None = None, full: bool = False
) -> SyncResult:
    """Make Stripe match the local customer `item_id` as it is now (or delete it remotely).

    Reads the current local state rather than the event's, so a late or repeated event can only
    re-send the newest state. Sends only the fields changed since both sides last agreed, unless
    `full` (a staff resync) asks for every field.
    """
    [outcome] = customers_push(
        [{"item_id": item_id, "action": action, "event_id": event_id, "external_id": external_id, "full": full}]
    )
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def customers_push(changes: list[dict[str, Any]]) -> list[SyncResult | Exception]:
    """`customer_push` for many changes (of distinct customers) at once; returns, in order, each
    change's result or the exception it failed with.

    The database is read and written a few statements per batch, not per change, and the Stripe
    calls run `STRIPE_WORKER_CONCURRENCY` at a time, so their latency overlaps.
    """
    pushes = [_Push(**change) for change in changes]
    upserts = [push for push in pushes if push.action != ACTION_DELETE]
    item_ids = [push.item_id for push in upserts]
    customers = Customer.objects.non_polymorphic().in_bulk(item_ids)
    mappings = integrations_for_items(item_ids=item_ids, integration_type=INTEGRATION_TYPE)
    for push in upserts:
        push.customer, push.mapping = customers.get(push.item_id), mappings.get(push.item_id)
    creating = [push for push in upserts if push.customer and not (push.mapping and push.mapping.integration_id)]
    begun = integrations_begin_create(
        integration_type=INTEGRATION_TYPE,
        keys={push.item_id: idempotency_options(push.event_id, "create")["idempotency_key"] for push in creating},
        mappings=mappings,
    )
    for push in creating:
        push.create_key, push.resumed = begun[push.item_id]
    outcomes = _record_pushed(pushes, _in_parallel(_push_remote, pushes))
    return [_final(push, outcome) for push, outcome in zip(pushes, outcomes)]


def _in_parallel(call, pushes: list[_Push]) -> list[_Pushed | Exception]:
    def guarded(push: _Push) -> _Pushed | Exception:
        try:
            return call(push)
        except Exception as exc:  # noqa: BLE001 - reported per change; the others go on
            return exc

    if len(pushes) <= 1:
        return [guarded(push) for push in pushes]
    return list(_stripe_call_pool().map(guarded, pushes))


@cache
def _stripe_call_pool() -> ThreadPoolExecutor:
    # Threads only wait on Stripe here; every database access stays on the calling thread.
    return ThreadPoolExecutor(max_workers=settings.STRIPE_WORKER_CONCURRENCY, thread_name_prefix="stripe-push")


def _push_remote(push: _Push) -> _Pushed:
    if push.action == ACTION_DELETE:
        deleted = _delete_remote(push.external_id, push.event_id)
        action = "deleted" if deleted else "already deleted"
        return _Pushed(SyncResult(action=action, item_id=push.item_id, external_id=push.external_id or ""))
    if push.customer is None:
        return _Pushed(SyncResult(action="skipped: deleted locally", item_id=push.item_id))  # its delete event removes it
    if push.mapping is not None and push.mapping.integration_id:
        return _update_remote(push.customer, push.mapping, push.event_id, full=push.full)
    return _create_remote(push.customer, push.event_id, key=push.create_key, resumed=push.resumed)


def _record_pushed(pushes: list[_Push], outcomes: list[_Pushed | Exception]) -> list[_Pushed | Exception]:
    """Write what Stripe confirmed, in one transaction, and return each change's final outcome:
    an item deleted meanwhile gets no mapping, and a Stripe customer just created for it is
    deleted again (no orphan)."""
    confirmed = {
        push.item_id: (outcome.confirmed_id, outcome.agreed)
        for push, outcome in zip(pushes, outcomes)
        if isinstance(outcome, _Pushed) and outcome.confirmed_id
    }
    try:
        recorded = integrations_record_synced(integration_type=INTEGRATION_TYPE, confirmed=confirmed)
        clashes: dict[int, IntegrityError] = {}
    except IntegrityError:
        # One item's record clashes (its Stripe id is linked elsewhere, or it vanished mid-way):
        # record the others one by one, so only that one fails and is retried.
        recorded, clashes = _record_each(confirmed)
    return [
        clashes[push.item_id] if push.item_id in clashes else _settle(push, outcome, recorded)
        for push, outcome in zip(pushes, outcomes)
    ]


def _record_each(
    confirmed: dict[int, tuple[str, dict | None]],
) -> tuple[dict[int, CatalogIntegration], dict[int, IntegrityError]]:
    recorded: dict[int, CatalogIntegration] = {}
    clashes: dict[int, IntegrityError] = {}
    for item_id, confirmation in confirmed.items():
        try:
            recorded |= integrations_record_synced(integration_type=INTEGRATION_TYPE, confirmed={item_id: confirmation})
        except IntegrityError as exc:
            clashes[item_id] = exc
    return recorded, clashes


def _settle(
    push: _Push, outcome: _Pushed | Exception, recorded: dict[int, CatalogIntegration]
) -> _Pushed | Exception:
    """One change's outcome once the records are written."""
    if not isinstance(outcome, _Pushed):
        return outcome
    if outcome.unlinked:
        integration_remove(integration_type=INTEGRATION_TYPE, integration_id=outcome.result.external_id)
        _tombstone(DeletedBy.REMOTE, outcome.result.external_id, push.item_id)
        return outcome
    if not outcome.confirmed_id or push.item_id in recorded:
        return outcome
    if not outcome.created:
        return _Pushed(SyncResult(action="skipped: deleted locally", item_id=push.item_id))
    # Its `customer.created` webhook is on its way: it must find the customer dead.
    _tombstone(DeletedBy.LOCAL, outcome.confirmed_id, push.item_id)
    try:
        _delete_remote(outcome.confirmed_id, push.event_id)
    except Exception as exc:  # noqa: BLE001 - retried: the create is found again, then deleted
        return exc
    return _Pushed(
        SyncResult(
            action="created, then deleted: deleted locally meanwhile",
            item_id=push.item_id,
            external_id=outcome.confirmed_id,
        )
    )


def _tombstone(deleted_by: str, external_id: str, item_id: int) -> None:
    stripe_tombstone(deleted_by=deleted_by, external_id=external_id, item_id=item_id, model=Customer)


def _final(push: _Push, outcome: _Pushed | Exception) -> SyncResult | Exception:
    if isinstance(outcome, _Pushed):
        return outcome.result
    if isinstance(outcome, RETRYABLE_ERRORS):
        integration_record_error(item_id=push.item_id, integration_type=INTEGRATION_TYPE, error=str(outcome), final=False)
    elif isinstance(outcome, stripe.StripeError):
        # A client error (bad data, bad key): retrying the same request cannot succeed, and a
        # rejected create created nothing.
        integration_record_error(
            item_id=push.item_id,
            integration_type=INTEGRATION_TYPE,
            error=str(outcome),
            final=True,
            create_rejected=True,
        )
        error = PermanentTaskError(str(outcome))
        error.__cause__ = outcome
        return error
    return outcome


def customer_push_failed(*, item_id: int, error: str) -> None:
    integration_record_error(item_id=item_id, integration_type=INTEGRATION_TYPE, error=error, final=True)


def _delete_remote(external_id: str | None, event_id: str) -> bool:
    if not external_id:
        return False
    try:
        stripe_client().v1.customers.delete(external_id, options=idempotency_options(event_id, "delete"))
    except stripe.InvalidRequestError as exc:
        if not _is_missing(exc):
            raise
        logger.info("stripe customer %s was already deleted", external_id)
        return False
    return True


def _update_remote(customer: Customer, mapping: CatalogIntegration, event_id: str, *, full: bool) -> _Pushed:
    current = outward_values(customer)
    base = mapping.synced_fields
    if full or not base:
        changed = dict(current)
        # Keys removed here since the last agreement are removed in Stripe too.
        for name in PER_KEY_FIELDS & set(current):
            changed[name] = {**{key: None for key in base.get(name) or {}}, **current[name]}
    else:
        changed = changed_since_agreed(base=base, local=current, per_key=PER_KEY_FIELDS)
        changed |= {name: current[name] for name in SENT_WHOLE_FIELDS & set(changed)}
    if changed:
        params = stripe_params(changed)
        try:
            stripe_client().v1.customers.update(
                mapping.integration_id, params=params, options=idempotency_options(event_id, "update", params)
            )
        except stripe.InvalidRequestError as exc:
            if not _is_missing(exc):
                raise
            # Deleted in Stripe: like a `customer.deleted` webhook, unlink and keep the local row.
            unlinked = SyncResult(
                action="unlinked: deleted in Stripe", item_id=customer.pk, external_id=mapping.integration_id
            )
            return _Pushed(unlinked, unlinked=True)
    return _Pushed(
        SyncResult(
            action="updated" if changed else "unchanged",
            item_id=customer.pk,
            external_id=mapping.integration_id,
            fields=tuple(changed),
        ),
        confirmed_id=mapping.integration_id,
        # A per-key field now agrees whole (every key this side knows was sent).
        agreed={name: current[name] for name in changed},
    )


def _create_remote(customer: Customer, event_id: str, *, key: str, resumed: bool) -> _Pushed:
    client = stripe_client()
    current = outward_values(customer)
    remote = _created_before(client, customer) if resumed else None
    if remote is None:
        params = stripe_create_params(current)
        params["metadata"] = {**(params.get("metadata") or {}), LOCAL_ID_KEY: str(customer.pk)}
        try:
            remote = client.v1.customers.create(params=params, options={"idempotency_key": key})
        except stripe.IdempotencyError as exc:
            # The key's first use carried other values: that create went through; find it.
            remote = _created_before(client, customer)
            if remote is None:
                raise stripe.APIError(f"create under key {key} not found after {exc}") from exc
    created = inward_values(remote.to_dict(recursive=True))
    stale = changed_since_agreed(base=created, local=current, per_key=PER_KEY_FIELDS)
    stale |= {name: current[name] for name in SENT_WHOLE_FIELDS & set(stale)}
    if stale:
        # An earlier attempt created it with older values.
        params = stripe_params(stale)
        client.v1.customers.update(remote.id, params=params, options=idempotency_options(event_id, "update", params))
    return _Pushed(
        SyncResult(action="created", item_id=customer.pk, external_id=remote.id, fields=tuple(current)),
        confirmed_id=remote.id,
        agreed=current,
        created=True,
    )


def _created_before(client: stripe.StripeClient, customer: Customer) -> stripe.Customer | None:
    """The Stripe customer an interrupted earlier create made for `customer`, if any.

    Real Stripe answers a repeated idempotency key with the first result anyway; this lookup
    covers emulators without idempotency keys. Stripe lists by email only, so a customer
    without one relies on the idempotency key alone.
    """
    if not customer.email:
        return None
    for remote in client.v1.customers.list(params={"email": customer.email, "limit": 100}).auto_paging_iter():
        if (remote.to_dict(recursive=True).get("metadata") or {}).get(LOCAL_ID_KEY) == str(customer.pk):
            return remote
    return None


