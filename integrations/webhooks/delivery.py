"""Sending queued deliveries (`manage.py run_webhook_deliveries`): signed with the endpoint's
secret(s) by the `standardwebhooks` library, each attempt recorded, failures retried on
WEBHOOKS_RETRY_SCHEDULE, and an endpoint failing for WEBHOOKS_DISABLE_AFTER_SECONDS disabled.

Per endpoint and item, one delivery at a time, oldest first: an endpoint hears of an item's
changes in order. At most WEBHOOKS_PER_ENDPOINT_CONCURRENCY requests per endpoint are in flight,
so a stalled endpoint takes no more than that from the others.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from standardwebhooks import Webhook

from catalog.models import CatalogIntegration, SyncStatus
from sync.metrics import external_request_observe, external_requests_start_at_zero

from . import INTEGRATION_TYPE
from .metrics import DELIVERIES
from .models import InboundMessage, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from .services import endpoint_disable, endpoint_secrets, endpoint_url_check

logger = logging.getLogger(__name__)

EXCERPT_BYTES = 1000
external_requests_start_at_zero(integration=INTEGRATION_TYPE, methods=("POST",))


@dataclass(frozen=True)
class Answer:
    status_code: int | None
    latency_ms: float
    excerpt: str
    error: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect is an answer, not a new address to post to (it could point inside our network).
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def deliveries_due(*, limit: int, busy: set[int]) -> list[WebhookDelivery]:
    """Deliveries to try now: pending, due, of an enabled endpoint, the oldest pending one of
    their endpoint and item, and not in flight (`busy`)."""
    earlier = WebhookDelivery.objects.filter(
        endpoint_id=OuterRef("endpoint_id"), item_id=OuterRef("item_id"), status=WebhookDelivery.Status.PENDING,
        id__lt=OuterRef("id"),
    )
    return list(
        WebhookDelivery.objects.select_related("endpoint")
        .filter(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=timezone.now(), endpoint__enabled=True)
        .exclude(pk__in=busy)
        .filter(~Exists(earlier))
        .order_by("id")[:limit]
    )


def delivery_send(delivery: WebhookDelivery) -> Answer:
    """One attempt: the message signed with every valid secret of its endpoint (the previous one
    too, during a rotation's grace), posted within WEBHOOKS_TIMEOUT_SECONDS. No database access:
    it runs in the sender's threads."""
    endpoint = delivery.endpoint
    body = json.dumps(delivery.payload, separators=(",", ":"))
    now = datetime.now(tz=dt_timezone.utc)
    signatures = " ".join(Webhook(secret).sign(delivery.message_id, now, body) for secret in endpoint_secrets(endpoint))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "synchub-webhooks",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
    }
    started = time.monotonic()
    status_code, excerpt, error = None, "", ""
    try:
        endpoint_url_check(endpoint.url)
        request = urllib.request.Request(endpoint.url, data=body.encode(), headers=headers, method="POST")
        with _opener.open(request, timeout=settings.WEBHOOKS_TIMEOUT_SECONDS) as response:
            status_code, excerpt = response.status, response.read(EXCERPT_BYTES).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        status_code, excerpt = exc.code, exc.read(EXCERPT_BYTES).decode("utf-8", "replace")
    except (OSError, ValidationError, ValueError) as exc:  # refused, timed out, unresolvable, not allowed
        error = f"{type(exc).__name__}: {exc}"[:500]
    seconds = time.monotonic() - started
    external_request_observe(integration=INTEGRATION_TYPE, method="POST", status=status_code, seconds=seconds)
    return Answer(status_code, round(1000 * seconds, 1), excerpt, error)


def delivery_record(delivery: WebhookDelivery, answer: Answer) -> None:
    """Record the attempt and what follows from it: delivered, retried later, or dead; the
    endpoint's failing streak; its mapping of the item."""
    now = timezone.now()
    with transaction.atomic():
        # As stored now: staff may have replayed it, or its endpoint been disabled, meanwhile.
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
        delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery.pk)
        WebhookAttempt.objects.create(
            delivery=delivery,
            status_code=answer.status_code,
            latency_ms=answer.latency_ms,
            response_excerpt=answer.excerpt,
            error=answer.error,
        )
        if delivery.status != WebhookDelivery.Status.PENDING:
            return
        delivery.attempts += 1
        delivery.last_status_code = answer.status_code
        if answer.succeeded:
            delivery.status, delivery.delivered_at, delivery.last_error = WebhookDelivery.Status.SUCCEEDED, now, ""
            if endpoint.failing_since is not None:
                endpoint.failing_since = None
                endpoint.save(update_fields=["failing_since", "updated_at"])
            _mapping_status(delivery, SyncStatus.SYNCED, "")
            DELIVERIES.labels(outcome="succeeded").inc()
        else:
            delivery.last_error = answer.error or f"HTTP {answer.status_code}: {answer.excerpt[:300]}"
            schedule = settings.WEBHOOKS_RETRY_SCHEDULE
            if delivery.attempts > len(schedule):
                delivery.status = WebhookDelivery.Status.DEAD
                _mapping_status(delivery, SyncStatus.FAILED, delivery.last_error)
                DELIVERIES.labels(outcome="dead").inc()
            else:
                delivery.next_attempt_at = now + timedelta(seconds=schedule[delivery.attempts - 1])
                DELIVERIES.labels(outcome="retrying").inc()
            if endpoint.failing_since is None:
                endpoint.failing_since = now
                endpoint.save(update_fields=["failing_since", "updated_at"])
        delivery.save()
        if not answer.succeeded and endpoint.enabled and _failing_too_long(endpoint, now):
            reason = f"failing since {endpoint.failing_since:%Y-%m-%d %H:%M:%S} UTC: {delivery.last_error}"
            dead = endpoint_disable(endpoint=endpoint, reason=reason)
            DELIVERIES.labels(outcome="dead").inc(dead)
            logger.error("webhook endpoint %s disabled (%s); %d deliveries dead-lettered", endpoint.pk, reason, dead)


def _failing_too_long(endpoint: WebhookEndpoint, now) -> bool:
    return now - endpoint.failing_since >= timedelta(seconds=settings.WEBHOOKS_DISABLE_AFTER_SECONDS)


def _mapping_status(delivery: WebhookDelivery, status: str, error: str) -> None:
    CatalogIntegration.objects.filter(
        catalog_item_id=delivery.item_id, integration_type=delivery.endpoint.integration_type
    ).update(status=status, last_error=error[:2000], **({"last_synced_at": timezone.now()} if status == SyncStatus.SYNCED else {}))


def deliveries_prune() -> int:
    """Forget delivered messages (and their attempts) and received message ids older than
    WEBHOOKS_RETENTION_DAYS; dead letters stay until replayed or their endpoint is deleted.
    A message id older than that is no longer known as a replay."""
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOKS_RETENTION_DAYS)
    deleted, _ = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.SUCCEEDED, delivered_at__lt=cutoff).delete()
    InboundMessage.objects.filter(received_at__lt=cutoff).delete()
    return deleted
