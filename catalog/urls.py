from django.urls import path
from rest_framework.routers import SimpleRouter

from .views import CustomerViewSet, IntegrationListView

router = SimpleRouter(trailing_slash=False)
router.register("customers", CustomerViewSet, basename="customer")

urlpatterns = [
    path("integrations", IntegrationListView.as_view(), name="integration-list"),
    *router.urls,
]
