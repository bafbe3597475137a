"""Reconciliation of local customers with Stripe customers (see `sync.reconcile`)."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction

from catalog.models import CatalogIntegration, CatalogItem, Customer
from catalog.services import integration_remove
from sync.outward import request_resync
from sync.tombstones import DeletedBy, tombstones_alive
from sync.reconcile import (
    DUPLICATE_REMOTE,
    FIELD_DIFF,
    MISSING_LOCAL,
    MISSING_REMOTE,
    ORPHAN_MAPPING,
    Difference,
)
from sync.ratelimit import TokenBucket

from . import INTEGRATION_TYPE
from .client import stripe_client
from .fields import compared_values, inward_values, local_id_of
from .records import stripe_tombstone

PAGE_SIZE = 100


class StripeReconcilerBase:
    """What the Stripe reconcilers of every catalog type share: reading every object of their
    kind within their own rate limit, telling a difference Stripe made from one made here, and
    unlinking an item whose Stripe object is gone. Subclasses name their `model` and read a
    Stripe object's `values` as the merge base keeps them."""

    model: type[CatalogItem]

    def __init__(self, *, rate_limit: float | None = None) -> None:
        rate = settings.STRIPE_RECONCILE_RATE_LIMIT_PER_SECOND if rate_limit is None else rate_limit
        # Stripe's limit is per account: our reads get their own budget on top of the workers'.
        self.bucket = TokenBucket(rate)
        self.remote: dict[str, dict[str, Any]] = {}

    def read_all(
        self, list_call: Callable[..., Any], *, what: str, progress: Callable[[str], None]
    ) -> dict[str, dict[str, Any]]:
        """Every object `list_call` lists (e.g. `stripe_client().v1.customers.list`), a page of 100
        at a time (`starting_after`), by id."""
        objects: dict[str, dict[str, Any]] = {}
        params: dict[str, Any] = {"limit": PAGE_SIZE}
        started = time.monotonic()
        while True:
            self.bucket.acquire()
            page = list_call(params=params)
            for item in page.data:
                objects[item.id] = item.to_dict(recursive=True)
            progress(f"stripe: {len(objects)} {what} read ({time.monotonic() - started:.1f} s)")
            if not page.has_more or not page.data:
                return objects
            params = {"limit": PAGE_SIZE, "starting_after": page.data[-1].id}

    def values(self, remote: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _unlink_orphan(self, difference: Difference) -> None:
        """Deleted in Stripe while its webhook was lost: as if it had come, the item is unlinked
        (the hub keeps it) and its tombstone keeps it from being recreated."""
        with transaction.atomic():
            integration_remove(integration_type=INTEGRATION_TYPE, integration_id=difference.external_id)
            stripe_tombstone(
                deleted_by=DeletedBy.REMOTE,
                external_id=difference.external_id,
                item_id=difference.item_id,
                model=self.model,
            )

    @staticmethod
    def _base(difference: Difference) -> dict[str, Any]:
        mapping = CatalogIntegration.objects.filter(
            catalog_item_id=difference.item_id, integration_type=INTEGRATION_TYPE
        ).first()
        return mapping.synced_fields if mapping else {}

    def _changed_in_stripe(self, difference: Difference) -> bool:
        base = self._base(difference)
        theirs = self.values(self.remote[difference.external_id])
        return any(name in base and base[name] != value for name, value in theirs.items())


class StripeReconciler(StripeReconcilerBase):
    model = Customer

    def fetch_remote(self, progress: Callable[[str], None]) -> dict[str, dict[str, Any]]:
        """Every Stripe customer."""
        return self.read_all(stripe_client().v1.customers.list, what="customers", progress=progress)

    def compare(self, *, progress: Callable[[str], None]) -> list[Difference]:
        self.remote = remote = self.fetch_remote(progress)
        mappings = {
            mapping.catalog_item_id: mapping
            for mapping in CatalogIntegration.objects.filter(integration_type=INTEGRATION_TYPE)
        }
        # Deleted on one side within the tombstones' retention: neither missing nor to be restored.
        tombstones = tombstones_alive(integration_type=INTEGRATION_TYPE)
        dead_items = set(tombstones.exclude(item_id=None).values_list("item_id", flat=True))
        dead_remote_ids = set(tombstones.exclude(external_id="").values_list("external_id", flat=True))
        differences: list[Difference] = []
        linked_remote_ids: set[str] = set()
        for customer in Customer.objects.order_by("id"):
            mapping = mappings.get(customer.pk)
            remote_id = mapping.integration_id if mapping else None
            if not remote_id:
                if customer.pk not in dead_items:
                    differences.append(Difference(MISSING_REMOTE, customer.pk, None, "not in Stripe"))
                continue
            linked_remote_ids.add(remote_id)
            if remote_id not in remote:
                differences.append(Difference(ORPHAN_MAPPING, customer.pk, remote_id, "Stripe customer gone"))
                continue
            changed = [
                f"{mapping.local}: {ours!r} here, {theirs!r} in Stripe"
                for mapping, ours, theirs in compared_values(customer=customer, remote=remote[remote_id])
                if ours != theirs
            ]
            if changed:
                differences.append(Difference(FIELD_DIFF, customer.pk, remote_id, "; ".join(changed)))
        for remote_id, customer in remote.items():
            seen = remote_id in linked_remote_ids or remote_id in dead_remote_ids
            if seen or local_id_of(customer) in dead_items:
                continue
            differences.append(
                Difference(MISSING_LOCAL, None, remote_id, f"{customer.get('email') or '(no email)'} not here")
            )
        differences.extend(self._duplicates(remote))
        return differences

    @staticmethod
    def _duplicates(remote: dict[str, dict[str, Any]]) -> list[Difference]:
        by_email: dict[str, list[str]] = defaultdict(list)
        for remote_id, customer in remote.items():
            if customer.get("email"):
                by_email[customer["email"].lower()].append(remote_id)
        return [
            Difference(DUPLICATE_REMOTE, None, ",".join(sorted(ids)), f"{len(ids)} Stripe customers with {email}")
            for email, ids in sorted(by_email.items())
            if len(ids) > 1
        ]

    def repair(self, differences: list[Difference]) -> int:
        from .tasks import apply_stripe_event

        enqueued = 0
        for difference in differences:
            if difference.kind == ORPHAN_MAPPING:
                self._unlink_orphan(difference)
            elif difference.kind == MISSING_REMOTE:
                with transaction.atomic():
                    customer = Customer.objects.filter(pk=difference.item_id).first()
                    if customer is None:
                        continue
                    request_resync(item=customer, full=True)
            elif difference.kind == FIELD_DIFF and not self._changed_in_stripe(difference):
                # Only the local side moved (its push was lost or gave up): push it again.
                customer = Customer.objects.filter(pk=difference.item_id).first()
                if customer is None:
                    continue
                with transaction.atomic():
                    request_resync(item=customer, full=not self._base(difference))
            elif difference.kind in (MISSING_LOCAL, FIELD_DIFF):
                # Stripe's current state, applied like a webhook: linked by email or created
                # locally, or merged field by field against what both sides last agreed on.
                apply_stripe_event.send(
                    event_id=f"reconcile-{uuid.uuid4().hex}",
                    event_type="customer.updated",
                    stripe_customer_id=difference.external_id,
                    customer=self.remote[difference.external_id],
                    created=int(time.time()),
                )
            else:
                continue
            enqueued += 1
        return enqueued

    def values(self, remote: dict[str, Any]) -> dict[str, Any]:
        return inward_values(remote)
