"""/docs: Swagger UI, behind the same login as the schema it shows."""

from django.contrib.auth.views import redirect_to_login
from django.urls import reverse
from drf_spectacular.views import SpectacularSwaggerSplitView
from rest_framework import exceptions


class SwaggerUIView(SpectacularSwaggerSplitView):
    """drf-spectacular's split Swagger UI: its start-up script is a file of its own (`/docs?script`),
    as the Content-Security-Policy runs no inline script. Who may see it is SPECTACULAR_SETTINGS'
    SERVE_PERMISSIONS (signed-in users, unless API_DOCS_PUBLIC), as for /api/schema.

    A signed-out browser is sent to the login page and back rather than shown a bare 401: DRF's
    login (`api-auth/`), which takes any user the API takes, where the console's takes only staff.
    """

    def handle_exception(self, exc: Exception):
        if isinstance(exc, exceptions.NotAuthenticated) and "script" not in self.request.GET:
            return redirect_to_login(self.request.get_full_path(), login_url=reverse("rest_framework:login"))
        return super().handle_exception(exc)
