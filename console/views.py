"""The staff console: thin views over catalog selectors (reads) and services (writes).

Forms work without JavaScript (full pages and redirects); console.js upgrades them to modals,
which send `X-Requested-With: fetch` and get fragments or JSON back.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import permission_required, user_passes_test
from django.core.cache import cache
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods

from catalog import selectors, services
from catalog.models import CatalogIntegration, Customer, SyncStatus, item_id_in_range
from sync.activity import sync_activity
from sync.conflicts import conflicts_open_count
from sync.dead_letters import dead_letters_pending
from sync.integrations import integration_label
from sync.models import DeadLetter, SyncConflict
from synchub.permissions import model_permission

from .activity_chart import activity_chart
from .forms import CustomerForm
from .presentation import STATUS_COLOURS, customer_integration, status_badge_class, status_chart, status_label

CUSTOMERS_PER_PAGE = 20
INTEGRATIONS_PER_PAGE = 50
RECENT_ACTIVITY = 10
# Sort keys of the customers table -> ORDER BY.
CUSTOMER_SORTS = {
    "name": "name",
    "email": "email",
    "phone": "phone",
    "country": "address_country",
    "updated": "updated_at",
}
# The table's sortable columns, in order: key, header.
CUSTOMER_COLUMNS = [
    ("name", "Name"),
    ("email", "Email"),
    ("phone", "Phone"),
    ("country", "Country"),
    ("updated", "Updated"),
]
DEFAULT_CUSTOMER_SORT = "-updated"
MAX_STATUS_IDS = 200
RESYNCABLE_STATUSES = (SyncStatus.FAILED.value, selectors.UNSYNCED)

# Anonymous and non-staff users alike go to the login page.
staff_required = user_passes_test(lambda user: user.is_active and user.is_staff)

VIEW_CUSTOMERS = model_permission(Customer, "view")
VIEW_MAPPINGS = model_permission(CatalogIntegration, "view")


def console_permission(*permissions: str):
    """Staff only (others go to the login page), holding `permissions` (else 403): the console
    allows what the user's Django permissions allow, as the API does."""

    def decorator(view):
        return staff_required(permission_required(permissions, raise_exception=True)(view))

    return decorator


def _is_fetch(request: HttpRequest) -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


def search_term(request: HttpRequest) -> str:
    """The `q` of a table's search box. No text column can hold a NUL character (PostgreSQL
    refuses even to compare with one)."""
    return request.GET.get("q", "").replace("\x00", "").strip()


def _next_url(request: HttpRequest, default: str) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default


# --- Dashboard ----------------------------------------------------------------------------------


def _catalog_counts(integration: str) -> list[dict]:
    """The per-type sync counts, shared by every viewer for CONSOLE_COUNTS_CACHE_SECONDS: the
    count reads the whole catalog, and each open dashboard asks again every 3 s."""
    def count() -> list[dict]:
        return selectors.catalog_sync_counts_by_type(integration_type=integration)

    seconds = settings.CONSOLE_COUNTS_CACHE_SECONDS
    return cache.get_or_set(f"console:catalog-counts:{integration}", count, seconds) if seconds > 0 else count()


def _dashboard_context(user) -> dict:
    integration = customer_integration()
    by_type = _catalog_counts(integration)
    # The customers' totals are their row of the per-type counts: one snapshot, one query.
    customer_row = next(row for row in by_type if row["catalog_type"] == Customer.catalog_type_name())
    counts = {"customers": customer_row["total"], **dict(customer_row["counts"])}
    recent = selectors.customer_list(integration_type=integration, ordering="-updated_at")[:RECENT_ACTIVITY]
    customers_url = reverse("console:customer-list")
    totals = [
        {
            "key": "customers",
            "label": "Customers",
            "colour": "primary",
            "value": counts["customers"],
            "url": customers_url,
        }
    ] + [
        {
            "key": status,
            "label": status_label(status),
            "colour": STATUS_COLOURS[status],
            "value": counts[status],
            "url": f"{customers_url}?status={status}",
        }
        for status in selectors.CUSTOMER_SYNC_STATUS_VALUES
    ]
    return {
        "counts": counts,
        "totals": totals,
        "chart": status_chart(counts),
        "by_type": by_type,
        "statuses": selectors.CUSTOMER_SYNC_STATUSES,
        "integration_label": integration_label(integration),
        "recent": recent,
        "problems": _problem_counts(user),
        **activity_chart(sync_activity()),
        "updated_at": timezone.now(),
    }


def _problem_counts(user) -> list[dict]:
    """The problems pages' counts the user may see, each linking to its page."""
    problems = []
    if user.has_perm(model_permission(DeadLetter, "view")):
        problems.append(
            {
                "key": "dead_letters",
                "label": "Dead letters",
                "colour": "danger",
                "value": dead_letters_pending().count(),
                "url": reverse("console:dead-letter-list"),
            }
        )
    if user.has_perm(model_permission(SyncConflict, "view")):
        problems.append(
            {
                "key": "conflicts",
                "label": "Open conflicts",
                "colour": "warning",
                "value": conflicts_open_count(),
                "url": reverse("console:conflict-list"),
            }
        )
    return problems


@require_GET
@console_permission(VIEW_CUSTOMERS)
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "console/dashboard.html", _dashboard_context(request.user))


@require_GET
@console_permission(VIEW_CUSTOMERS)
def stats(request: HttpRequest) -> JsonResponse:
    """The dashboard's figures for its live refresh, with the chart and activity list rendered
    here so that the page and its updates share one template."""
    context = _dashboard_context(request.user)
    return JsonResponse(
        {
            "counts": context["counts"],
            "problems": {problem["key"]: problem["value"] for problem in context["problems"]},
            "activity_html": render_to_string("console/_activity.html", context, request=request),
            "updated_at": context["updated_at"].isoformat(),
            "chart_html": render_to_string("console/_chart.html", context, request=request),
            "recent_html": render_to_string("console/_recent.html", context, request=request),
            "by_type_html": render_to_string("console/_by_type.html", context, request=request),
        }
    )


# --- Customers ----------------------------------------------------------------------------------


def _customer_sort(request: HttpRequest) -> str:
    sort = request.GET.get("sort", DEFAULT_CUSTOMER_SORT)
    return sort if sort.lstrip("-") in CUSTOMER_SORTS else DEFAULT_CUSTOMER_SORT


def _sort_columns(sort: str) -> list[dict[str, str]]:
    """Header links: clicking the sorted column flips its direction; aria-sort tells which."""
    columns = []
    for key, label in CUSTOMER_COLUMNS:
        if sort == key:
            columns.append({"key": key, "label": label, "next": f"-{key}", "aria_sort": "ascending"})
        elif sort == f"-{key}":
            columns.append({"key": key, "label": label, "next": key, "aria_sort": "descending"})
        else:
            columns.append({"key": key, "label": label, "next": key, "aria_sort": "none"})
    return columns


@require_GET
@console_permission(VIEW_CUSTOMERS)
def customer_list(request: HttpRequest) -> HttpResponse:
    search = search_term(request)
    status = request.GET.get("status", "")
    if status not in selectors.CUSTOMER_SYNC_STATUS_VALUES:
        status = ""
    sort = _customer_sort(request)
    field = CUSTOMER_SORTS[sort.lstrip("-")]
    customers = selectors.customer_list(
        integration_type=customer_integration(),
        search=search,
        status=status,
        ordering=f"-{field}" if sort.startswith("-") else field,
    )
    page = Paginator(customers, CUSTOMERS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "console/customer_list.html",
        {
            "page": page,
            "search": search,
            "status": status,
            "sort": sort,
            "columns": _sort_columns(sort),
            "statuses": selectors.CUSTOMER_SYNC_STATUSES,
            "failed": SyncStatus.FAILED,
            # Failed, or deleted in Stripe (unlinked): a staff resync sends it (again) on purpose.
            "resyncable": RESYNCABLE_STATUSES,
        },
    )


@require_GET
@console_permission(VIEW_CUSTOMERS)
def customer_statuses(request: HttpRequest) -> HttpResponse:
    """Sync status of the customers shown on a page (`?ids=1,2,3`), polled by the table."""
    try:
        ids = [int(value) for value in request.GET.get("ids", "").split(",") if value][:MAX_STATUS_IDS]
    except ValueError:
        return HttpResponseBadRequest("ids: comma-separated integers")
    ids = [value for value in ids if item_id_in_range(value)]  # no customer has another; the look-up overflows
    statuses = selectors.customer_sync_statuses(integration_type=customer_integration(), ids=ids)
    return JsonResponse(
        {
            "statuses": {
                str(pk): {**row, "label": status_label(row["status"]), "badge_class": status_badge_class(row["status"])}
                for pk, row in statuses.items()
            }
        }
    )


def _customer_form_response(request: HttpRequest, form: CustomerForm) -> HttpResponse:
    customer = form.instance
    context = {
        "form": form,
        "customer": customer,
        "action": reverse("console:customer-edit", args=[customer.pk])
        if customer
        else reverse("console:customer-create"),
        "title": f"Edit {customer}" if customer else "Add customer",
        "modal": _is_fetch(request),
        "next": _next_url(request, reverse("console:customer-list")),
    }
    template = "console/_customer_form.html" if _is_fetch(request) else "console/customer_form.html"
    return render(request, template, context)


def _customer_form_view(request: HttpRequest, customer: Customer | None) -> HttpResponse:
    if request.method == "GET":
        return _customer_form_response(request, CustomerForm(instance=customer))
    form = CustomerForm(request.POST, instance=customer)
    saved = form.save() if form.is_valid() else None
    if saved is None:
        # 200 like any re-rendered Django form: browsers log 4xx fetches as console errors.
        # The modal tells the outcomes apart by type: HTML is the form again, JSON is saved.
        return _customer_form_response(request, form)
    messages.success(request, f"Customer “{saved}” {'saved' if customer else 'created'}; syncing.")
    if _is_fetch(request):
        return JsonResponse({"id": saved.pk}, status=200 if customer else 201)
    return redirect(_next_url(request, reverse("console:customer-list")))


@require_http_methods(["GET", "POST"])
@console_permission(model_permission(Customer, "add"))
def customer_create(request: HttpRequest) -> HttpResponse:
    return _customer_form_view(request, None)


@require_http_methods(["GET", "POST"])
@console_permission(model_permission(Customer, "change"))
def customer_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _customer_form_view(request, get_object_or_404(Customer.objects.non_polymorphic(), pk=pk))


@require_http_methods(["GET", "POST"])
@console_permission(model_permission(Customer, "delete"))
def customer_delete(request: HttpRequest, pk: int) -> HttpResponse:
    customer = get_object_or_404(Customer.objects.non_polymorphic(), pk=pk)
    next_url = _next_url(request, reverse("console:customer-list"))
    if request.method == "GET":
        return render(request, "console/customer_confirm_delete.html", {"customer": customer, "next": next_url})
    name = str(customer)
    try:
        services.customer_delete(customer=customer)
    except services.CustomerHasInvoices as exc:
        messages.error(request, f"Customer “{name}” was not deleted. {exc}")
        return redirect(next_url)
    messages.success(request, f"Customer “{name}” deleted.")
    return redirect(next_url)


# --- Integrations -------------------------------------------------------------------------------


@require_GET
@console_permission(VIEW_MAPPINGS)
def integration_list(request: HttpRequest) -> HttpResponse:
    integration_types = selectors.integration_types()
    integration_type = request.GET.get("type", "")
    if integration_type not in integration_types:
        integration_type = ""
    status = request.GET.get("status", "")
    if status not in SyncStatus.values:
        status = ""
    mappings = selectors.integration_list(integration_type=integration_type, status=status)
    context = {
        "page": Paginator(mappings, INTEGRATIONS_PER_PAGE).get_page(request.GET.get("page")),
        "integration_types": integration_types,
        "integration_type": integration_type,
        "statuses": SyncStatus.choices,
        "status": status,
        "updated_at": timezone.now(),
    }
    # The auto-refresh asks for the table alone.
    template = "console/_integration_table.html" if request.GET.get("partial") else "console/integration_list.html"
    return render(request, template, context)
