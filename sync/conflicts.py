"""Conflicts of the three-way merge (`sync.merge`): a field changed on both sides, recorded with
both values and the one kept; listed for staff, who resolve each by keeping either value."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from catalog.models import CatalogItem, catalog_child_relations

from .integrations import catalog_sync_of
from .merge import Conflict
from .models import SyncConflict
from .origin import change_origin
from .outward import request_resync


def conflicts_record(
    *, item_id: int, integration_type: str, conflicts: Iterable[Conflict], kept: str, remote_event_id: str = ""
) -> None:
    """Store `conflicts` of item `item_id` with `integration_type` ("local" or "remote" kept), in
    one statement (none when there are none)."""
    SyncConflict.objects.bulk_create(
        SyncConflict(
            catalog_item_id=item_id,
            integration_type=integration_type,
            field=conflict.field,
            local_value=conflict.local_value,
            remote_value=conflict.remote_value,
            kept=kept,
            remote_event_id=remote_event_id,
        )
        for conflict in conflicts
    )


KEEP_CHOICES = ("local", "remote")


class ConflictNotResolvable(ValueError):
    """The conflict cannot be resolved as asked (already resolved, item gone, or its
    integration cannot write that field here): the API answers 409."""


def conflicts_filter(
    *,
    status: str = "",
    integration: str = "",
    field: str = "",
    item_id: int | None = None,
    item_type: str = "",
) -> QuerySet[SyncConflict]:
    """Conflicts, newest first; `status` "open" or "resolved" (empty: both)."""
    # With each item's own row (`as_child()` without a query): the list names them.
    related = [f"catalog_item__{relation}" for relation in catalog_child_relations()]
    conflicts = SyncConflict.objects.select_related(*related).order_by("-id")
    if status == "open":
        conflicts = conflicts.filter(resolved_at__isnull=True)
    elif status == "resolved":
        conflicts = conflicts.filter(resolved_at__isnull=False)
    if integration:
        conflicts = conflicts.filter(integration_type=integration)
    if field:
        conflicts = conflicts.filter(field=field)
    if item_id is not None:
        conflicts = conflicts.filter(catalog_item_id=item_id)
    if item_type:
        conflicts = conflicts.filter(catalog_item__catalog_type=item_type)
    return conflicts


def conflicts_open_count() -> int:
    return SyncConflict.objects.filter(resolved_at__isnull=True).count()


def conflict_resolve(*, conflict: SyncConflict, keep: str, resolved_by: str) -> SyncConflict:
    """Give the item the value staff chose (`keep`: "local" or "remote") for the conflicted
    field, through its integration's `write_value`, so the usual change capture sends it to every
    system (the conflicted one included); mark this conflict and the older open ones of the same
    field resolved. A value the item already has is sent again all the same: the system may
    still hold the other one."""
    if keep not in KEEP_CHOICES:
        raise ValueError(f"keep must be one of {', '.join(KEEP_CHOICES)}")
    with transaction.atomic():
        locked = SyncConflict.objects.select_for_update().filter(pk=conflict.pk).first()
        if locked is None or locked.resolved_at is not None:
            raise ConflictNotResolvable("This conflict is already resolved.")
        item = CatalogItem.objects.filter(pk=locked.catalog_item_id).first()
        if item is None:
            raise ConflictNotResolvable("Its item no longer exists.")
        sync = catalog_sync_of(integration_type=locked.integration_type, model=type(item))
        if sync is None or sync.write_value is None:
            raise ConflictNotResolvable(f"{locked.integration_type} cannot write {locked.field} here.")
        value = locked.local_value if keep == "local" else locked.remote_value
        with change_origin(f"conflict resolved · {resolved_by}" if resolved_by else "conflict resolved"):
            try:
                changed = sync.write_value(item=item, field=locked.field, value=value)
            except (TypeError, ValueError, DjangoValidationError) as exc:
                raise ConflictNotResolvable(f"{locked.field} cannot take {value!r}: {exc}") from exc
            if not changed:
                request_resync(item=item)
        SyncConflict.objects.filter(
            catalog_item_id=locked.catalog_item_id,
            integration_type=locked.integration_type,
            field=locked.field,
            resolved_at__isnull=True,
            id__lte=locked.pk,
        ).update(resolved_at=timezone.now(), resolution=keep, resolved_by=resolved_by[:150])
    locked.refresh_from_db()
    return locked
