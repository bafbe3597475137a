"""Publishes the outbox to Kafka: in id order, at least once, surviving broker outages."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections, transaction
from django.db.utils import InterfaceError, OperationalError
from django.utils import timezone
from kafka.errors import KafkaError

from . import kafka
from .audit import sync_events_prune
from .dead_letters import dead_letter_record_unpublishable
from .inbox import inbox_prune
from .models import OutboxMessage
from .tombstones import tombstones_prune

logger = logging.getLogger(__name__)


def relay_batch(*, limit: int | None = None) -> int:
    """Publish the oldest unpublished outbox rows and mark them; return how many were published.

    Rows are marked only after Kafka acknowledged them. When the broker fails part-way nothing
    is marked, and the next call sends the same rows again from the first one, so per-key order
    holds and a crash costs a duplicate (which consumers tolerate), never a loss.
    """
    rows = list(
        OutboxMessage.objects.filter(published_at__isnull=True)
        .order_by("id")
        .values_list("id", "topic", "key", "payload")[: limit or settings.OUTBOX_BATCH_SIZE]
    )
    if not rows:
        return 0
    try:
        kafka.publish(
            (topic, key, json.dumps(payload, separators=(",", ":")).encode()) for _, topic, key, payload in rows
        )
        rejected: dict[int, str] = {}
    except kafka.RecordsRejected as exc:
        rejected = exc.rejected
    with transaction.atomic():
        # A row Kafka refused for good goes to dead letters: retrying it would hold up every row
        # behind it for ever.
        for index, reason in rejected.items():
            _, topic, key, payload = rows[index]
            dead_letter_record_unpublishable(topic=topic, key=key, payload=payload, reason=reason)
        OutboxMessage.objects.filter(id__in=[row[0] for row in rows]).update(published_at=timezone.now())
    return len(rows)


def prune_published(*, older_than_seconds: int | None = None) -> int:
    age = settings.OUTBOX_RETENTION_SECONDS if older_than_seconds is None else older_than_seconds
    deleted, _ = OutboxMessage.objects.filter(published_at__lt=timezone.now() - timedelta(seconds=age)).delete()
    return deleted


def outbox_backlog() -> int:
    return OutboxMessage.objects.filter(published_at__isnull=True).count()


class OutboxRelay:
    """Loop around `relay_batch` that waits out broker and database outages."""

    PRUNE_EVERY_SECONDS = 60.0

    def __init__(self) -> None:
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        last_prune = 0.0
        failures = 0
        while not self._stop.is_set():
            try:
                close_old_connections()
                published = relay_batch()
                if time.monotonic() - last_prune > self.PRUNE_EVERY_SECONDS:
                    prune_published()
                    sync_events_prune()
                    tombstones_prune()
                    inbox_prune()
                    last_prune = time.monotonic()
                failures = 0
            except (KafkaError, OperationalError, InterfaceError) as exc:
                failures += 1
                kafka.reset_producer()
                wait = min(5.0, 0.2 * 2**failures)
                logger.warning("outbox relay: %s; retrying in %.1f s", exc, wait)
                self._stop.wait(wait)
                continue
            if published < settings.OUTBOX_BATCH_SIZE:
                self._stop.wait(settings.OUTBOX_POLL_INTERVAL_SECONDS)
