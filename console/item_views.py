"""One catalog item's whole story (its fields, its mappings, its sync timeline, its conflicts),
the actions staff may take on it, and the search that finds it from anywhere."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from catalog import selectors
from catalog.models import CatalogIntegration, CatalogItem, Customer, Invoice
from sync.conflicts import conflicts_filter
from sync.models import SyncEvent, Tombstone
from sync.outward import request_resync
from sync.timeline import item_timeline
from synchub.permissions import RESYNC_PERMISSION, model_permission

from .views import VIEW_CUSTOMERS, _next_url, console_permission, search_term

SEARCH_RESULTS = 20
VIEW_EVENTS = model_permission(SyncEvent, "view")


def item_story(*, item_id: int) -> dict:
    """What every item page shows below its own fields: its mappings (status, last error, the
    item in each system's dashboard), its timeline and its open conflicts."""
    mappings = list(CatalogIntegration.objects.filter(catalog_item_id=item_id).order_by("integration_type"))
    timeline = item_timeline(
        item_id=item_id, external_ids=[mapping.integration_id for mapping in mappings if mapping.integration_id]
    )
    return {
        "mappings": mappings,
        "timeline": timeline,
        # Every open one, however far back the timeline's window ends.
        "open_conflicts": list(conflicts_filter(status="open", item_id=item_id)),
    }


def item_url(item: CatalogItem) -> str:
    """The page of `item` (of any catalog type)."""
    if isinstance(item, Invoice):
        return reverse("console:invoice-detail", args=[item.pk])
    return reverse("console:customer-detail", args=[item.pk])


@require_GET
@console_permission(VIEW_CUSTOMERS, VIEW_EVENTS)
def customer_detail(request: HttpRequest, pk: int) -> HttpResponse:
    customer = get_object_or_404(Customer.objects.non_polymorphic(), pk=pk)
    return render(request, "console/customer_detail.html", {"customer": customer, **item_story(item_id=pk)})


@require_GET
@console_permission(VIEW_EVENTS)
def item_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """Any item by its id: its own page, or, for an item deleted since, what the trail keeps of
    it (why it is gone, and from which side)."""
    item = CatalogItem.objects.filter(pk=pk).first()
    if item is not None:
        return redirect(item_url(item))
    if not (SyncEvent.objects.filter(item_id=pk).exists() or Tombstone.objects.filter(item_id=pk).exists()):
        raise Http404("No such item, and nothing in the audit trail about one.")
    return render(request, "console/item_deleted.html", {"item_id": pk, **item_story(item_id=pk)})


@require_POST
@console_permission(RESYNC_PERMISSION)
def item_resync(request: HttpRequest, pk: int) -> HttpResponse:
    """Send the item as it is now to every system (again), reviving it where it was deleted."""
    item = get_object_or_404(CatalogItem, pk=pk)
    request_resync(item=item, revive=True)
    messages.success(request, f"Resync of “{item}” requested.")
    return redirect(_next_url(request, item_url(item)))


@require_GET
@console_permission(VIEW_CUSTOMERS)
def item_search(request: HttpRequest) -> HttpResponse:
    """Find an item by its id, its id in any system (cus_…, in_…), a customer's name or email,
    or an invoice's number; one match opens it."""
    query = search_term(request)
    results = selectors.catalog_items_search(query=query, limit=SEARCH_RESULTS) if query else []
    if len(results) == 1:
        return redirect(item_url(results[0]))
    rows = [{"item": item, "url": item_url(item), "type": item.catalog_type} for item in results]
    return render(
        request, "console/search.html", {"query": query, "rows": rows, "limit": SEARCH_RESULTS}
    )
