"""What the Stripe package records the same way for every catalog type: an event as the inbox
reads it, and a tombstone of something deleted on either side."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from catalog.models import CatalogItem
from sync.inbox import IncomingEvent
from sync.tombstones import tombstone_record

from . import INTEGRATION_TYPE
from .fields import local_id_of


def stripe_incoming(event: dict[str, Any], *, kind: str) -> IncomingEvent:
    """An inward task's arguments (`kind`: the object it carries, "customer" or "invoice") as
    the inbox reads them: Stripe's whole-second time, whether it is the object's deletion, and
    the local id the hub stored in an object it created."""
    created = event.get("created")
    carried = event[kind]
    return IncomingEvent(
        event_id=event["event_id"],
        event_type=event["event_type"],
        object_id=carried["id"],
        occurred_at=datetime.fromtimestamp(created, tz=timezone.utc) if created else None,
        deletes=event["event_type"] == f"{kind}.deleted",
        local_id=local_id_of(carried),
    )


def stripe_tombstone(*, deleted_by: str, external_id: str, item_id: int | None, model: type[CatalogItem]) -> None:
    """Remember that the Stripe object `external_id` (local item `item_id`) was deleted."""
    tombstone_record(
        integration_type=INTEGRATION_TYPE,
        deleted_by=deleted_by,
        external_id=external_id or "",
        item_id=item_id,
        catalog_type=model.catalog_type_name(),
    )
