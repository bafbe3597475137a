"""Tombstones: what was deleted, on which side, so that late news of it never revives it.

Recorded when an item is deleted locally (for every integration it syncs with) or remotely (an
integration reports the delete); consulted by every inward apply, every outward push request
and every reconcile. Kept `SYNC_TOMBSTONE_RETENTION` days, longer than external systems retry
their webhooks (Stripe: three days); pruned by the outbox relay.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from .models import Tombstone

logger = logging.getLogger(__name__)

DeletedBy = Tombstone.DeletedBy


def tombstone_record(
    *, integration_type: str, deleted_by: str, external_id: str = "", item_id: int | None = None, catalog_type: str = ""
) -> Tombstone:
    """Remember a delete. A tombstone already known for the same item or external id is
    completed (e.g. with the external id learnt after the local delete) instead of doubled."""
    existing = tombstone_find(integration_type=integration_type, external_id=external_id, item_id=item_id)
    if existing is not None:
        changed = []
        if external_id and not existing.external_id:
            existing.external_id = external_id
            changed.append("external_id")
        if item_id is not None and existing.item_id is None:
            existing.item_id = item_id
            changed.append("item_id")
        if changed:
            existing.save(update_fields=changed)
        return existing
    return Tombstone.objects.create(
        integration_type=integration_type,
        external_id=external_id or "",
        item_id=item_id,
        catalog_type=catalog_type,
        deleted_by=deleted_by,
    )


def tombstone_find(
    *, integration_type: str, external_id: str = "", item_id: int | None = None, deleted_by: str | None = None
) -> Tombstone | None:
    """The live tombstone of the item known here as `item_id` or remotely as `external_id`."""
    match = Q()
    if external_id:
        match |= Q(external_id=external_id)
    if item_id is not None:
        match |= Q(item_id=item_id)
    if not match:
        return None
    tombstones = tombstones_alive(integration_type=integration_type).filter(match)
    if deleted_by is not None:
        tombstones = tombstones.filter(deleted_by=deleted_by)
    return tombstones.order_by("-id").first()


def tombstones_alive(*, integration_type: str) -> QuerySet[Tombstone]:
    """The integration's tombstones still within their retention."""
    return Tombstone.objects.filter(integration_type=integration_type, deleted_at__gte=_oldest_alive())


def tombstone_ignored(tombstone: Tombstone) -> str:
    """The audit trail's action for news about a tombstoned item."""
    if tombstone.deleted_by == DeletedBy.LOCAL:
        return "ignored: deleted locally"
    return f"ignored: deleted in {tombstone.integration_type.title()}"


def tombstones_clear(*, integration_type: str, item_id: int) -> int:
    """Forget the remote delete of a local item: staff asked to sync it again on purpose."""
    deleted, _ = Tombstone.objects.filter(
        integration_type=integration_type, item_id=item_id, deleted_by=DeletedBy.REMOTE
    ).delete()
    return deleted


def tombstones_prune() -> int:
    deleted, _ = Tombstone.objects.filter(deleted_at__lt=_oldest_alive()).delete()
    return deleted


def _oldest_alive():
    return timezone.now() - timedelta(days=settings.SYNC_TOMBSTONE_RETENTION)
