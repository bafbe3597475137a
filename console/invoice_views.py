"""The console's invoice pages: list, detail with the lifecycle buttons, and draft forms.

Thin, as console/views.py: reads through catalog.invoice_selectors, writes through
catalog.invoice_services; a rule's refusal (no longer a draft) is a message, never a 500.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from catalog import invoice_selectors, invoice_services
from catalog.invoice_forms import invoice_form_save
from catalog.models import Customer, Invoice, InvoiceStatus
from synchub.permissions import model_permission

from .invoice_forms import InvoiceForm
from .item_views import item_story
from .views import CUSTOMERS_PER_PAGE, _next_url, console_permission, search_term

VIEW_INVOICES = model_permission(Invoice, "view")
CHANGE_INVOICES = model_permission(Invoice, "change")
# The customers offered as suggestions in the invoice form (the most recently updated): the
# field takes any customer's id, so a long catalog is not sent whole with every form.
CUSTOMER_SUGGESTIONS = 200
# URL slug -> service action, and the button's words.
ACTIONS = {
    "finalize": ("finalize", "Finalize"),
    "mark-paid": ("mark_paid", "Mark paid"),
    "mark-uncollectible": ("mark_uncollectible", "Mark uncollectible"),
    "void": ("void", "Void"),
}
SLUGS = {action: slug for slug, (action, _) in ACTIONS.items()}


def _invoice_or_404(pk: int) -> Invoice:
    invoice = invoice_selectors.invoice_get(invoice_id=pk)
    if invoice is None:
        raise Http404("No such invoice.")
    return invoice


@require_GET
@console_permission(VIEW_INVOICES)
def invoice_list(request: HttpRequest) -> HttpResponse:
    search = search_term(request)
    status = request.GET.get("status", "")
    if status not in InvoiceStatus.values:
        status = ""
    invoices = invoice_selectors.invoice_list(search=search, status=status, ordering="-updated_at")
    context = {
        "page": Paginator(invoices, CUSTOMERS_PER_PAGE).get_page(request.GET.get("page")),
        "search": search,
        "status": status,
        "statuses": InvoiceStatus.choices,
    }
    return render(request, "console/invoice_list.html", context)


@require_GET
@console_permission(VIEW_INVOICES)
def invoice_detail(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _invoice_or_404(pk)
    lines = [{**line, "amount": line["quantity"] * line["unit_amount"]} for line in invoice.lines]
    actions = [
        {"slug": SLUGS[action], "label": ACTIONS[SLUGS[action]][1]}
        for action in invoice_services.invoice_allowed_actions(invoice=invoice)
    ]
    context = {
        "invoice": invoice,
        "lines": lines,
        "actions": actions,
        "is_draft": invoice.status == InvoiceStatus.DRAFT,
        **item_story(item_id=invoice.pk),
    }
    return render(request, "console/invoice_detail.html", context)


def _form_response(request: HttpRequest, form: InvoiceForm, invoice: Invoice | None) -> HttpResponse:
    suggestions = Customer.objects.non_polymorphic().order_by("-updated_at", "-id")[:CUSTOMER_SUGGESTIONS]
    back = reverse("console:invoice-detail", args=[invoice.pk]) if invoice else reverse("console:invoice-list")
    context = {
        "form": form,
        "invoice": invoice,
        "customers": suggestions.values("pk", "name", "email"),
        "action": reverse("console:invoice-edit", args=[invoice.pk]) if invoice else reverse("console:invoice-create"),
        "title": f"Edit {invoice}" if invoice else "New invoice",
        "next": _next_url(request, back),
    }
    return render(request, "console/invoice_form.html", context)


@require_http_methods(["GET", "POST"])
@console_permission(model_permission(Invoice, "add"))
def invoice_create(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        initial = {"customer": request.GET["customer"]} if request.GET.get("customer", "").isdigit() else {}
        return _form_response(request, InvoiceForm(initial=initial), None)
    form = InvoiceForm(request.POST)
    saved = invoice_form_save(form, None) if form.is_valid() else None
    if saved is None:
        return _form_response(request, form, None)
    messages.success(request, f"Draft invoice {saved.pk} created.")
    return redirect("console:invoice-detail", pk=saved.pk)


@require_http_methods(["GET", "POST"])
@console_permission(CHANGE_INVOICES)
def invoice_edit(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _invoice_or_404(pk)
    if invoice.status != InvoiceStatus.DRAFT:
        messages.error(request, f"Only a draft invoice can be changed; this one is {invoice.status}.")
        return redirect("console:invoice-detail", pk=invoice.pk)
    if request.method == "GET":
        return _form_response(request, InvoiceForm(instance=invoice), invoice)
    form = InvoiceForm(request.POST, instance=invoice)
    saved = invoice_form_save(form, invoice) if form.is_valid() else None
    if saved is None:
        return _form_response(request, form, invoice)
    messages.success(request, f"Invoice {saved.pk} saved.")
    return redirect(_next_url(request, reverse("console:invoice-detail", args=[saved.pk])))


@require_http_methods(["GET", "POST"])
@console_permission(model_permission(Invoice, "delete"))
def invoice_delete(request: HttpRequest, pk: int) -> HttpResponse:
    invoice = _invoice_or_404(pk)
    if request.method == "GET":
        return render(request, "console/invoice_confirm_delete.html", {"invoice": invoice})
    try:
        invoice_services.invoice_delete(invoice=invoice)
    except invoice_services.InvoiceStateError as exc:
        messages.error(request, str(exc))
        return redirect("console:invoice-detail", pk=invoice.pk)
    messages.success(request, f"Draft invoice {pk} deleted.")
    return redirect("console:invoice-list")


@require_POST
@console_permission(CHANGE_INVOICES)
def invoice_transition(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    if action not in ACTIONS:
        raise Http404("No such action.")
    invoice = _invoice_or_404(pk)
    service_action, _ = ACTIONS[action]
    try:
        invoice_services.invoice_transition(invoice=invoice, action=service_action)
    except invoice_services.InvoiceStateError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Invoice {invoice} {invoice_services.ACTION_VERBS[service_action]}.")
    return redirect("console:invoice-detail", pk=invoice.pk)
