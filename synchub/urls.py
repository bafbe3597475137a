from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from sync.views import health, metrics
from synchub.docs import SwaggerUIView

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
    path("docs", SwaggerUIView.as_view(url_name="schema"), name="docs"),
    path("health", health, name="health"),
    path("metrics", metrics, name="metrics"),
]
