"""Prometheus metrics of the sync engine.

Counters and histograms are updated where things happen (relay, workers, webhook, external
calls). With several processes (gunicorn workers, relay, sync workers) set
`PROMETHEUS_MULTIPROC_DIR` to a directory shared by all of them: `/metrics` then reports every
process's figures (prometheus_client's multiprocess mode). Gauges that describe shared state
(outbox backlog, consumer lag) are computed when `/metrics` is scraped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

logger = logging.getLogger(__name__)

EVENTS_PUBLISHED = Counter("synchub_events_published", "Messages published to Kafka", ["topic"])
EVENTS_CONSUMED = Counter(
    "synchub_events_consumed", "Task messages handled by workers", ["topic", "task", "outcome"]
)
TASK_DURATION = Histogram("synchub_task_duration_seconds", "Time a task handler took", ["task"])
WEBHOOKS_RECEIVED = Counter("synchub_webhooks_received", "Webhook deliveries by outcome", ["integration", "outcome"])
EXTERNAL_REQUESTS = Histogram(
    "synchub_external_request_seconds",
    "Latency of calls to external systems (e.g. Stripe) by outcome",
    ["integration", "method", "outcome"],
)

LAG_CACHE_SECONDS = 10.0


def series_start_at_zero(metric: Counter | Histogram, label_sets: Iterable[dict[str, str]]) -> None:
    """Create `metric`'s series for `label_sets` at 0 in this process. A labelled series is born
    with its first event, at 1, and Prometheus's increase() sees no rise from a series it never
    saw before: without this, the first dead letter or rejected webhook fires no alert."""
    for labels in label_sets:
        metric.labels(**labels)


def task_outcomes_start_at_zero(tasks: Iterable[Any]) -> None:
    """Every outcome of every task a worker runs, at 0 (`synchub_events_consumed_total`)."""
    from .models import SyncEvent

    series_start_at_zero(
        EVENTS_CONSUMED,
        ({"topic": task.topic, "task": task.name, "outcome": outcome} for task in tasks for outcome in SyncEvent.Outcome.values),
    )


EXTERNAL_REQUEST_OUTCOMES = ("ok", "429", "4xx", "5xx", "network_error")


def external_requests_start_at_zero(*, integration: str, methods: Iterable[str]) -> None:
    """Every outcome of `integration`'s requests by each of `methods`, at 0, so that the first
    burst of 429s or 5xx raises the rates the throttling and error alerts read."""
    series_start_at_zero(
        EXTERNAL_REQUESTS,
        (
            {"integration": integration, "method": method.upper(), "outcome": outcome}
            for method in methods
            for outcome in EXTERNAL_REQUEST_OUTCOMES
        ),
    )


def external_request_observe(*, integration: str, method: str, status: int | None, seconds: float) -> None:
    """Count one HTTP request to an external system in `synchub_external_request_seconds`, by
    outcome: ok, 429 (rate limited, told apart from other refusals: the alert on throttling
    reads it), 4xx, 5xx, or network_error (`status` None: no answer)."""
    if status is None:
        outcome = "network_error"
    elif status < 400:
        outcome = "ok"
    else:
        outcome = "429" if status == 429 else f"{status // 100}xx"
    EXTERNAL_REQUESTS.labels(integration=integration, method=method.upper(), outcome=outcome).observe(seconds)


class SyncStateCollector(Collector):
    """Outbox backlog and consumer lag, read when scraped (lag cached briefly)."""

    def __init__(self) -> None:
        self._lag: list[tuple[str, str, int]] = []
        self._lag_at = 0.0

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from .relay import outbox_backlog

        backlog = GaugeMetricFamily("synchub_outbox_backlog", "Outbox rows not yet published to Kafka")
        try:
            backlog.add_metric([], outbox_backlog())
        except Exception:  # noqa: BLE001 - a scrape must not fail because one source is down
            logger.warning("outbox backlog unavailable", exc_info=True)
        yield backlog
        lag = GaugeMetricFamily(
            "synchub_consumer_lag", "Messages not yet consumed, per consumer group and topic", labels=["group", "topic"]
        )
        for group, topic, value in self._consumer_lag():
            lag.add_metric([group, topic], value)
        yield lag

    def _consumer_lag(self) -> list[tuple[str, str, int]]:
        if time.monotonic() - self._lag_at > LAG_CACHE_SECONDS:
            from .kafka import consumer_lag

            try:
                self._lag = consumer_lag()
            except Exception:  # noqa: BLE001 - the broker may be down; health reports that
                logger.warning("consumer lag unavailable", exc_info=True)
                self._lag = []
            self._lag_at = time.monotonic()
        return self._lag


_state_collector = SyncStateCollector()
_render_lock = threading.Lock()


def render_metrics() -> bytes:
    """The exposition text: this process's (or, in multiprocess mode, every process's) metrics
    plus the shared-state gauges, the hub's and each integration's (its contract's collectors)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    from .integrations import integration_collectors

    collectors = [_state_collector, *integration_collectors()]
    with _render_lock:
        for collector in collectors:
            registry.register(collector)
        try:
            return generate_latest(registry)
        finally:
            for collector in collectors:
                registry.unregister(collector)
