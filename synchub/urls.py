from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from sync.integrations import api_urlpatterns, staff_urlpatterns, webhook_urlpatterns
from sync.views import health, metrics
from synchub.docs import SwaggerUIView

urlpatterns = [
    # First: the busiest endpoints (webhook storms) should not be tried against every other
    # pattern before they match. Each integration brings its own (its contract's webhook_urls).
    path("webhooks/", include(webhook_urlpatterns())),
    path("", include("console.urls")),
    *staff_urlpatterns(),
    path("admin/", admin.site.urls),
    path("api/", include("catalog.urls")),
    path("api/", include("sync.urls")),
    path("api/", include(api_urlpatterns())),
    path("api-auth/", include("rest_framework.urls")),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SwaggerUIView.as_view(url_name="schema"), name="docs"),
    path("health", health, name="health"),
    path("metrics", metrics, name="metrics"),
]
