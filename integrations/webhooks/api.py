"""`/api/webhook-endpoints`: endpoints managed through the API, their deliveries browsable."""

from __future__ import annotations

from django.db.models import Count, Q
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from catalog.models import item_id_in_range

from . import services
from .models import WebhookDelivery, WebhookEndpoint
from .serializers import WebhookDeliverySerializer, WebhookEndpointSecretSerializer, WebhookEndpointSerializer

COUNT = inline_serializer("WebhookCount", {"count": serializers.IntegerField()})


class WebhookEndpointViewSet(viewsets.ModelViewSet):
    """Endpoints that hear of every catalog change (Standard Webhooks), and may send their own."""

    serializer_class = WebhookEndpointSerializer
    queryset = WebhookEndpoint.objects.annotate(
        pending=Count("deliveries", filter=Q(deliveries__status=WebhookDelivery.Status.PENDING))
    ).order_by("id")

    def get_object(self) -> WebhookEndpoint:
        if not item_id_in_range(self.kwargs[self.lookup_url_kwarg or self.lookup_field]):
            raise NotFound("No webhook endpoint matches the given query.")
        return super().get_object()

    @extend_schema(responses={201: WebhookEndpointSecretSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = services.endpoint_create(**serializer.validated_data)
        return Response(WebhookEndpointSecretSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    def perform_update(self, serializer: WebhookEndpointSerializer) -> None:
        serializer.instance = services.endpoint_update(endpoint=serializer.instance, **serializer.validated_data)

    @extend_schema(request=None, responses={200: WebhookEndpointSecretSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        """A new signing secret, shown once; the old one stays valid for WEBHOOKS_SECRET_GRACE_SECONDS."""
        endpoint = services.endpoint_rotate_secret(endpoint=self.get_object())
        return Response(WebhookEndpointSecretSerializer(endpoint).data)

    @extend_schema(request=None, responses={200: COUNT})
    @action(detail=True, methods=["post"])
    def replay(self, request: Request, pk: str | None = None) -> Response:
        """Send its dead-lettered deliveries again, in order (and enable it if it was disabled)."""
        endpoint = self.get_object()
        if not endpoint.enabled:
            services.endpoint_enable(endpoint=endpoint)
        return Response({"count": services.deliveries_replay(deliveries=endpoint.deliveries.all())})

    @extend_schema(request=None, responses={202: OpenApiResponse(description="Every item will be sent to it")})
    @action(detail=True, methods=["post"], url_path="resend-all")
    def resend_all(self, request: Request, pk: str | None = None) -> Response:
        """Send every customer and invoice, as it is now, to this endpoint (a new subscriber's backfill)."""
        services.endpoint_resend_all(endpoint=self.get_object())
        return Response(status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses=WebhookDeliverySerializer(many=True))
    @action(detail=True, methods=["get"])
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        """Its deliveries, newest first, each with its attempts (`?status=pending|succeeded|dead`)."""
        deliveries = self.get_object().deliveries.prefetch_related("attempt_log").order_by("-id")
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in WebhookDelivery.Status.values:
                return Response({"status": [f"One of {', '.join(WebhookDelivery.Status.values)}."]}, status=400)
            deliveries = deliveries.filter(status=wanted)
        page = self.paginate_queryset(deliveries)
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)
