from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework import filters, generics, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from . import services
from .models import CatalogIntegration, Customer, SyncStatus
from .serializers import CustomerIntegrationStatusSerializer, CustomerSerializer, IntegrationSerializer


class CustomerViewSet(viewsets.ModelViewSet):
    """Customers of the local catalog. Every change is pushed to the integrations (Stripe)."""

    serializer_class = CustomerSerializer
    queryset = Customer.objects.non_polymorphic().order_by("-id")
    filter_backends = [DjangoFilterBackend, filters.SearchFilter, filters.OrderingFilter]
    search_fields = ["name", "email"]
    ordering_fields = ["id", "name", "email", "created_at", "updated_at"]

    def perform_create(self, serializer: CustomerSerializer) -> None:
        serializer.instance = services.customer_create(**serializer.validated_data)

    def perform_update(self, serializer: CustomerSerializer) -> None:
        services.customer_update(customer=serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance: Customer) -> None:
        services.customer_delete(customer=instance)

    @extend_schema(responses=CustomerIntegrationStatusSerializer)
    @action(detail=True, methods=["get"], url_path="integration-status")
    def integration_status(self, request: Request, pk: str | None = None) -> Response:
        customer = self.get_object()
        mappings = list(customer.integrations.order_by("integration_type"))
        synced = bool(mappings) and all(m.status == SyncStatus.SYNCED and m.integration_id for m in mappings)
        data = {"customer_id": customer.pk, "synced": synced, "integrations": mappings}
        return Response(CustomerIntegrationStatusSerializer(data).data)


class IntegrationListView(generics.ListAPIView):
    """Every mapping between a catalog item and an external system, with its sync state."""

    serializer_class = IntegrationSerializer
    queryset = CatalogIntegration.objects.select_related("catalog_item__customer").order_by("-id")
    filter_backends = [DjangoFilterBackend, filters.OrderingFilter]
    filterset_fields = ["integration_type", "status"]
    ordering_fields = ["id", "status", "last_synced_at", "created_at"]
