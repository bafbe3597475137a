from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from sync.views import health, metrics

urlpatterns = [
    # First: the busiest endpoint (Stripe's webhook storms) should not be tried against every
    # other pattern before it matches.
    path("webhooks/", include("integrations.stripe.urls")),
    path("", include("console.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("catalog.urls")),
    path("api/", include("sync.urls")),
    path("api-auth/", include("rest_framework.urls")),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves Swagger UI's start-up script as a file of its own (`/docs?script`):
    # the Content-Security-Policy runs no inline script.
    path("docs", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="docs"),
    path("health", health, name="health"),
    path("metrics", metrics, name="metrics"),
]
