"""Recording the conflicts of a three-way merge (`sync.merge`): a field changed on both sides,
with both values and the one kept, for staff (the admin's sync conflicts)."""

from __future__ import annotations

from collections.abc import Iterable

from .merge import Conflict
from .models import SyncConflict


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
