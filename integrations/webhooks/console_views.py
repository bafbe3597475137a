"""The staff console's pages for endpoints: their state, and every delivery with its attempts."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required, user_passes_test
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from catalog.models import item_id_in_range

from . import services
from .models import WebhookDelivery, WebhookEndpoint

DELIVERIES_PER_PAGE = 25
VIEW = "webhooks_integration.view_webhookendpoint"
REPLAY = "webhooks_integration.replay_webhookdelivery"

staff_required = user_passes_test(lambda user: user.is_active and user.is_staff)


def _permitted(permission: str):
    def decorator(view):
        return staff_required(permission_required(permission, raise_exception=True)(view))

    return decorator


def _endpoint(pk: str) -> WebhookEndpoint:
    return get_object_or_404(WebhookEndpoint, pk=pk if item_id_in_range(pk) else 0)


@require_GET
@_permitted(VIEW)
def endpoint_list(request: HttpRequest) -> HttpResponse:
    pending, dead = WebhookDelivery.Status.PENDING, WebhookDelivery.Status.DEAD
    endpoints = WebhookEndpoint.objects.annotate(
        pending=Count("deliveries", filter=Q(deliveries__status=pending)),
        dead=Count("deliveries", filter=Q(deliveries__status=dead)),
    ).order_by("id")
    return render(request, "webhooks/endpoint_list.html", {"endpoints": endpoints})


@require_GET
@_permitted(VIEW)
def endpoint_detail(request: HttpRequest, pk: str) -> HttpResponse:
    endpoint = _endpoint(pk)
    status = request.GET.get("status", "")
    deliveries = endpoint.deliveries.prefetch_related("attempt_log").order_by("-id")
    if status in WebhookDelivery.Status.values:
        deliveries = deliveries.filter(status=status)
    else:
        status = ""
    page = Paginator(deliveries, DELIVERIES_PER_PAGE).get_page(request.GET.get("page"))
    context = {"endpoint": endpoint, "page": page, "status": status, "statuses": WebhookDelivery.Status.choices}
    return render(request, "webhooks/endpoint_detail.html", context)


@require_POST
@_permitted(REPLAY)
def endpoint_replay(request: HttpRequest, pk: str) -> HttpResponse:
    endpoint = _endpoint(pk)
    if not endpoint.enabled:
        services.endpoint_enable(endpoint=endpoint)
    count = services.deliveries_replay(deliveries=endpoint.deliveries.all())
    messages.success(request, f"{count} dead-lettered deliver{'y' if count == 1 else 'ies'} sent again; endpoint enabled.")
    return redirect("webhooks:endpoint-detail", pk=endpoint.pk)


@require_POST
@_permitted(REPLAY)
def endpoint_resend_all(request: HttpRequest, pk: str) -> HttpResponse:
    endpoint = _endpoint(pk)
    services.endpoint_resend_all(endpoint=endpoint)
    messages.success(request, "Every customer and invoice will be sent to this endpoint as it is now.")
    return redirect("webhooks:endpoint-detail", pk=endpoint.pk)
