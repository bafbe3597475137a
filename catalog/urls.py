from django.urls import path
from rest_framework.routers import SimpleRouter

from .invoice_views import InvoiceViewSet
from .views import CustomerViewSet, IntegrationListView

router = SimpleRouter(trailing_slash=False)
router.register("customers", CustomerViewSet, basename="customer")
router.register("invoices", InvoiceViewSet, basename="invoice")

urlpatterns = [
    path("integrations", IntegrationListView.as_view(), name="integration-list"),
    *router.urls,
]
