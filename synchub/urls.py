from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from sync.views import health, metrics

urlpatterns = [
    path("", include("console.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("catalog.urls")),
    path("api/", include("sync.urls")),
    path("api-auth/", include("rest_framework.urls")),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("webhooks/", include("integrations.stripe.urls")),
    path("health", health, name="health"),
    path("metrics", metrics, name="metrics"),
]
