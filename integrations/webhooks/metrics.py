"""The webhook integration's metrics: deliveries by outcome (as they happen), and, read when
/metrics is scraped, each endpoint's backlog, its oldest due delivery and whether it is disabled."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from sync.metrics import series_start_at_zero

logger = logging.getLogger(__name__)

DELIVERIES = Counter(
    "synchub_webhook_deliveries", "Webhook delivery attempts by what followed (succeeded, retrying, dead)", ["outcome"]
)
series_start_at_zero(DELIVERIES, ({"outcome": outcome} for outcome in ("succeeded", "retrying", "dead")))


class EndpointsCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        from .models import WebhookDelivery, WebhookEndpoint

        pending = GaugeMetricFamily("synchub_webhook_pending", "Deliveries not yet made, per endpoint", labels=["endpoint"])
        lag = GaugeMetricFamily(
            "synchub_webhook_lag_seconds", "Age of the oldest delivery due and not yet made, per endpoint", labels=["endpoint"]
        )
        disabled = GaugeMetricFamily("synchub_webhook_endpoints_disabled", "Endpoints disabled (failing too long, or by staff)")
        try:
            now = timezone.now()
            rows = WebhookEndpoint.objects.annotate(
                waiting=Count("deliveries", filter=Q(deliveries__status=WebhookDelivery.Status.PENDING)),
                oldest_due=Min(
                    "deliveries__created_at",
                    filter=Q(deliveries__status=WebhookDelivery.Status.PENDING, deliveries__next_attempt_at__lte=now),
                ),
            ).values_list("pk", "enabled", "waiting", "oldest_due")
            disabled_count = 0
            for pk, enabled, waiting, oldest_due in rows:
                pending.add_metric([str(pk)], waiting)
                lag.add_metric([str(pk)], (now - oldest_due).total_seconds() if oldest_due else 0.0)
                disabled_count += not enabled
            disabled.add_metric([], disabled_count)
        except Exception:  # noqa: BLE001 - a scrape must not fail because the database is away
            logger.warning("webhook endpoint gauges unavailable", exc_info=True)
        yield pending
        yield lag
        yield disabled
