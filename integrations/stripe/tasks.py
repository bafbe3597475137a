"""The Stripe integration's tasks: thin wrappers that call the services."""

import uuid
from typing import Any

from sync.audit import SyncResult
from sync.integrations import INWARD, OUTWARD, sync_topic
from sync.tasks import TaskMessage, task

from . import INTEGRATION_TYPE
from .apply import stripe_event_apply, stripe_events_apply
from .invoice_apply import stripe_invoice_events_apply
from .invoice_push import invoice_push, invoice_push_failed
from .push import customer_push, customer_push_failed, customers_push

CUSTOMER_OUTWARD_TOPIC = sync_topic(integration=INTEGRATION_TYPE, catalog_type="customer", direction=OUTWARD)
CUSTOMER_INWARD_TOPIC = sync_topic(integration=INTEGRATION_TYPE, catalog_type="customer", direction=INWARD)
INVOICE_OUTWARD_TOPIC = sync_topic(integration=INTEGRATION_TYPE, catalog_type="invoice", direction=OUTWARD)
INVOICE_INWARD_TOPIC = sync_topic(integration=INTEGRATION_TYPE, catalog_type="invoice", direction=INWARD)


@task(name="stripe.push_customer", topic=CUSTOMER_OUTWARD_TOPIC, key="item_id", direction=OUTWARD, integration=INTEGRATION_TYPE)
def push_customer_to_stripe(
    *, item_id: int, action: str, event_id: str, external_id: str | None = None, full: bool = False
) -> SyncResult:
    return customer_push(
        item_id=item_id, action=action, event_id=event_id, external_id=external_id, full=full
    )


@push_customer_to_stripe.batch_hook
def _push_batch(changes: list[dict[str, Any]]) -> list[SyncResult | Exception]:
    return customers_push(changes)


@push_customer_to_stripe.on_dead_letter_hook
def _push_dead_lettered(message: TaskMessage) -> None:
    customer_push_failed(item_id=message.kwargs["item_id"], error=message.last_error)


@push_customer_to_stripe.replay_kwargs_hook
def _push_replayed(kwargs: dict[str, Any]) -> dict[str, Any]:
    # A new event id gives new idempotency keys: Stripe would answer the old key with the old failure.
    return {**kwargs, "event_id": uuid.uuid4().hex}


# Keyed by the Stripe customer id, so one customer's events are applied in the order received.
@task(name="stripe.apply_event", topic=CUSTOMER_INWARD_TOPIC, key="stripe_customer_id", direction=INWARD,
      integration=INTEGRATION_TYPE)
def apply_stripe_event(
    *, event_id: str, event_type: str, stripe_customer_id: str, customer: dict[str, Any], created: int | None = None
) -> SyncResult:
    return stripe_event_apply(event_id=event_id, event_type=event_type, customer=customer, created=created)


@apply_stripe_event.batch_hook
def _apply_batch(events: list[dict[str, Any]]) -> list[SyncResult | Exception]:
    # A poll's events of distinct customers in one transaction (a savepoint each).
    return stripe_events_apply(events)


@task(name="stripe.push_invoice", topic=INVOICE_OUTWARD_TOPIC, key="item_id", direction=OUTWARD,
      integration=INTEGRATION_TYPE)
def push_invoice_to_stripe(
    *, item_id: int, action: str, event_id: str, external_id: str | None = None, full: bool = False
) -> SyncResult:
    return invoice_push(item_id=item_id, action=action, event_id=event_id, external_id=external_id, full=full)


@push_invoice_to_stripe.on_dead_letter_hook
def _invoice_push_dead_lettered(message: TaskMessage) -> None:
    invoice_push_failed(item_id=message.kwargs["item_id"], error=message.last_error)


push_invoice_to_stripe.replay_kwargs_hook(_push_replayed)  # the same reason: fresh idempotency keys


# Keyed by the Stripe invoice id, so one invoice's events are applied in the order received.
@task(name="stripe.apply_invoice_event", topic=INVOICE_INWARD_TOPIC, key="stripe_invoice_id", direction=INWARD,
      integration=INTEGRATION_TYPE)
def apply_stripe_invoice_event(
    *, event_id: str, event_type: str, stripe_invoice_id: str, invoice: dict[str, Any], created: int | None = None
) -> SyncResult:
    [outcome] = stripe_invoice_events_apply(
        [{"event_id": event_id, "event_type": event_type, "invoice": invoice, "created": created}]
    )
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


@apply_stripe_invoice_event.batch_hook
def _apply_invoice_batch(events: list[dict[str, Any]]) -> list[SyncResult | Exception]:
    return stripe_invoice_events_apply(events)
