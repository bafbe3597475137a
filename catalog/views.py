from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from synchub.api import Conflict
from synchub.filters import SearchFilter, StableOrderingFilter
from synchub.openapi import conflict_response
from synchub.permissions import BulkWritePermissions

from . import services
from .bulk import MAX_ROWS, customers_bulk_save
from .filters import CustomerFilter, IntegrationFilter
from .models import ITEM_ID_MAX, CatalogIntegration, Customer, SyncStatus, catalog_child_relations, item_id_in_range
from .serializers import (
    CustomerBulkResponseSerializer,
    CustomerBulkSerializer,
    CustomerIntegrationStatusSerializer,
    CustomerSerializer,
    IntegrationSerializer,
)

CUSTOMER_ID = OpenApiParameter(
    "id",
    type={"type": "integer", "minimum": 1, "maximum": ITEM_ID_MAX},
    location=OpenApiParameter.PATH,
    description="The customer's id; an id of no customer (or out of this range) is a 404.",
)


@extend_schema_view(
    **{
        name: extend_schema(parameters=[CUSTOMER_ID])
        for name in ("retrieve", "update", "partial_update", "integration_status")
    },
    destroy=extend_schema(
        parameters=[CUSTOMER_ID],
        responses={
            204: None,
            409: conflict_response("The customer has invoices: it cannot be deleted while it has any."),
        },
    ),
)
class CustomerViewSet(viewsets.ModelViewSet):
    """Customers of the local catalog. Every change is pushed to the integrations (Stripe)."""

    serializer_class = CustomerSerializer
    queryset = Customer.objects.non_polymorphic().order_by("-id")
    filter_backends = [DjangoFilterBackend, SearchFilter, StableOrderingFilter]
    filterset_class = CustomerFilter
    search_fields = ["name", "email"]
    ordering_fields = ["id", "name", "email", "created_at", "updated_at"]

    def get_object(self) -> Customer:
        # Looking up an id beyond BigAutoField's range overflows in the database (a 500); no
        # customer can have it, so it is a 404 without a query.
        if not item_id_in_range(self.kwargs[self.lookup_url_kwarg or self.lookup_field]):
            raise NotFound("No Customer matches the given query.")
        return super().get_object()

    def perform_create(self, serializer: CustomerSerializer) -> None:
        serializer.instance = services.customer_create(**serializer.validated_data)

    def perform_update(self, serializer: CustomerSerializer) -> None:
        services.customer_update(customer=serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance: Customer) -> None:
        try:
            services.customer_delete(customer=instance)
        except services.CustomerHasInvoices as exc:
            raise Conflict(str(exc)) from exc

    @extend_schema(request=CustomerBulkSerializer, responses=CustomerBulkResponseSerializer)
    @action(detail=False, methods=["post"], url_path="bulk", permission_classes=[IsAuthenticated, BulkWritePermissions])
    def bulk(self, request: Request) -> Response:
        """Create (rows without `id`) or update (rows with `id`) up to 1000 customers; valid rows are
        saved, invalid ones reported with their field errors, and no row is half-saved."""
        rows = request.data.get("customers") if isinstance(request.data, dict) else request.data
        if not isinstance(rows, list):
            return Response({"customers": ["Expected a list of customers."]}, status=status.HTTP_400_BAD_REQUEST)
        if len(rows) > MAX_ROWS:
            return Response({"customers": [f"At most {MAX_ROWS} rows per call."]}, status=status.HTTP_400_BAD_REQUEST)
        results = customers_bulk_save(rows=rows)
        counts = {outcome: sum(r["status"] == outcome for r in results) for outcome in ("created", "updated", "error")}
        return Response(
            {"created": counts["created"], "updated": counts["updated"], "failed": counts["error"], "results": results}
        )

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
    queryset = CatalogIntegration.objects.order_by("-id")
    filter_backends = [DjangoFilterBackend, SearchFilter, StableOrderingFilter]
    filterset_class = IntegrationFilter
    search_fields = ["integration_id", "catalog_item__customer__name", "catalog_item__customer__email"]
    ordering_fields = ["id", "status", "last_synced_at", "created_at"]

    def get_queryset(self):
        # Each row's item as its own catalog type, in the same query.
        relations = (f"catalog_item__{relation}" for relation in catalog_child_relations())
        return super().get_queryset().select_related(*relations)
