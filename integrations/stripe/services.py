"""Customer sync with Stripe, both ways. Called by the tasks in `tasks.py` and by the webhook."""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

from datetime import datetime
from datetime import timezone as dt_timezone

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q

from catalog.models import CatalogIntegration, Customer, SyncStatus
from catalog.selectors import customers_with_email
from catalog.services import (
    customer_create,
    customer_email_taken,
    customer_update,
    integration_for_item,
    integrations_begin_create,
    integrations_for_items,
    integration_get,
    integration_link,
    integration_record_agreed,
    integration_record_error,
    integration_record_synced,
    integration_remove,
    integrations_record_synced,
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
    customers = Customer.objects.in_bulk(item_ids)
    mappings = integrations_for_items(item_ids=item_ids, integration_type=INTEGRATION_TYPE)
    for push in upserts:
        push.customer, push.mapping = customers.get(push.item_id), mappings.get(push.item_id)
    creating = [push for push in upserts if push.customer and not (push.mapping and push.mapping.integration_id)]
    begun = integrations_begin_create(
        integration_type=INTEGRATION_TYPE,
        keys={push.item_id: _idempotency(push.event_id, "create")["idempotency_key"] for push in creating},
        mappings=mappings,
    )
    for push in creating:
        push.create_key, push.resumed = begun[push.item_id]
    outcomes = _in_parallel(_push_remote, pushes)
    _record_pushed(pushes, outcomes)
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
        return _Pushed(SyncResult(action="deleted" if deleted else "already deleted", item_id=push.item_id,
                                  external_id=push.external_id or ""))  # fmt: skip
    if push.customer is None:
        return _Pushed(SyncResult(action="skipped: deleted locally", item_id=push.item_id))  # its delete event removes it
    if push.mapping is not None and push.mapping.integration_id:
        return _update_remote(push.customer, push.mapping, push.event_id, full=push.full)
    return _create_remote(push.customer, push.event_id, key=push.create_key, resumed=push.resumed)


def _record_pushed(pushes: list[_Push], outcomes: list[_Pushed | Exception]) -> None:
    """Write what Stripe confirmed, in one transaction; an item deleted meanwhile gets no
    mapping, and a Stripe customer just created for it is deleted again (no orphan)."""
    confirmed = {
        push.item_id: (outcome.confirmed_id, outcome.agreed)
        for push, outcome in zip(pushes, outcomes)
        if isinstance(outcome, _Pushed) and outcome.confirmed_id
    }
    try:
        recorded = integrations_record_synced(integration_type=INTEGRATION_TYPE, confirmed=confirmed)
    except IntegrityError:
        # One item's record clashes (its Stripe id is linked elsewhere, or it vanished mid-way):
        # record the others one by one, so only that one fails and is retried.
        recorded = {}
        for index, push in enumerate(pushes):
            if push.item_id in confirmed:
                try:
                    recorded |= integrations_record_synced(
                        integration_type=INTEGRATION_TYPE, confirmed={push.item_id: confirmed[push.item_id]}
                    )
                except IntegrityError as exc:
                    outcomes[index] = exc
    for index, (push, outcome) in enumerate(zip(pushes, outcomes)):
        if not isinstance(outcome, _Pushed):
            continue
        if outcome.unlinked:
            integration_remove(integration_type=INTEGRATION_TYPE, integration_id=outcome.result.external_id)
        elif outcome.confirmed_id and push.item_id not in recorded:
            if outcome.created:
                try:
                    _delete_remote(outcome.confirmed_id, push.event_id)
                except Exception as exc:  # noqa: BLE001 - retried: the create is found again, then deleted
                    outcomes[index] = exc
                    continue
                outcomes[index] = _Pushed(SyncResult(action="created, then deleted: deleted locally meanwhile",
                                                     item_id=push.item_id, external_id=outcome.confirmed_id))  # fmt: skip
            else:
                outcomes[index] = _Pushed(SyncResult(action="skipped: deleted locally", item_id=push.item_id))


def _final(push: _Push, outcome: _Pushed | Exception) -> SyncResult | Exception:
    if isinstance(outcome, _Pushed):
        return outcome.result
    if isinstance(outcome, RETRYABLE_ERRORS):
        integration_record_error(item_id=push.item_id, integration_type=INTEGRATION_TYPE, error=str(outcome), final=False)
    elif isinstance(outcome, stripe.StripeError):
        # A client error (bad data, bad key): retrying the same request cannot succeed, and a
        # rejected create created nothing.
        integration_record_error(
            item_id=push.item_id, integration_type=INTEGRATION_TYPE, error=str(outcome), final=True,
            create_rejected=True,
        )  # fmt: skip
        error = PermanentTaskError(str(outcome))
        error.__cause__ = outcome
        return error
    return outcome


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


def _update_remote(customer: Customer, mapping: CatalogIntegration, event_id: str, *, full: bool) -> _Pushed:
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
            return _Pushed(SyncResult(action="unlinked: deleted in Stripe", item_id=customer.pk,
                                      external_id=mapping.integration_id), unlinked=True)  # fmt: skip
    return _Pushed(
        SyncResult(action="updated" if changed else "unchanged", item_id=customer.pk, external_id=mapping.integration_id),
        confirmed_id=mapping.integration_id,
        agreed=changed,
    )


def _create_remote(customer: Customer, event_id: str, *, key: str, resumed: bool) -> _Pushed:
    client = stripe_client()
    current = local_fields(customer)
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
    return _Pushed(SyncResult(action="created", item_id=customer.pk, external_id=remote.id),
                   confirmed_id=remote.id, agreed=current, created=True)  # fmt: skip


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
        earlier = (
            InboxEvent.objects.filter(source=INTEGRATION_TYPE, object_id=remote_id)
            .exclude(event_id=event_id)
            .aggregate(latest=Max("occurred_at"), deletions=Count("pk", filter=Q(event_type="customer.deleted")))
        )
        latest = earlier["latest"]
        if event_type != "customer.deleted" and earlier["deletions"]:
            logger.info("stripe event %s about deleted customer %s ignored", event_id, remote_id)
            return result("ignored: deleted in Stripe")
        if occurred_at is not None and latest is not None and occurred_at < latest:
            logger.info("stripe event %s (%s) is older than one already applied; ignored", event_id, occurred_at)
            return result("ignored: stale")
        mapping = integration_get(integration_type=INTEGRATION_TYPE, integration_id=remote_id)
        with applying_remote_change(INTEGRATION_TYPE):
            state = customer
            if event_type != "customer.deleted" and _is_ambiguous(mapping, occurred_at, latest):
                state = _fetch_remote(remote_id)
            if event_type == "customer.deleted" or state is None:
                integration_remove(integration_type=INTEGRATION_TYPE, integration_id=remote_id)
                outcome = result("unlinked", mapping.catalog_item_id if mapping else None)
            else:
                local, resync = _apply_customer_state(state, event_id, mapping)
                outcome = result("applied", local.pk)
    if resync:
        # The local side won a conflict but has no push under way: send it.
        request_resync(item=local)
    return outcome


def _is_ambiguous(mapping: CatalogIntegration | None, occurred_at: datetime | None, latest: datetime | None) -> bool:
    """Whether the event's payload may be older than what Stripe holds now (`mapping`: the
    customer's, if linked)."""
    if occurred_at is None or (latest is not None and occurred_at <= latest):
        return True
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


def _apply_customer_state(
    remote: dict[str, Any], event_id: str, mapping: CatalogIntegration | None
) -> tuple[Customer, bool]:
    """Bring the local customer to the Stripe state `remote` (`mapping`: the one linked to it, if
    any); return it, and whether it needs a push."""
    remote_id = remote["id"]
    incoming = remote_fields(remote)
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
    local = Customer.objects.non_polymorphic().get(pk=mapping.catalog_item_id)
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


def stripe_customer_event(event: dict[str, Any]) -> dict[str, Any] | None:
    """The inward task's arguments for a verified webhook payload (a plain dict, as parsed from
    the request: building Stripe objects for it cost a fifth of the intake's CPU), or None when
    it is not a customer event the hub syncs. Raises ValueError for a malformed event."""
    event_type = event.get("type")
    if not isinstance(event_type, str) or event_type not in CUSTOMER_EVENT_TYPES:
        return None
    data = event.get("data")
    customer = data.get("object") if isinstance(data, dict) else None
    created = event.get("created")
    if (
        not isinstance(event.get("id"), str)
        or not isinstance(customer, dict)
        or not isinstance(customer.get("id"), str)
        or not (created is None or isinstance(created, int))
    ):
        raise ValueError("not a well-formed Stripe customer event")
    return {
        "event_id": event["id"],
        "event_type": event_type,
        "stripe_customer_id": customer["id"],
        "customer": customer,
        "created": created,
    }


def stripe_webhook_event_accept(event: dict[str, Any]) -> str | None:
    """Hand a verified webhook event to the inward worker; return its task message id, or None
    when the event type is not one the hub syncs."""
    from .tasks import apply_stripe_event  # the tasks module imports this one

    arguments = stripe_customer_event(event)
    return None if arguments is None else apply_stripe_event.send(**arguments)
