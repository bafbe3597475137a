"""Invoices, the second catalog type: services (totals, lifecycle, drafts only), the API, the
Django admin and the staff console."""

from __future__ import annotations

import itertools
import re

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models.signals import post_save
from rest_framework.test import APIClient

from catalog import invoice_services
from catalog.invoice_services import InvoiceStateError
from catalog.models import CatalogItem, Customer, Invoice, InvoiceStatus
from catalog.services import CustomerHasInvoices, customer_delete
from sync.groups import VIEWERS

from .factories import CustomerFactory, InvoiceFactory

pytestmark = pytest.mark.django_db

LINE = {"description": "Consulting", "quantity": 3, "unit_amount": 12500}
ALL_ACTIONS = ["finalize", "void", "mark_paid", "mark_uncollectible"]
# (from, action) -> to: Stripe's invoice lifecycle; every other pair is refused.
ALLOWED = {
    ("draft", "finalize"): "open",
    ("open", "void"): "void",
    ("uncollectible", "void"): "void",
    ("open", "mark_paid"): "paid",
    ("uncollectible", "mark_paid"): "paid",
    ("open", "mark_uncollectible"): "uncollectible",
}
_users = itertools.count()
REFUSED = [
    (status, action) for status in InvoiceStatus.values for action in ALL_ACTIONS if (status, action) not in ALLOWED
]


@pytest.fixture
def saves():
    """The post_save signals of invoices (what the sync engine hears), as (created, update_fields)."""
    heard = []

    def receiver(sender, instance, created, update_fields, **kwargs):
        heard.append((created, set(update_fields) if update_fields else None))

    post_save.connect(receiver, sender=Invoice, dispatch_uid="test-invoice-saves")
    yield heard
    post_save.disconnect(dispatch_uid="test-invoice-saves", sender=Invoice)


def user_with(*codenames: str, staff: bool = False):
    """A user holding only these catalog permissions."""
    user = get_user_model().objects.create_user(f"user-{next(_users)}", password="pw-user-123", is_staff=staff)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="catalog", codename__in=codenames))
    return user


# --- Model and services -----------------------------------------------------------------------


def test_the_customer_field_is_the_invoices_own_and_the_parents_accessor_still_works():
    ada, other = CustomerFactory(name="Ada"), CustomerFactory(name="Bob")
    invoice = InvoiceFactory(customer=ada)
    InvoiceFactory(customer=other)
    assert Invoice.objects.get(pk=invoice.pk).customer == ada
    assert list(Invoice.objects.filter(customer__name="Ada")) == [invoice]
    assert list(ada.invoices.all()) == [invoice]
    assert list(CatalogItem.objects.filter(customer__name="Ada")) == [ada]  # the multi-table child accessor
    assert Invoice.catalog_type_name() == "invoice" and invoice.catalog_type == "invoice"
    assert str(invoice) == f"Invoice {invoice.pk}"


def test_the_total_is_the_sum_of_the_lines_at_every_save(saves):
    customer = CustomerFactory()
    invoice = invoice_services.invoice_create(
        customer=customer, currency=" EUR ", lines=[LINE, {"description": "", "quantity": 2, "unit_amount": 99}]
    )
    assert (invoice.currency, invoice.total, invoice.status) == ("eur", 3 * 12500 + 2 * 99, "draft")
    invoice_services.invoice_update(invoice=invoice, lines=[{"quantity": 1, "unit_amount": 7}])
    assert Invoice.objects.get(pk=invoice.pk).total == 7 and invoice.total == 7
    assert invoice.lines == [{"description": "", "quantity": 1, "unit_amount": 7}]
    invoice_services.invoice_record_remote(invoice=invoice, lines=[LINE])
    assert Invoice.objects.get(pk=invoice.pk).total == 37500
    assert saves == [
        (True, None),
        (False, {"lines", "total", "updated_at"}),
        (False, {"lines", "total", "updated_at"}),
    ]


@pytest.mark.parametrize("start, action", list(ALLOWED))
def test_every_allowed_transition_saves_the_new_status(saves, start, action):
    invoice = InvoiceFactory(status=start)
    invoice_services.invoice_transition(invoice=invoice, action=action)
    assert invoice.status == Invoice.objects.get(pk=invoice.pk).status == ALLOWED[(start, action)]
    assert saves[-1] == (False, {"status", "updated_at"})


@pytest.mark.parametrize("start, action", REFUSED)
def test_every_other_transition_is_refused_and_changes_nothing(saves, start, action):
    invoice = InvoiceFactory(status=start)
    heard = len(saves)
    with pytest.raises(InvoiceStateError, match=f"this one is {start}") as refused:
        invoice_services.invoice_transition(invoice=invoice, action=action)
    allowed = [status for (status, name) in ALLOWED if name == action]
    assert all(status in str(refused.value) for status in allowed)
    assert Invoice.objects.get(pk=invoice.pk).status == start and len(saves) == heard


def test_a_draft_without_lines_cannot_be_finalized():
    invoice = InvoiceFactory(lines=[])
    with pytest.raises(InvoiceStateError, match="at least one line"):
        invoice_services.invoice_transition(invoice=invoice, action="finalize")
    assert Invoice.objects.get(pk=invoice.pk).status == "draft"


def test_an_unknown_action_is_a_programming_error():
    with pytest.raises(ValueError, match="Unknown invoice action"):
        invoice_services.invoice_transition(invoice=InvoiceFactory(), action="refund")


@pytest.mark.parametrize("status", ["open", "paid", "void", "uncollectible"])
def test_only_a_draft_can_be_edited_or_deleted(status):
    invoice = InvoiceFactory(status=status, description="as sent")
    with pytest.raises(InvoiceStateError, match=f"Only a draft invoice can be changed; this one is {status}."):
        invoice_services.invoice_update(invoice=invoice, description="changed")
    with pytest.raises(InvoiceStateError, match="void it instead"):
        invoice_services.invoice_delete(invoice=invoice)
    assert Invoice.objects.get(pk=invoice.pk).description == "as sent"


def test_a_draft_is_edited_and_deleted_and_an_edit_that_changes_nothing_writes_nothing(saves):
    invoice = InvoiceFactory(description="first")
    other = CustomerFactory()
    invoice_services.invoice_update(invoice=invoice, description="second", customer=other, currency="USD")
    stored = Invoice.objects.get(pk=invoice.pk)
    assert (stored.description, stored.customer, stored.currency) == ("second", other, "usd")
    heard = len(saves)
    invoice_services.invoice_update(invoice=invoice, description="second", currency="usd", lines=invoice.lines)
    assert len(saves) == heard
    with pytest.raises(TypeError, match="status"):
        invoice_services.invoice_update(invoice=invoice, status="paid")
    invoice_services.invoice_delete(invoice=invoice)
    assert not CatalogItem.objects.filter(pk=invoice.pk).exists()


def test_the_external_system_sets_what_it_holds_whatever_the_status(saves):
    invoice = InvoiceFactory(status="open")
    invoice_services.invoice_record_remote(invoice=invoice, status="paid", number="INV-0042", due_date="2027-01-31")
    stored = Invoice.objects.get(pk=invoice.pk)
    assert (stored.status, stored.number, str(stored.due_date)) == ("paid", "INV-0042", "2027-01-31")
    assert str(stored) == "INV-0042"
    assert saves[-1] == (False, {"status", "number", "due_date", "updated_at"})
    heard = len(saves)
    invoice_services.invoice_record_remote(invoice=invoice, status="paid", number="INV-0042")
    assert len(saves) == heard  # nothing changed, nothing written


def test_a_customer_with_invoices_is_not_deleted():
    customer = CustomerFactory()
    drafts = InvoiceFactory.create_batch(2, customer=customer)
    with pytest.raises(CustomerHasInvoices, match="has 2 invoices") as refused:
        customer_delete(customer=customer)
    assert refused.value.count == 2 and Customer.objects.filter(pk=customer.pk).exists()
    for invoice in drafts:
        invoice_services.invoice_delete(invoice=invoice)
    customer_delete(customer=customer)
    assert not Customer.objects.filter(pk=customer.pk).exists()


# --- API --------------------------------------------------------------------------------------


def create_payload(customer: Customer, /, **changes) -> dict:
    return {"customer": customer.pk, "currency": "EUR", "lines": [LINE], **changes}


def test_api_round_trip(api_client):
    customer = CustomerFactory()
    # Status, number and total are not the client's to set: ignored.
    payload = create_payload(customer, status="paid", number="X", total=1, due_date="2027-02-01")
    created = api_client.post("/api/invoices", payload, format="json")
    assert created.status_code == 201, created.data
    body = created.json()
    expected = {"customer": customer.pk, "currency": "eur", "status": "draft", "number": "", "total": 37500}
    assert {key: body[key] for key in expected} == expected
    assert (body["due_date"], body["catalog_type"]) == ("2027-02-01", "invoice")
    url = f"/api/invoices/{body['id']}"
    assert list(api_client.get(url).json()) == [
        "id",
        "catalog_type",
        "customer",
        "currency",
        "description",
        "due_date",
        "status",
        "number",
        "lines",
        "total",
        "created_at",
        "updated_at",
    ]
    patched = api_client.patch(url, {"description": "December", "lines": [LINE, LINE]}, format="json")
    assert patched.status_code == 200 and patched.json()["total"] == 75000
    put = api_client.put(url, create_payload(customer, currency="usd"), format="json")
    assert put.status_code == 200 and put.json()["currency"] == "usd" and put.json()["description"] == ""
    assert api_client.delete(url).status_code == 204
    assert api_client.get(url).status_code == 404


def test_api_lifecycle_actions_and_409s(api_client):
    invoice = InvoiceFactory()
    url = f"/api/invoices/{invoice.pk}"
    assert api_client.post(f"{url}/mark-paid").json() == {
        "detail": "Only an open or uncollectible invoice can be marked paid; this one is draft."
    }
    assert api_client.post(f"{url}/finalize").json()["status"] == "open"
    for response in [
        api_client.patch(url, {"description": "x"}, format="json"),
        api_client.patch(url, {"lines": "not even valid"}, format="json"),  # the state first, whatever the body
        api_client.put(url, create_payload(invoice.customer), format="json"),
        api_client.delete(url),
        api_client.post(f"{url}/finalize"),
    ]:
        assert response.status_code == 409 and set(response.json()) == {"detail"}
    assert "void it instead" in api_client.delete(url).json()["detail"]
    assert api_client.post(f"{url}/mark-uncollectible").json()["status"] == "uncollectible"
    assert api_client.post(f"{url}/void").json()["status"] == "void"
    assert api_client.post(f"{url}/mark-paid").status_code == 409
    assert Invoice.objects.get(pk=invoice.pk).status == "void"


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"currency": "euro"}, "currency"),
        ({"currency": "xyz"}, "currency"),
        ({"currency": ""}, "currency"),
        ({"currency": 978}, "currency"),
        ({"lines": []}, "lines"),
        ({"lines": [LINE] * 251}, "lines"),
        ({"lines": "Consulting"}, "lines"),
        ({"lines": [{**LINE, "unit_price": 5}]}, "lines"),
        ({"lines": [{**LINE, "quantity": 0}]}, "lines"),
        ({"lines": [{**LINE, "quantity": "2"}]}, "lines"),
        ({"lines": [{**LINE, "quantity": 1.5}]}, "lines"),
        ({"lines": [{**LINE, "quantity": True}]}, "lines"),
        ({"lines": [{**LINE, "quantity": 1_000_001}]}, "lines"),
        ({"lines": [{**LINE, "unit_amount": -1}]}, "lines"),
        ({"lines": [{**LINE, "unit_amount": 100_000_000}]}, "lines"),
        ({"lines": [{"description": "no amounts"}]}, "lines"),
        ({"lines": [{**LINE, "description": "d" * 501}]}, "lines"),
        ({"lines": ["Consulting"]}, "lines"),
        ({"customer": 999_999}, "customer"),
        ({"customer": "1"}, "customer"),
        ({"customer": 2**64}, "customer"),
        ({"due_date": "tomorrow"}, "due_date"),
        ({"description": "d" * 5001}, "description"),
    ],
)
def test_bad_input_is_a_400_with_field_errors_and_writes_nothing(api_client, changes, field):
    response = api_client.post("/api/invoices", create_payload(CustomerFactory(), **changes), format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert not Invoice.objects.exists()


def test_line_errors_name_the_line_and_the_key(api_client):
    lines = [LINE, {**LINE, "unit_price": 5, "quantity": 0}]
    response = api_client.post("/api/invoices", create_payload(CustomerFactory(), lines=lines), format="json")
    errors = response.json()["lines"]
    assert set(errors) == {"1"} and set(errors["1"]) == {"unit_price", "quantity"}


def test_api_filters_search_and_ordering(api_client):
    ada = CustomerFactory(name="Ada", email="ada@analytical.example")
    cheap = InvoiceFactory(customer=ada, lines=[{"description": "tea", "quantity": 1, "unit_amount": 5}])
    dear = InvoiceFactory(customer=ada, status="open", number="INV-7", currency="usd")
    other = InvoiceFactory(description="for someone else")

    def ids(query: str) -> list[int]:
        response = api_client.get(f"/api/invoices?{query}")
        assert response.status_code == 200, response.json()
        return [row["id"] for row in response.json()["results"]]

    assert ids("") == [other.pk, dear.pk, cheap.pk]
    assert ids("status=open") == [dear.pk]
    assert ids(f"customer={ada.pk}&ordering=total") == [cheap.pk, dear.pk]
    assert ids("currency=USD") == [dear.pk]
    assert ids("search=analytical") == ids("search=ada") == [dear.pk, cheap.pk]
    assert ids("search=INV-7") == [dear.pk] and ids("search=someone") == [other.pk]
    refused = [("status=sent", "status"), ("customer=x", "customer"), (f"customer={2**64}", "customer")]
    for bad, field in [*refused, ("currency=euro", "currency")]:
        response = api_client.get(f"/api/invoices?{bad}")
        assert response.status_code == 400 and set(response.json()) == {field}
    assert api_client.get(f"/api/invoices/{2**64}").status_code == 404
    assert api_client.post(f"/api/invoices/{2**64}/finalize").status_code == 404


def test_deleting_a_customer_with_invoices_is_a_409(api_client):
    customer = InvoiceFactory().customer
    response = api_client.delete(f"/api/customers/{customer.pk}")
    assert response.status_code == 409 and "has 1 invoice" in response.json()["detail"]
    assert Customer.objects.filter(pk=customer.pk).exists()


def test_api_permissions(db):
    invoice = InvoiceFactory()
    url = f"/api/invoices/{invoice.pk}"
    anonymous = APIClient()
    assert anonymous.get("/api/invoices").status_code == 401
    assert anonymous.post(f"{url}/finalize").status_code == 401

    nobody = APIClient()
    nobody.force_authenticate(user_with("view_customer"))
    assert nobody.get("/api/invoices").status_code == 403 and nobody.get(url).status_code == 403

    viewer = get_user_model().objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    viewer.groups.add(Group.objects.get(name=VIEWERS))
    reader = APIClient()
    reader.force_authenticate(viewer)
    assert reader.get(url).status_code == 200
    assert reader.post("/api/invoices", create_payload(invoice.customer), format="json").status_code == 403
    assert reader.post(f"{url}/finalize").status_code == 403 and reader.delete(url).status_code == 403

    # Creating is "add"; the lifecycle actions change an invoice: "change".
    creator = APIClient()
    creator.force_authenticate(user_with("view_invoice", "add_invoice"))
    assert creator.post("/api/invoices", create_payload(invoice.customer), format="json").status_code == 201
    assert creator.post(f"{url}/finalize").status_code == 403
    assert Invoice.objects.get(pk=invoice.pk).status == "draft"


def test_the_schema_documents_the_409s_and_the_strict_lines(api_client):
    schema = api_client.get("/api/schema?format=json").json()
    paths = schema["paths"]
    conflicting = [
        ("put", "/api/invoices/{id}"),
        ("patch", "/api/invoices/{id}"),
        ("delete", "/api/invoices/{id}"),
        ("delete", "/api/customers/{id}"),
        *(("post", f"/api/invoices/{{id}}/{name}") for name in ["finalize", "void", "mark-paid", "mark-uncollectible"]),
    ]
    for method, path in conflicting:
        answer = paths[path][method]["responses"]["409"]
        assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorDetail"}
    assert "409" not in paths["/api/invoices"]["post"]["responses"]
    assert schema["components"]["schemas"]["InvoiceLineRequest"]["additionalProperties"] is False


# --- Django admin -----------------------------------------------------------------------------


@pytest.fixture
def staff(client, staff_user):
    client.force_login(staff_user)
    return client


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []


def test_the_catalog_admin_lists_every_catalog_type(staff):
    assert set(admin.site._registry[CatalogItem].get_child_models()) >= {Customer, Invoice}
    invoice = InvoiceFactory()
    changelist = staff.get("/admin/catalog/catalogitem/").content.decode()
    assert f"/admin/catalog/catalogitem/{invoice.pk}/change/" in changelist
    # The parent's page of an invoice is the invoice admin's.
    assert 'name="lines"' in staff.get(f"/admin/catalog/catalogitem/{invoice.pk}/change/").content.decode()
    chooser = staff.get("/admin/catalog/catalogitem/add/").content.decode()
    assert "invoice" in chooser.lower() and "customer" in chooser.lower()


# The admin's read-only inline of the invoice's mappings (console/admin.py adds it): its
# management form, as the browser posts it.
MAPPINGS_INLINE = {"integrations-TOTAL_FORMS": "0", "integrations-INITIAL_FORMS": "0"}


def test_admin_changelist_and_add_page(staff):
    invoice = InvoiceFactory(number="INV-1")
    html = staff.get("/admin/catalog/invoice/?status__exact=draft&q=INV").content.decode()
    assert "INV-1" in html and "25.00 EUR" in html
    add = staff.get("/admin/catalog/invoice/add/")
    assert add.status_code == 200 and 'name="lines"' in add.content.decode()

    lines = "Hosting | Plan | 2 | 999\n\nSupport | 1 | 5000"
    data = {"customer": invoice.customer_id, "currency": "USD", "due_date": "", "description": "", "lines": lines,
            **MAPPINGS_INLINE}
    assert staff.post("/admin/catalog/invoice/add/", data).status_code == 302
    created = Invoice.objects.exclude(pk=invoice.pk).get()
    assert (created.currency, created.total, created.status) == ("usd", 2 * 999 + 5000, "draft")
    assert created.lines[0] == {"description": "Hosting | Plan", "quantity": 2, "unit_amount": 999}

    refused = staff.post("/admin/catalog/invoice/add/", {**data, "currency": "euro", "lines": "Hosting | 0 | 1"})
    errors = refused.context["adminform"].form.errors
    assert set(errors) == {"currency", "lines"} and "Line 1: quantity" in errors["lines"][0]
    assert Invoice.objects.count() == 2


def test_admin_edits_drafts_only_and_acts_through_the_services(staff):
    draft, paid = InvoiceFactory(), InvoiceFactory(status="paid")
    change = staff.get(f"/admin/catalog/invoice/{draft.pk}/change/").content.decode()
    assert 'name="lines"' in change and 'name="_save"' in change
    data = {"customer": draft.customer_id, "currency": "eur", "description": "edited", "lines": "Consulting | 4 | 100",
            **MAPPINGS_INLINE}
    assert staff.post(f"/admin/catalog/invoice/{draft.pk}/change/", data).status_code == 302
    assert Invoice.objects.get(pk=draft.pk).total == 400

    read_only = staff.get(f"/admin/catalog/invoice/{paid.pk}/change/").content.decode()
    assert 'name="lines"' not in read_only and 'name="_save"' not in read_only and "Consulting | 2" in read_only
    assert staff.get(f"/admin/catalog/invoice/{paid.pk}/delete/").status_code == 403
    assert "delete_selected" not in staff.get("/admin/catalog/invoice/").content.decode()

    response = staff.post(
        "/admin/catalog/invoice/", {"action": "finalize_selected", "_selected_action": [draft.pk, paid.pk]}, follow=True
    )
    shown = messages_of(response)
    assert "1 invoice finalized." in shown and any("this one is paid" in message for message in shown)
    assert Invoice.objects.get(pk=draft.pk).status == "open"
    staff.post("/admin/catalog/invoice/", {"action": "void_selected", "_selected_action": [draft.pk]})
    assert Invoice.objects.get(pk=draft.pk).status == "void"


def test_the_admin_keeps_a_customer_with_invoices(staff):
    customer = InvoiceFactory().customer
    page = staff.post(f"/admin/catalog/customer/{customer.pk}/delete/", {"post": "yes"})
    assert page.status_code == 200 and "protected" in page.content.decode()
    bulk = staff.post(
        "/admin/catalog/customer/", {"action": "delete_selected", "_selected_action": [customer.pk], "post": "yes"}
    )
    assert bulk.status_code == 200 and "protected" in bulk.content.decode()
    assert Customer.objects.filter(pk=customer.pk).exists()


# --- Console ----------------------------------------------------------------------------------


def test_console_invoice_list(staff):
    ada = CustomerFactory(name="Ada Lovelace")
    draft = InvoiceFactory(customer=ada)
    tea = {"description": "Tea", "quantity": 3, "unit_amount": 500}
    paid = InvoiceFactory(status="paid", number="INV-9", currency="jpy", lines=[tea])
    html = staff.get("/invoices/").content.decode()
    assert 'href="/invoices/"' in html and ">Invoices</a>" in html  # in the navigation
    assert re.findall(r'<tr data-invoice-id="(\d+)"', html) == [str(paid.pk), str(draft.pk)]
    assert "25.00 EUR" in html and "1,500 JPY" in html and 'data-invoice-status="paid"' in html
    filtered = staff.get("/invoices/?status=paid").content.decode()
    assert re.findall(r'<tr data-invoice-id="(\d+)"', filtered) == [str(paid.pk)]
    searched = staff.get("/invoices/?q=lovelace").content.decode()
    assert re.findall(r'<tr data-invoice-id="(\d+)"', searched) == [str(draft.pk)]
    InvoiceFactory.create_batch(20)
    assert len(re.findall(r"<tr data-invoice-id=", staff.get("/invoices/?page=2").content.decode())) == 2


def test_console_detail_shows_lines_and_the_allowed_transitions(staff):
    invoice = InvoiceFactory(lines=[LINE, {"description": "Travel", "quantity": 1, "unit_amount": 4999}])
    html = staff.get(f"/invoices/{invoice.pk}/").content.decode()
    assert html.count("<tr data-line>") == 2 and "375.00 EUR" in html and "424.99 EUR" in html
    assert re.findall(r'data-action="([\w-]+)"', html) == ["finalize"]
    assert f'href="/invoices/{invoice.pk}/edit/"' in html and f'href="/invoices/{invoice.pk}/delete/"' in html

    response = staff.post(f"/invoices/{invoice.pk}/finalize/", follow=True)
    assert "finalized" in " ".join(messages_of(response))
    html = response.content.decode()
    assert re.findall(r'data-action="([\w-]+)"', html) == ["void", "mark-paid", "mark-uncollectible"]
    assert f"/invoices/{invoice.pk}/edit/" not in html and f"/invoices/{invoice.pk}/delete/" not in html

    refused = staff.post(f"/invoices/{invoice.pk}/finalize/", follow=True)
    assert "Only a draft invoice can be finalized; this one is open." in messages_of(refused)
    assert staff.post(f"/invoices/{invoice.pk}/refund/").status_code == 404
    assert staff.get(f"/invoices/{invoice.pk}/finalize/").status_code == 405
    assert staff.get(f"/invoices/{2**64}/").status_code == 404


def test_console_detail_shows_its_sync_with_a_link_to_stripes_dashboard(staff, settings):
    from catalog.services import integration_record_error, integration_record_synced

    settings.STRIPE_API_KEY = "sk_test_console"
    invoice = InvoiceFactory()
    integration_record_synced(item_id=invoice.pk, integration_type="stripe", integration_id="in_console1")
    html = staff.get(f"/invoices/{invoice.pk}/").content.decode()
    assert 'href="https://dashboard.stripe.com/test/invoices/in_console1"' in html
    assert re.search(r'<tr data-mapping="stripe">\s*<td>Stripe</td>', html)
    integration_record_error(item_id=invoice.pk, integration_type="stripe", error="No such customer", final=True)
    assert "No such customer" in staff.get(f"/invoices/{invoice.pk}/").content.decode()


def test_the_invoice_admin_lists_its_mappings_linked_to_stripes_dashboard(admin_client, settings):
    from catalog.services import integration_record_synced

    settings.STRIPE_API_KEY = "sk_live_admin"
    invoice = InvoiceFactory()
    integration_record_synced(item_id=invoice.pk, integration_type="stripe", integration_id="in_admin1")
    html = admin_client.get(f"/admin/catalog/invoice/{invoice.pk}/change/").content.decode()
    assert 'href="https://dashboard.stripe.com/invoices/in_admin1"' in html


def test_console_creates_and_edits_drafts(staff):
    customer = CustomerFactory(name="Grace")
    form = staff.get(f"/invoices/new/?customer={customer.pk}").content.decode()
    assert f'value="{customer.pk}"' in form and "Grace" in form  # prefilled, and among the suggestions
    data = {"customer": customer.pk, "currency": "EUR", "due_date": "2027-03-01", "lines": "Consulting | 2 | 1250"}
    response = staff.post("/invoices/new/", data)
    invoice = Invoice.objects.get()
    assert response["Location"] == f"/invoices/{invoice.pk}/"
    assert (invoice.currency, invoice.total, str(invoice.due_date)) == ("eur", 2500, "2027-03-01")

    bad = staff.post("/invoices/new/", {**data, "currency": "euro", "lines": "Consulting | two | 1250"})
    assert bad.status_code == 200 and Invoice.objects.count() == 1
    assert set(bad.context["form"].errors) == {"currency", "lines"}
    assert "“two” is not a whole number" in bad.content.decode()
    unknown = staff.post("/invoices/new/", {**data, "customer": 999999})
    assert "customer" in unknown.context["form"].errors

    edit = staff.get(f"/invoices/{invoice.pk}/edit/").content.decode()
    assert "Consulting | 2 | 1250" in edit
    staff.post(f"/invoices/{invoice.pk}/edit/", {**data, "lines": "Consulting | 3 | 1250"})
    assert Invoice.objects.get(pk=invoice.pk).total == 3750

    invoice_services.invoice_transition(invoice=invoice, action="finalize")
    refused = staff.post(f"/invoices/{invoice.pk}/edit/", {**data, "lines": "Consulting | 9 | 1"}, follow=True)
    assert "Only a draft invoice can be changed; this one is open." in messages_of(refused)
    assert Invoice.objects.get(pk=invoice.pk).total == 3750


def test_console_deletes_drafts_only(staff):
    draft, open_invoice = InvoiceFactory(), InvoiceFactory(status="open")
    assert "Delete the draft" in staff.get(f"/invoices/{draft.pk}/delete/").content.decode()
    assert staff.post(f"/invoices/{draft.pk}/delete/")["Location"] == "/invoices/"
    assert not Invoice.objects.filter(pk=draft.pk).exists()
    refused = staff.post(f"/invoices/{open_invoice.pk}/delete/", follow=True)
    assert any("void it instead" in message for message in messages_of(refused))
    assert Invoice.objects.filter(pk=open_invoice.pk).exists()


def test_console_invoice_permissions(client):
    invoice = InvoiceFactory()
    pages = ["/invoices/", f"/invoices/{invoice.pk}/", "/invoices/new/", f"/invoices/{invoice.pk}/edit/"]
    for url in pages:
        assert client.get(url)["Location"].startswith("/login/"), url  # anonymous
    viewer = get_user_model().objects.create_user("viewer", password="pw-viewer-123", is_staff=True)
    viewer.groups.add(Group.objects.get(name=VIEWERS))
    client.force_login(viewer)
    html = client.get(f"/invoices/{invoice.pk}/").content.decode()
    assert "data-action=" not in html and f"/invoices/{invoice.pk}/edit/" not in html and "/delete/" not in html
    assert client.get("/invoices/new/").status_code == 403
    assert client.post(f"/invoices/{invoice.pk}/finalize/").status_code == 403
    assert client.post(f"/invoices/{invoice.pk}/delete/").status_code == 403
    assert Invoice.objects.get(pk=invoice.pk).status == "draft"
    client.force_login(user_with("view_customer", staff=True))
    assert client.get("/invoices/").status_code == 403
    assert ">Invoices</a>" not in client.get("/customers/").content.decode()


def test_console_refuses_to_delete_a_customer_with_invoices(staff):
    customer = InvoiceFactory().customer
    response = staff.post(f"/customers/{customer.pk}/delete/", {"next": "/customers/"}, follow=True)
    assert response.status_code == 200 and response.redirect_chain[-1][0] == "/customers/"
    assert any("was not deleted" in message and "has 1 invoice" in message for message in messages_of(response))
    assert Customer.objects.filter(pk=customer.pk).exists()
