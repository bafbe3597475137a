"""How much is waiting, over time: the outbox's unpublished rows and each consumer group's lag,
sampled by the relay (a thread beside its loop) into `BacklogSample`, read by the dashboard."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import Subquery
from django.utils import timezone

from .models import BacklogSample
from .relay import outbox_backlog

logger = logging.getLogger(__name__)


def backlog_sample() -> list[BacklogSample]:
    """Measure the outbox backlog and every consumer group's lag now, store and return them.
    Without a broker, the outbox is still sampled (its backlog is what grows then)."""
    from .kafka import consumer_lag

    now = timezone.now()
    samples = [BacklogSample(source=BacklogSample.OUTBOX, size=outbox_backlog(), measured_at=now)]
    try:
        lags = consumer_lag()
    except Exception:  # noqa: BLE001 - the broker may be down; /health and the relay report that
        logger.warning("consumer lag unavailable", exc_info=True)
        lags = []
    samples += [BacklogSample(source=group, topic=topic, size=lag, measured_at=now) for group, topic, lag in lags]
    BacklogSample.objects.bulk_create(samples)
    return samples


def backlog_samples_prune() -> int:
    oldest = timezone.now() - timedelta(seconds=settings.SYNC_BACKLOG_RETENTION_SECONDS)
    deleted, _ = BacklogSample.objects.filter(measured_at__lt=oldest).delete()
    return deleted


def backlogs_latest() -> tuple[datetime | None, list[BacklogSample]]:
    """The newest sample's time and its rows (the outbox first, then groups by name), in one
    query (index on measured_at)."""
    newest = BacklogSample.objects.order_by("-measured_at").values("measured_at")[:1]
    rows = list(BacklogSample.objects.filter(measured_at=Subquery(newest)))
    if not rows:
        return None, []
    rows.sort(key=lambda row: (row.source != BacklogSample.OUTBOX, row.source, row.topic))
    return rows[0].measured_at, rows


class BacklogSampler:
    """Samples every `SYNC_BACKLOG_SAMPLE_SECONDS` in a daemon thread of its own: asking Kafka
    for lag takes a consumer per group (and waits out a broker outage), which must never hold
    up the relay's publishing."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backlog-sampler", daemon=True)

    def start(self) -> None:
        if settings.SYNC_BACKLOG_SAMPLE_SECONDS > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                backlog_sample()
                backlog_samples_prune()
            except Exception:  # noqa: BLE001 - a sample missed is a gap in a chart; try again later
                logger.warning("backlog sample failed", exc_info=True)
            finally:
                connection.close()  # this thread's own; none is held between samples
            self._stop.wait(settings.SYNC_BACKLOG_SAMPLE_SECONDS)
