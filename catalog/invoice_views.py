"""/api/invoices: invoices of the local catalog, edited while drafts and moved along their
lifecycle by actions (finalize, void, mark-paid, mark-uncollectible). Thin: the rules are in
catalog/invoice_services.py; a rule's refusal is a 409 with {"detail": why}."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from synchub.api import Conflict
from synchub.filters import SearchFilter, StableOrderingFilter
from synchub.openapi import conflict_response
from synchub.permissions import ModelPermissions

from . import invoice_services
from .filters import InvoiceFilter
from .invoice_selectors import invoice_queryset
from .invoice_serializers import InvoiceSerializer
from .models import ITEM_ID_MAX, Invoice, item_id_in_range

INVOICE_ID = OpenApiParameter(
    "id",
    type={"type": "integer", "minimum": 1, "maximum": ITEM_ID_MAX},
    location=OpenApiParameter.PATH,
    description="The invoice's id; an id of no invoice (or out of this range) is a 404.",
)
NOT_A_DRAFT = conflict_response("The invoice is no longer a draft: only drafts can be changed.")
NOT_DELETABLE = conflict_response("The invoice is no longer a draft: void it instead of deleting it.")


def _transition_schema(action_name: str) -> dict:
    sources, target = invoice_services.TRANSITIONS[action_name]
    allowed = " or ".join(str(status) for status in sources)
    return {
        "request": None,
        "parameters": [INVOICE_ID],
        "responses": {
            200: InvoiceSerializer,
            409: conflict_response(
                f"The invoice is not {allowed}"
                + (", or has no line" if action_name == "finalize" else "")
                + f": it cannot become {target}."
            ),
        },
        "description": f"Moves an invoice that is {allowed} to {target}.",
    }


class TransitionPermissions(ModelPermissions):
    """A lifecycle action changes the invoice: it needs "change", not the "add" of a POST."""

    perms_map = {**ModelPermissions.perms_map, "POST": ["%(app_label)s.change_%(model_name)s"]}


@contextmanager
def _as_conflict() -> Iterator[None]:
    try:
        yield
    except invoice_services.InvoiceStateError as exc:
        raise Conflict(str(exc)) from exc


@extend_schema_view(
    retrieve=extend_schema(parameters=[INVOICE_ID]),
    update=extend_schema(parameters=[INVOICE_ID], responses={200: InvoiceSerializer, 409: NOT_A_DRAFT}),
    partial_update=extend_schema(parameters=[INVOICE_ID], responses={200: InvoiceSerializer, 409: NOT_A_DRAFT}),
    destroy=extend_schema(parameters=[INVOICE_ID], responses={204: None, 409: NOT_DELETABLE}),
)
class InvoiceViewSet(viewsets.ModelViewSet):
    """Invoices of the local catalog. Drafts are created, edited and deleted here; the actions
    move an invoice along its lifecycle. Every change is pushed to the integrations."""

    serializer_class = InvoiceSerializer
    queryset = invoice_queryset().order_by("-id")
    filter_backends = [DjangoFilterBackend, SearchFilter, StableOrderingFilter]
    filterset_class = InvoiceFilter
    search_fields = ["number", "description", "customer__name", "customer__email"]
    ordering_fields = ["id", "number", "status", "total", "due_date", "created_at", "updated_at"]

    _invoice: Invoice | None = None

    def get_object(self) -> Invoice:
        # Read once per request: `update` looks at the state before DRF's update reads it.
        if self._invoice is None:
            # As CustomerViewSet: an id beyond BigAutoField's range is a 404 without a query.
            if not item_id_in_range(self.kwargs[self.lookup_url_kwarg or self.lookup_field]):
                raise NotFound("No Invoice matches the given query.")
            self._invoice = super().get_object()
        return self._invoice

    def update(self, request: Request, *args, **kwargs) -> Response:
        # The state first: a change of anything but a draft is a 409, whatever the body holds.
        with _as_conflict():
            invoice_services.invoice_require_draft(invoice=self.get_object())
        return super().update(request, *args, **kwargs)

    def perform_create(self, serializer: InvoiceSerializer) -> None:
        serializer.instance = invoice_services.invoice_create(**serializer.validated_data)

    def perform_update(self, serializer: InvoiceSerializer) -> None:
        with _as_conflict():  # finalized meanwhile
            invoice_services.invoice_update(invoice=serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance: Invoice) -> None:
        with _as_conflict():
            invoice_services.invoice_delete(invoice=instance)

    def _transition(self, action_name: str) -> Response:
        invoice = self.get_object()
        with _as_conflict():
            invoice_services.invoice_transition(invoice=invoice, action=action_name)
        return Response(self.get_serializer(invoice).data)

    @extend_schema(**_transition_schema("finalize"))
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated, TransitionPermissions])
    def finalize(self, request: Request, pk: str | None = None) -> Response:
        return self._transition("finalize")

    @extend_schema(**_transition_schema("void"))
    @action(detail=True, methods=["post"], permission_classes=[IsAuthenticated, TransitionPermissions])
    def void(self, request: Request, pk: str | None = None) -> Response:
        return self._transition("void")

    @extend_schema(**_transition_schema("mark_paid"))
    @action(
        detail=True, methods=["post"], url_path="mark-paid", permission_classes=[IsAuthenticated, TransitionPermissions]
    )
    def mark_paid(self, request: Request, pk: str | None = None) -> Response:
        return self._transition("mark_paid")

    @extend_schema(**_transition_schema("mark_uncollectible"))
    @action(
        detail=True,
        methods=["post"],
        url_path="mark-uncollectible",
        permission_classes=[IsAuthenticated, TransitionPermissions],
    )
    def mark_uncollectible(self, request: Request, pk: str | None = None) -> Response:
        return self._transition("mark_uncollectible")
