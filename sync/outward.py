"""Change capture: a save or delete of a registered catalog model enqueues its outward sync.

Integrations register their task per model (`register_outward_sync`) from their AppConfig, so
this module knows no vendor. The event is written through the outbox in the same transaction
as the change (see `CatalogItem.save`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.db.models.signals import post_save, pre_delete

from catalog.models import CatalogItem
from catalog.services import integration_for_item, integration_mark_pending

from .origin import change_origin
from .tasks import Task
from .tombstones import DeletedBy, tombstone_find, tombstone_record, tombstones_clear

logger = logging.getLogger(__name__)

ACTION_UPSERT = "upsert"
ACTION_DELETE = "delete"


@dataclass(frozen=True)
class OutwardRoute:
    integration_type: str
    task: Task
    # Whether the integration has anywhere to send to now (None: always): a change is not
    # enqueued for an integration with nothing to send it to.
    active: Callable[[], bool] | None = None


_routes: dict[type[CatalogItem], list[OutwardRoute]] = {}
_applying_remote_change: ContextVar[str | None] = ContextVar("applying_remote_change", default=None)


def register_outward_sync(
    *, model: type[CatalogItem], integration_type: str, task: Task, active: Callable[[], bool] | None = None
) -> None:
    """Send every change of `model` to `integration_type` through `task` (while `active()`, if given).

    The task is called as task(item_id=..., action="upsert"|"delete", event_id=..., full=..., external_id=...).
    """
    routes = _routes.setdefault(model, [])
    if any(route.integration_type == integration_type for route in routes):
        return
    routes.append(OutwardRoute(integration_type=integration_type, task=task, active=active))
    post_save.connect(_on_save, sender=model, dispatch_uid=f"outward-save-{model._meta.label}")
    pre_delete.connect(_on_delete, sender=model, dispatch_uid=f"outward-delete-{model._meta.label}")


@contextmanager
def applying_remote_change(integration_type: str) -> Iterator[None]:
    """Within this block, changes came from `integration_type`: they are not sent back to it
    (no echo, no ping-pong) but still go to every other integration."""
    token = _applying_remote_change.set(integration_type)
    try:
        with change_origin(integration_type):
            yield
    finally:
        _applying_remote_change.reset(token)


def _routes_for(instance: CatalogItem) -> list[OutwardRoute]:
    origin = _applying_remote_change.get()
    return [
        route
        for route in _routes.get(type(instance), [])
        if route.integration_type != origin and (route.active is None or route.active())
    ]


def request_resync(*, item: CatalogItem, full: bool = True, revive: bool = False, new: bool = False) -> int:
    """Send `item` as it is now to every integration it is not being changed from; returns how
    many syncs were enqueued. Commits with the caller. `full` sends every field (a staff
    "resync" repairs drift); otherwise only fields changed since both sides agreed.

    An integration that deleted the item (a live tombstone) is not sent it again, so a local
    edit does not recreate what was deleted there; `revive` (a staff resync) clears that
    tombstone and creates it anew. A `new` item (just created) has no tombstone: not looked up,
    which saves a query per create."""
    routes = []
    for route in _routes_for(item):
        if revive:
            tombstones_clear(integration_type=route.integration_type, item_id=item.pk)
        elif not new and tombstone_find(
            integration_type=route.integration_type, item_id=item.pk, deleted_by=DeletedBy.REMOTE
        ):
            logger.info(
                "%s %s not sent to %s: deleted there (resync it to recreate it)",
                item.catalog_type,
                item.pk,
                route.integration_type,
            )
            continue
        routes.append(route)
    for route in routes:
        integration_mark_pending(item=item, integration_type=route.integration_type)
        route.task.delay(item_id=item.pk, action=ACTION_UPSERT, event_id=uuid.uuid4().hex, full=full)
    return len(routes)


def _on_save(sender, instance: CatalogItem, created: bool = False, raw: bool = False, **kwargs) -> None:
    if raw:  # loading fixtures
        return
    request_resync(item=instance, full=False, new=created)


def _on_delete(sender, instance: CatalogItem, **kwargs) -> None:
    origin = _applying_remote_change.get()
    for route in _routes.get(type(instance), []):
        # Locked: a create that just came back from the integration either has recorded its
        # external id (read here, so the delete goes out) or records nothing and finds the item
        # gone (and deletes what it created). Unlocked, on PostgreSQL, the id could be recorded
        # between this read and the delete, and the remote item would outlive the local one.
        mapping = integration_for_item(item_id=instance.pk, integration_type=route.integration_type, lock=True)
        external_id = mapping.integration_id if mapping is not None else ""
        # Every integration's late news of the item must find it deleted, even one whose create
        # is still in flight (its webhook names the item by its local id).
        tombstone_record(
            integration_type=route.integration_type,
            deleted_by=DeletedBy.REMOTE if route.integration_type == origin else DeletedBy.LOCAL,
            external_id=external_id or "",
            item_id=instance.pk,
            catalog_type=instance.catalog_type,
        )
        if route.integration_type == origin or not external_id:
            continue  # deleted there already, or never reached it (a create in flight sees it gone)
        route.task.delay(
            item_id=instance.pk, action=ACTION_DELETE, event_id=uuid.uuid4().hex, external_id=mapping.integration_id
        )
