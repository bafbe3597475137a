from django_filters.rest_framework import DjangoFilterBackend
from rest_framework import filters, generics

from .filters import SyncEventFilter
from .models import SyncEvent
from .serializers import SyncEventSerializer


class SyncEventListView(generics.ListAPIView):
    """The audit trail: every sync operation the workers ran, newest first."""

    serializer_class = SyncEventSerializer
    queryset = SyncEvent.objects.order_by("-id")
    filterset_class = SyncEventFilter
    filter_backends = [DjangoFilterBackend, filters.OrderingFilter]
    ordering_fields = ["id", "created_at", "duration_ms"]
