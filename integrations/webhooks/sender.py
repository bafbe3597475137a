"""The delivery loop: picks due deliveries, sends them from a pool of threads (the database is
touched by this thread only), and records each answer as it comes."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from django.conf import settings
from django.db import close_old_connections
from django.db.utils import InterfaceError, OperationalError

from .delivery import Answer, deliveries_due, deliveries_prune, delivery_record, delivery_send
from .models import WebhookDelivery, WebhookEndpoint
from .outward import endpoint_resend_step

logger = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.2  # waiting for answers; nothing in flight: the pause below
PRUNE_EVERY_SECONDS = 60.0
# How often a change queued for an endpoint while it was being disabled is dead-lettered: a write
# of its own, kept out of the 0.2 s loop (on SQLite every write statement takes the file's lock).
SWEEP_EVERY_SECONDS = 5.0


class DeliverySender:
    def __init__(self) -> None:
        self._stop = threading.Event()
        self.sent = 0
        self._pruned_at = self._swept_at = float("-inf")

    def stop(self) -> None:
        self._stop.set()

    def run(self, *, max_deliveries: int | None = None) -> None:
        in_flight: dict[Future, WebhookDelivery] = {}
        with ThreadPoolExecutor(max_workers=settings.WEBHOOKS_CONCURRENCY, thread_name_prefix="webhook") as pool:
            while not self._stop.is_set() and (max_deliveries is None or self.sent < max_deliveries):
                try:
                    close_old_connections()
                    if time.monotonic() - self._pruned_at >= PRUNE_EVERY_SECONDS:
                        deliveries_prune()
                        self._pruned_at = time.monotonic()
                    self._resend_step()
                    if time.monotonic() - self._swept_at >= SWEEP_EVERY_SECONDS:
                        _dead_letter_disabled()
                        self._swept_at = time.monotonic()
                    self._submit_due(pool, in_flight)
                    done, _ = wait(list(in_flight), timeout=IDLE_POLL_SECONDS, return_when=FIRST_COMPLETED)
                    for future in done:
                        delivery = in_flight.pop(future)
                        delivery_record(delivery, future.result())
                        self.sent += 1
                    if not in_flight:
                        self._stop.wait(IDLE_POLL_SECONDS)
                except (OperationalError, InterfaceError):
                    logger.warning("database unavailable; webhook deliveries wait", exc_info=True)
                    self._stop.wait(1.0)
            for future, delivery in in_flight.items():  # finish what was sent before stopping
                delivery_record(delivery, future.result())

    @staticmethod
    def _resend_step() -> None:
        for endpoint in WebhookEndpoint.objects.filter(resend_requested_at__isnull=False, enabled=True):
            endpoint_resend_step(endpoint)

    def _submit_due(self, pool: ThreadPoolExecutor, in_flight: dict[Future, WebhookDelivery]) -> None:
        free = settings.WEBHOOKS_CONCURRENCY - len(in_flight)
        if free <= 0:
            return
        per_endpoint = Counter(delivery.endpoint_id for delivery in in_flight.values())
        busy_items = {(d.endpoint_id, d.item_id) for d in in_flight.values()}
        busy = {delivery.pk for delivery in in_flight.values()}
        for delivery in deliveries_due(limit=free * 4, busy=busy):
            if free <= 0:
                break
            key = (delivery.endpoint_id, delivery.item_id)
            if per_endpoint[delivery.endpoint_id] >= settings.WEBHOOKS_PER_ENDPOINT_CONCURRENCY or key in busy_items:
                continue
            in_flight[pool.submit(_send, delivery)] = delivery
            per_endpoint[delivery.endpoint_id] += 1
            busy_items.add(key)
            free -= 1


def _dead_letter_disabled() -> None:
    """A change queued for an endpoint while it was being disabled (the fan-out read it enabled
    just before) joins its dead letters, as the rest of its queue did."""
    WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING, endpoint__enabled=False).update(
        status=WebhookDelivery.Status.DEAD, last_error="endpoint disabled"
    )


def _send(delivery: WebhookDelivery) -> Answer:
    return delivery_send(delivery)
