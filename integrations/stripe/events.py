"""Stripe events on their way in: from a verified webhook, or read back from the Events API
when webhooks were missed (`stripe_events_catch_up`). Both hand them to the inward task."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.db.models import Max
from django.utils import timezone

from sync.models import InboxEvent
from sync.ratelimit import shared_bucket

from . import INTEGRATION_TYPE
from .client import stripe_client

logger = logging.getLogger(__name__)

CUSTOMER_EVENT_TYPES = ("customer.created", "customer.updated", "customer.deleted")
INVOICE_EVENT_TYPES = (
    "invoice.created",
    "invoice.updated",
    "invoice.finalized",
    "invoice.payment_failed",
    "invoice.payment_succeeded",
    "invoice.paid",
    "invoice.marked_uncollectible",
    "invoice.voided",
    "invoice.deleted",
)
# The object each synced event type carries, and the order of types within one second (a
# create before what follows it, a delete last), which the catch-up keeps.
SYNCED_EVENT_TYPES = {**dict.fromkeys(CUSTOMER_EVENT_TYPES, "customer"), **dict.fromkeys(INVOICE_EVENT_TYPES, "invoice")}
# Events younger than this are left to their webhooks (about to arrive): in a webhook storm the
# catch-up would otherwise hand the inward worker a second copy of everything still queued.
WEBHOOK_GRACE_SECONDS = 10


def stripe_synced_event(event: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The object kind ("customer", "invoice") and the inward task's arguments for a Stripe
    event (a plain dict, as parsed from the request: building Stripe objects for it cost a fifth
    of the intake's CPU), or None when it is not an event the hub syncs: another type, or one
    that does not carry the object its type names (e.g. a `customer.*` event about a
    subscription). Raises ValueError for a malformed event."""
    event_type = event.get("type")
    kind = SYNCED_EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
    if kind is None:
        logger.info("stripe event %s of type %s ignored: not synced", str(event.get("id"))[:255], str(event_type)[:100])
        return None
    data = event.get("data")
    carried = data.get("object") if isinstance(data, dict) else None
    created = event.get("created")
    if (
        not isinstance(event.get("id"), str)
        or not isinstance(carried, dict)
        or not isinstance(carried.get("id"), str)
        or not (created is None or (isinstance(created, int) and not isinstance(created, bool)))
    ):
        raise ValueError(f"not a well-formed Stripe {kind} event")
    if carried.get("object") != kind:
        other = str(carried.get("object"))[:100]
        logger.info("stripe event %s (%s) ignored: it carries a %s, not a %s", event["id"], event_type, other, kind)
        return None
    return kind, {
        "event_id": event["id"],
        "event_type": event_type,
        f"stripe_{kind}_id": carried["id"],
        kind: carried,
        "created": created,
    }


def stripe_customer_event(event: dict[str, Any]) -> dict[str, Any] | None:
    """The customer inward task's arguments for a Stripe event, or None (`stripe_synced_event`)."""
    synced = stripe_synced_event(event)
    return synced[1] if synced is not None and synced[0] == "customer" else None


def _hand_on(kind: str, arguments: dict[str, Any]) -> str:
    """Publish the event to its kind's inward task; the task message's id."""
    from .tasks import apply_stripe_event, apply_stripe_invoice_event  # tasks import apply, which imports this

    task = apply_stripe_event if kind == "customer" else apply_stripe_invoice_event
    return task.send(**arguments)


def stripe_webhook_event_accept(event: dict[str, Any]) -> str | None:
    """Hand a verified webhook event to the inward worker; return its task message id, or None
    when the event is not one the hub syncs."""
    synced = stripe_synced_event(event)
    return None if synced is None else _hand_on(*synced)


def stripe_events_catch_up(*, handed_before: dict[str, int] | None = None) -> int:
    """Hand the inward worker every synced event Stripe holds that the hub has not applied:
    those created since the newest event seen (less `STRIPE_CATCHUP_OVERLAP_SECONDS`, as events
    of one second may come in any order), or in `STRIPE_CATCHUP_INITIAL_LOOKBACK_SECONDS` when
    none was seen. Returns how many were handed on. The inward task dedupes them as it dedupes
    webhooks, so one that is also on its way as a webhook is applied once.

    `handed_before` (event id -> created), kept by a long-running caller, stops an event that
    the inward task refused (and dead-lettered) from being handed on again every round."""
    newest = InboxEvent.objects.filter(source=INTEGRATION_TYPE, occurred_at__isnull=False).aggregate(
        newest=Max("occurred_at")
    )["newest"]
    if newest is None:
        since = timezone.now() - timedelta(seconds=settings.STRIPE_CATCHUP_INITIAL_LOOKBACK_SECONDS)
    else:
        since = newest - timedelta(seconds=settings.STRIPE_CATCHUP_OVERLAP_SECONDS)
    events = _events_between(int(since.timestamp()), int(time.time()) - WEBHOOK_GRACE_SECONDS)
    handed_before = {} if handed_before is None else handed_before
    for event_id in [key for key, created in handed_before.items() if created < since.timestamp()]:
        del handed_before[event_id]  # out of the window: will not be read again
    known = set(
        InboxEvent.objects.filter(source=INTEGRATION_TYPE, event_id__in=[event["id"] for event in events]).values_list(
            "event_id", flat=True
        )
    )
    handed = 0
    # Oldest first, as they happened: one customer's events keep their order on its partition.
    # Within a second (Stripe's resolution) a create precedes an update, and both a delete;
    # updates within one second are settled by the apply, which then reads Stripe's state.
    rank = {event_type: index for index, event_type in enumerate(SYNCED_EVENT_TYPES)}
    for event in sorted(events, key=lambda event: (event.get("created") or 0, rank[event["type"]])):
        if event["id"] in known or event["id"] in handed_before:
            continue
        try:
            synced = stripe_synced_event(event)
        except ValueError:
            logger.warning("stripe event %s from the Events API is malformed; skipped", event.get("id"))
            continue
        if synced is not None:
            _hand_on(*synced)
            handed_before[event["id"]] = event.get("created") or 0
            handed += 1
    if handed:
        logger.info("catch-up: %d missed Stripe events handed to the inward worker", handed)
    return handed


def _events_between(created_gte: int, created_lte: int) -> list[dict[str, Any]]:
    """Synced events created in [`created_gte`, `created_lte`] (unix times), every page of them.

    One listing per type: the `types[]` filter is not supported everywhere (emulators), `type`
    is. Pages are read within `STRIPE_RECONCILE_RATE_LIMIT_PER_SECOND`, the budget of the hub's
    own reads beside the workers' writes.
    """
    bucket = shared_bucket(float(settings.STRIPE_RECONCILE_RATE_LIMIT_PER_SECOND))
    events: dict[str, dict[str, Any]] = {}
    for event_type in SYNCED_EVENT_TYPES:
        params: dict[str, Any] = {"type": event_type, "created": {"gte": created_gte, "lte": created_lte}, "limit": 100}
        while True:
            bucket.acquire()
            page = stripe_client().v1.events.list(params=params)
            for event in page.data:
                events[event.id] = event.to_dict(recursive=True)
            if not page.has_more or not page.data:
                break
            params = {**params, "starting_after": page.data[-1].id}
    return list(events.values())


def stripe_catch_up_loop(*, stop, interval: float | None = None) -> None:
    """Run `stripe_events_catch_up` every `STRIPE_CATCHUP_INTERVAL_SECONDS` until `stop` (an
    Event) is set; a failed round (Stripe or Kafka away) is logged and tried again next time."""
    interval = settings.STRIPE_CATCHUP_INTERVAL_SECONDS if interval is None else interval
    handed: dict[str, int] = {}
    while not stop.is_set():
        started = time.monotonic()
        try:
            close_old_connections()
            stripe_events_catch_up(handed_before=handed)
        except Exception:  # noqa: BLE001 - a supervisor-free loop: the next round tries again
            logger.warning("catch-up from Stripe's Events API failed; retrying", exc_info=True)
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
