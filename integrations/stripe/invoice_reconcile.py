"""Reconciliation of invoices: the catalog's invoices against Stripe's, for customers both sides
know; repairs go through the invoice tasks, as every other change does."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from django.db import transaction

from catalog.models import CatalogIntegration, Invoice
from sync.outward import request_resync
from sync.reconcile import FIELD_DIFF, MISSING_LOCAL, MISSING_REMOTE, ORPHAN_MAPPING, Difference
from sync.tombstones import tombstones_alive

from . import INTEGRATION_TYPE
from .client import stripe_client
from .fields import local_id_of
from .invoice_fields import local_invoice_values, stripe_invoice_values
from .reconcile import StripeReconcilerBase

class StripeInvoiceReconciler(StripeReconcilerBase):
    model = Invoice

    def fetch_remote(self, progress: Callable[[str], None]) -> dict[str, dict[str, Any]]:
        """Every Stripe invoice."""
        return self.read_all(stripe_client().v1.invoices.list, what="invoices", progress=progress)

    def compare(self, *, progress: Callable[[str], None]) -> list[Difference]:
        self.remote = remote = self.fetch_remote(progress)
        mappings = {
            mapping.catalog_item_id: mapping
            for mapping in CatalogIntegration.objects.filter(integration_type=INTEGRATION_TYPE)
        }
        linked_customers = {
            mapping.integration_id: item_id for item_id, mapping in mappings.items() if mapping.integration_id
        }
        tombstones = tombstones_alive(integration_type=INTEGRATION_TYPE)
        dead_items = set(tombstones.exclude(item_id=None).values_list("item_id", flat=True))
        dead_remote_ids = set(tombstones.exclude(external_id="").values_list("external_id", flat=True))
        differences: list[Difference] = []
        linked: set[str] = set()
        for invoice in Invoice.objects.non_polymorphic().order_by("id"):
            mapping = mappings.get(invoice.pk)
            remote_id = mapping.integration_id if mapping else None
            if not remote_id:
                if invoice.pk not in dead_items:
                    differences.append(Difference(MISSING_REMOTE, invoice.pk, None, "not in Stripe"))
                continue
            linked.add(remote_id)
            if remote_id not in remote:
                differences.append(Difference(ORPHAN_MAPPING, invoice.pk, remote_id, "Stripe invoice gone"))
                continue
            ours, theirs = local_invoice_values(invoice), stripe_invoice_values(remote[remote_id])
            changed = [f"{name}: {ours[name]!r} here, {theirs[name]!r} in Stripe" for name in ours if ours[name] != theirs[name]]
            if changed:
                differences.append(Difference(FIELD_DIFF, invoice.pk, remote_id, "; ".join(changed)))
        for remote_id, invoice in remote.items():
            if remote_id in linked or remote_id in dead_remote_ids or local_id_of(invoice) in dead_items:
                continue
            if str(invoice.get("customer")) not in linked_customers:
                continue  # a customer the catalog does not sync: its invoices are not ours either
            differences.append(Difference(MISSING_LOCAL, None, remote_id, f"{invoice.get('number') or remote_id} not here"))
        return differences

    def repair(self, differences: list[Difference]) -> int:
        from .tasks import apply_stripe_invoice_event

        enqueued = 0
        for difference in differences:
            if difference.kind == ORPHAN_MAPPING:
                self._unlink_orphan(difference)
            elif difference.kind == MISSING_REMOTE or (
                difference.kind == FIELD_DIFF and not self._changed_in_stripe(difference)
            ):
                # Only the local side moved (or never reached Stripe): push it again.
                invoice = Invoice.objects.non_polymorphic().filter(pk=difference.item_id).first()
                if invoice is None:
                    continue
                with transaction.atomic():
                    request_resync(item=invoice)
            elif difference.kind in (MISSING_LOCAL, FIELD_DIFF):
                # Stripe's state now, applied like a webhook (merged against the last agreement).
                apply_stripe_invoice_event.send(
                    event_id=f"reconcile-{uuid.uuid4().hex}",
                    event_type="invoice.updated",
                    stripe_invoice_id=difference.external_id,
                    invoice=self.remote[difference.external_id],
                    created=int(time.time()),
                )
            else:
                continue
            enqueued += 1
        return enqueued

    def values(self, remote: dict[str, Any]) -> dict[str, Any]:
        return stripe_invoice_values(remote)
