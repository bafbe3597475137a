"""Change capture: a save or delete of a registered catalog model enqueues its outward sync.

Integrations register their task per model (`register_outward_sync`) from their AppConfig, so
this module knows no vendor. The event is written through the outbox in the same transaction
as the change (see `CatalogItem.save`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.db.models.signals import post_save, pre_delete

from catalog.models import CatalogItem
from catalog.services import integration_for_item, integration_mark_pending

from .tasks import Task

ACTION_UPSERT = "upsert"
ACTION_DELETE = "delete"


@dataclass(frozen=True)
class OutwardRoute:
    integration_type: str
    task: Task


_routes: dict[type[CatalogItem], list[OutwardRoute]] = {}
_applying_remote_change: ContextVar[str | None] = ContextVar("applying_remote_change", default=None)


def register_outward_sync(*, model: type[CatalogItem], integration_type: str, task: Task) -> None:
    """Send every change of `model` to `integration_type` through `task`.

    The task is called as task(item_id=..., action="upsert"|"delete", event_id=..., full=..., external_id=...).
    """
    routes = _routes.setdefault(model, [])
    if any(route.integration_type == integration_type for route in routes):
        return
    routes.append(OutwardRoute(integration_type=integration_type, task=task))
    post_save.connect(_on_save, sender=model, dispatch_uid=f"outward-save-{model._meta.label}")
    pre_delete.connect(_on_delete, sender=model, dispatch_uid=f"outward-delete-{model._meta.label}")


@contextmanager
def applying_remote_change(integration_type: str) -> Iterator[None]:
    """Within this block, changes came from `integration_type`: they are not sent back to it
    (no echo, no ping-pong) but still go to every other integration."""
    token = _applying_remote_change.set(integration_type)
    try:
        yield
    finally:
        _applying_remote_change.reset(token)


def _routes_for(instance: CatalogItem) -> list[OutwardRoute]:
    origin = _applying_remote_change.get()
    return [route for route in _routes.get(type(instance), []) if route.integration_type != origin]


def request_resync(*, item: CatalogItem, full: bool = True) -> int:
    """Send `item` as it is now to every integration it is not being changed from; returns how
    many syncs were enqueued. Commits with the caller. `full` sends every field (a staff
    "resync" repairs drift); otherwise only fields changed since both sides agreed."""
    routes = _routes_for(item)
    for route in routes:
        integration_mark_pending(item=item, integration_type=route.integration_type)
        route.task.delay(item_id=item.pk, action=ACTION_UPSERT, event_id=uuid.uuid4().hex, full=full)
    return len(routes)


def _on_save(sender, instance: CatalogItem, raw: bool = False, **kwargs) -> None:
    if raw:  # loading fixtures
        return
    request_resync(item=instance, full=False)


def _on_delete(sender, instance: CatalogItem, **kwargs) -> None:
    for route in _routes_for(instance):
        mapping = integration_for_item(item_id=instance.pk, integration_type=route.integration_type)
        if mapping is None or not mapping.integration_id:
            continue  # never reached the other side; a create still in flight sees the item gone
        route.task.delay(
            item_id=instance.pk, action=ACTION_DELETE, event_id=uuid.uuid4().hex, external_id=mapping.integration_id
        )
