from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_filters.rest_framework import DjangoFilterBackend
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework import filters, generics

from .filters import SyncEventFilter
from .health import run_health_checks
from .metrics import render_metrics
from .models import SyncEvent
from .serializers import SyncEventSerializer


class SyncEventListView(generics.ListAPIView):
    """The audit trail: every sync operation the workers ran, newest first."""

    serializer_class = SyncEventSerializer
    queryset = SyncEvent.objects.order_by("-id")
    filterset_class = SyncEventFilter
    filter_backends = [DjangoFilterBackend, filters.OrderingFilter]
    ordering_fields = ["id", "created_at", "duration_ms"]


# No request transaction: with the database down, /health must still answer (503).
@transaction.non_atomic_requests
@never_cache
@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """200 when the database, Kafka and every integration answer; 503 with details otherwise."""
    ok, checks = run_health_checks(timeout=settings.HEALTH_CHECK_TIMEOUT_SECONDS)
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)


@transaction.non_atomic_requests
@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)
