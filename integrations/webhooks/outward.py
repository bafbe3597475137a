"""Outward: a catalog change becomes one queued delivery per subscribed endpoint (the outward
tasks' handler). The deliveries are sent by `manage.py run_webhook_deliveries`, endpoint by
endpoint, so a slow or dead endpoint holds up nothing else, Stripe included.

An endpoint is told only what it does not hold yet: its mapping keeps the values it was last
sent or sent us (`synced_fields`), so a change that came from its own system is not echoed back.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from catalog.models import CatalogIntegration, CatalogItem, SyncStatus
from catalog.services import integration_record_synced
from sync.audit import SyncResult
from sync.models import Tombstone
from sync.outward import ACTION_DELETE

from . import INTEGRATION_TYPE, endpoint_integration_type
from .models import WebhookDelivery, WebhookEndpoint
from .payloads import item_data, item_event_type, item_values
from .services import endpoint_wants


def message_body(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """A Standard Webhooks message body."""
    return {"type": event_type, "timestamp": timezone.now().isoformat(), "data": data}


def webhooks_fan_out(
    *, item_id: int, action: str, event_id: str, external_id: str | None = None, full: bool = False
) -> SyncResult:
    """Queue the item's change for every enabled endpoint subscribed to it (or its deletion for
    every endpoint that heard of it); `full` (a staff resync) sends it even to endpoints that
    hold it already."""
    with transaction.atomic():
        if action == ACTION_DELETE:
            queued = _queue_deletion(item_id, external_id or "")
            return SyncResult(action=f"deletion queued for {queued} endpoint(s)", item_id=item_id)
        item = CatalogItem.objects.filter(pk=item_id).first()
        if item is None:
            return SyncResult(action="skipped: deleted locally", item_id=item_id)
        item = item.get_real_instance()
        queued = _queue_change(item, full=full)
        # The fan-out's own mapping: this item reached the webhook integration (and the id by
        # which its deletion is told later: the catalog type and local id).
        integration_record_synced(
            item_id=item.pk, integration_type=INTEGRATION_TYPE, integration_id=f"{item.catalog_type_name()}:{item.pk}"
        )
    return SyncResult(action=f"queued for {queued} endpoint(s)", item_id=item_id)


def _queue_change(item: CatalogItem, *, full: bool) -> int:
    values = item_values(item)
    endpoints = list(WebhookEndpoint.objects.filter(enabled=True))
    mappings = _endpoint_mappings(item.pk, endpoints)
    now = timezone.now()
    deliveries, changed = [], []
    for endpoint in endpoints:
        mapping = mappings.get(endpoint.pk)
        known = mapping.synced_fields if mapping is not None and mapping.synced_fields else None
        if known == values and not full:
            continue  # it holds this already (it may be where the change came from)
        event_type = item_event_type(item, known=known)
        if not endpoint_wants(endpoint, event_type):
            continue
        data = item_data(item, values, external_id=mapping.integration_id if mapping is not None else None)
        deliveries.append(_delivery(endpoint, item.pk, item.catalog_type_name(), event_type, data, now))
        if mapping is None:
            mapping = CatalogIntegration(catalog_item_id=item.pk, integration_type=endpoint.integration_type)
        mapping.synced_fields, mapping.status = values, SyncStatus.PENDING
        changed.append(mapping)
    WebhookDelivery.objects.bulk_create(deliveries)
    for mapping in changed:
        mapping.save()
    return len(deliveries)


def _queue_deletion(item_id: int, fan_out_id: str) -> int:
    """Tell every enabled endpoint subscribed to the deletion, and told of the item before,
    that it is gone."""
    catalog_type = fan_out_id.split(":", 1)[0] or "item"
    event_type = f"{catalog_type}.deleted"
    now = timezone.now()
    endpoints = [e for e in WebhookEndpoint.objects.filter(enabled=True) if endpoint_wants(e, event_type)]
    # Only those that were told of it (its earlier deliveries say so: the mappings went with the
    # item), and not the one whose own system deleted it (its tombstone says so).
    told = set(
        WebhookDelivery.objects.filter(item_id=item_id, endpoint__in=endpoints).values_list("endpoint_id", flat=True)
    )
    deleted_there = set(
        Tombstone.objects.filter(
            item_id=item_id,
            deleted_by=Tombstone.DeletedBy.REMOTE,
            integration_type__in=[endpoint.integration_type for endpoint in endpoints],
        ).values_list("integration_type", flat=True)
    )
    told = {pk for pk in told if endpoint_integration_type(pk) not in deleted_there}
    deliveries = [
        _delivery(endpoint, item_id, catalog_type, event_type, {"id": item_id, "object": catalog_type, "deleted": True}, now)
        for endpoint in endpoints
        if endpoint.pk in told
    ]
    WebhookDelivery.objects.bulk_create(deliveries)
    return len(deliveries)


def _endpoint_mappings(item_id: int, endpoints: list[WebhookEndpoint]) -> dict[int, CatalogIntegration]:
    types = {endpoint.integration_type: endpoint.pk for endpoint in endpoints}
    mappings = CatalogIntegration.objects.filter(catalog_item_id=item_id, integration_type__in=types)
    return {types[mapping.integration_type]: mapping for mapping in mappings}


def _delivery(
    endpoint: WebhookEndpoint, item_id: int, catalog_type: str, event_type: str, data: dict[str, Any], now
) -> WebhookDelivery:
    return WebhookDelivery(
        endpoint=endpoint,
        message_id=f"msg_{uuid.uuid4().hex}",
        event_type=event_type,
        item_id=item_id,
        catalog_type=catalog_type,
        payload=message_body(event_type, data),
        next_attempt_at=now,
    )


RESEND_PAGE = 500


def endpoint_resend_step(endpoint: WebhookEndpoint) -> bool:
    """Queue the next page of every catalog item for `endpoint` (a "resend everything": a
    backfill for a new subscriber), as it is now; True when all were queued."""
    items = list(CatalogItem.objects.filter(pk__gt=endpoint.resend_cursor).order_by("pk")[:RESEND_PAGE])
    now = timezone.now()
    deliveries = []
    external_ids = dict(
        CatalogIntegration.objects.filter(
            catalog_item_id__in=[item.pk for item in items], integration_type=endpoint.integration_type
        ).values_list("catalog_item_id", "integration_id")
    )
    with transaction.atomic():
        for item in (item.get_real_instance() for item in items):
            values = item_values(item)
            event_type = f"{item.catalog_type_name()}.updated"
            if not endpoint_wants(endpoint, event_type):
                continue
            data = item_data(item, values, external_id=external_ids.get(item.pk))
            deliveries.append(_delivery(endpoint, item.pk, item.catalog_type_name(), event_type, data, now))
        WebhookDelivery.objects.bulk_create(deliveries)
        done = len(items) < RESEND_PAGE
        endpoint.resend_cursor = items[-1].pk if items else endpoint.resend_cursor
        if done:
            endpoint.resend_requested_at, endpoint.resend_cursor = None, 0
        endpoint.save(update_fields=["resend_cursor", "resend_requested_at", "updated_at"])
    return done
