import hmac
import logging

from django.conf import settings
from django.db import DatabaseError, transaction
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

logger = logging.getLogger(__name__)


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
    """200 when the database, Kafka and every integration answer; 503 otherwise.

    Anyone (a load balancer) gets the status only: a failing check's error names internal hosts
    and ports. The errors go to the log, and each check's result to staff and to callers with
    the health token.
    """
    ok, checks = run_health_checks(timeout=settings.HEALTH_CHECK_TIMEOUT_SECONDS)
    for name, result in checks.items():
        if not result["ok"]:
            logger.warning("health check %s failed: %s", name, result["error"])
    body = {"status": "ok" if ok else "unavailable"}
    if may_see_health_details(request, database_up=checks.get("database", {}).get("ok", False)):
        body["checks"] = checks
    return JsonResponse(body, status=200 if ok else 503)


def may_see_health_details(request: HttpRequest, *, database_up: bool) -> bool:
    """A caller with HEALTH_TOKEN (`Authorization: Bearer …` or `X-Health-Token: …`), or staff
    signed in to the console or the admin."""
    expected = settings.HEALTH_TOKEN
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    presented = credentials.strip() if scheme.lower() == "bearer" else request.headers.get("X-Health-Token", "")
    if expected and presented and hmac.compare_digest(presented.encode(), expected.encode()):
        return True
    # Who is signed in is a session lookup in the database: tried only with a session cookie and
    # the database up, so that /health neither fails nor waits on it when the database is down.
    if not database_up or settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return False
    try:
        return request.user.is_active and request.user.is_staff
    except DatabaseError:
        return False


@transaction.non_atomic_requests
@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)
