from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import path, register_converter
from django.views.generic import RedirectView

from catalog.converters import ItemIdConverter

from . import invoice_views, item_views, problem_views, views

app_name = "console"
register_converter(ItemIdConverter, "item_id")

urlpatterns = [
    # The admin's form: it refuses non-staff accounts with a clear message.
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="console/login.html", authentication_form=AdminAuthenticationForm),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.dashboard, name="dashboard"),
    path("console/stats.json", views.stats, name="stats"),
    path("customers/", views.customer_list, name="customer-list"),
    path("customers/statuses.json", views.customer_statuses, name="customer-statuses"),
    path("customers/new/", views.customer_create, name="customer-create"),
    path("customers/<item_id:pk>/", item_views.customer_detail, name="customer-detail"),
    path("customers/<item_id:pk>/edit/", views.customer_edit, name="customer-edit"),
    path("customers/<item_id:pk>/delete/", views.customer_delete, name="customer-delete"),
    path("customers/<item_id:pk>/resync/", item_views.item_resync, name="customer-resync"),
    path("invoices/", invoice_views.invoice_list, name="invoice-list"),
    path("invoices/new/", invoice_views.invoice_create, name="invoice-create"),
    path("invoices/<item_id:pk>/", invoice_views.invoice_detail, name="invoice-detail"),
    path("invoices/<item_id:pk>/edit/", invoice_views.invoice_edit, name="invoice-edit"),
    path("invoices/<item_id:pk>/delete/", invoice_views.invoice_delete, name="invoice-delete"),
    path("invoices/<item_id:pk>/<slug:action>/", invoice_views.invoice_transition, name="invoice-transition"),
    path("integrations/", views.integration_list, name="integration-list"),
    path("items/<item_id:pk>/", item_views.item_detail, name="item-detail"),
    path("items/<item_id:pk>/resync/", item_views.item_resync, name="item-resync"),
    path("search/", item_views.item_search, name="search"),
    path("problems/dead-letters/", problem_views.dead_letter_list, name="dead-letter-list"),
    path("problems/dead-letters/<item_id:pk>/", problem_views.dead_letter_detail, name="dead-letter-detail"),
    path("problems/dead-letters/replay/", problem_views.dead_letter_replay, name="dead-letter-replay"),
    path("problems/conflicts/", problem_views.conflict_list, name="conflict-list"),
    path("problems/conflicts/<item_id:pk>/resolve/", problem_views.conflict_resolve_view, name="conflict-resolve"),
    # Browsers ask for /favicon.ico on every page, the admin's included: answer, not 404.
    path("favicon.ico", RedirectView.as_view(url=static("console/favicon.svg"), permanent=True)),
]
