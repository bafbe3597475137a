"""The staff console, through Django's test client: access, validation, figures, query counts."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from catalog.models import CatalogIntegration, Customer, SyncStatus
from catalog.services import integration_record_error, integration_record_synced
from integrations.stripe import INTEGRATION_TYPE
from sync.models import OutboxMessage

from .factories import CustomerFactory

pytestmark = pytest.mark.django_db

FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}
STAFF_PAGES = [
    "/",
    "/console/stats.json",
    "/customers/",
    "/customers/statuses.json?ids=1",
    "/customers/new/",
    "/customers/1/edit/",
    "/customers/1/delete/",
    "/integrations/",
]


@pytest.fixture
def staff(client: Client, staff_user) -> Client:
    client.force_login(staff_user)
    return client


def synced(customer: Customer, external_id: str | None = None) -> None:
    integration_record_synced(
        item_id=customer.pk, integration_type=INTEGRATION_TYPE, integration_id=external_id or f"cus_{customer.pk}"
    )


def failed(customer: Customer, error: str = "Stripe said no") -> None:
    integration_record_error(item_id=customer.pk, integration_type=INTEGRATION_TYPE, error=error, final=True)


def pending(customer: Customer) -> None:
    CatalogIntegration.objects.update_or_create(
        catalog_item=customer, integration_type=INTEGRATION_TYPE, defaults={"status": SyncStatus.PENDING}
    )


def unsynced(customer: Customer) -> None:
    CatalogIntegration.objects.filter(catalog_item=customer).delete()


# --- Access -----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", STAFF_PAGES)
def test_anonymous_users_are_sent_to_the_login_page(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/?next=")


def test_non_staff_users_are_sent_to_the_login_page_and_cannot_log_in(client):
    user = get_user_model().objects.create_user("visitor", password="pw-visitor-123")
    client.force_login(user)
    for url in STAFF_PAGES:
        assert client.get(url)["Location"].startswith("/login/"), url
    assert "not a staff account" in client.get("/login/").content.decode()

    client.logout()
    response = client.post("/login/", {"username": "visitor", "password": "pw-visitor-123"})
    assert response.status_code == 200
    assert "correct username and password for a staff account" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_staff_log_in_reach_the_page_they_asked_for_and_log_out(client, staff_user):
    page = client.get("/login/?next=/customers/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'for="id_username"' in html and 'for="id_password"' in html

    response = client.post("/login/", {"username": "staff", "password": "pw-staff-123", "next": "/customers/"})
    assert response.status_code == 302 and response["Location"] == "/customers/"
    assert client.get("/customers/").status_code == 200
    assert client.post("/login/", {"username": "staff", "password": "wrong"}).status_code == 200

    assert client.get("/logout/").status_code == 405  # logging out is a POST, never a link a page can embed
    assert client.post("/logout/")["Location"] == "/login/"
    assert client.get("/customers/").status_code == 302


def test_the_api_and_the_webhook_keep_their_own_authentication(client, staff_user, webhook_secret):
    # No login redirects there: the API answers 401, the webhook checks Stripe's signature.
    assert client.get("/api/customers").status_code == 401
    assert client.post("/webhooks/stripe", b"{}", content_type="application/json").status_code == 400
    client.force_login(get_user_model().objects.create_user("visitor", password="pw-visitor-123"))
    assert client.get("/api/customers").status_code == 200


def test_the_admin_requires_a_staff_login(client):
    assert client.get("/admin/catalog/customer/")["Location"].startswith("/admin/login/")
    client.force_login(get_user_model().objects.create_user("visitor", password="pw-visitor-123"))
    assert client.get("/admin/catalog/customer/")["Location"].startswith("/admin/login/")


# --- Dashboard ----------------------------------------------------------------------------------


def make_mixed_catalog() -> dict[str, list[Customer]]:
    customers = {
        status: CustomerFactory.create_batch(n)
        for status, n in [("synced", 4), ("pending", 3), ("failed", 2), ("unsynced", 1)]
    }
    for customer in customers["synced"]:
        synced(customer)
    for customer in customers["pending"]:
        pending(customer)
    for customer in customers["failed"]:
        failed(customer)
    for customer in customers["unsynced"]:
        unsynced(customer)
    return customers


def test_stats_json_matches_the_database(staff):
    make_mixed_catalog()
    data = staff.get("/console/stats.json").json()
    stripe = CatalogIntegration.objects.filter(integration_type=INTEGRATION_TYPE)
    expected = {
        "customers": Customer.objects.count(),
        "synced": stripe.filter(status="synced").count(),
        "pending": stripe.filter(status="pending").count(),
        "failed": stripe.filter(status="failed").count(),
        "unsynced": Customer.objects.exclude(integrations__integration_type=INTEGRATION_TYPE).count(),
    }
    assert data["counts"] == expected == {"customers": 10, "synced": 4, "pending": 3, "failed": 2, "unsynced": 1}
    segments = dict(re.findall(r'data-status="(\w+)" data-count="(\d+)"', data["chart_html"]))
    assert segments == {"synced": "4", "pending": "3", "failed": "2", "unsynced": "1"}
    assert data["recent_html"].count("data-customer-id=") == 10


def test_dashboard_shows_totals_chart_and_recent_activity(staff, django_assert_max_num_queries):
    customers = make_mixed_catalog()
    extra = CustomerFactory.create_batch(5)
    # Savepoint, session, user, counts, recent activity, release: whatever the number of customers.
    with django_assert_max_num_queries(6):
        html = staff.get("/").content.decode()
    assert re.search(r'data-stat="customers">15<', html) and re.search(r'data-stat="failed">2<', html)
    assert re.search(r'data-stat="unsynced">1<', html)
    # The five new customers are pending: their first push is queued.
    assert "<svg" in html and 'role="img"' in html and "4 synced, 8 pending, 2 failed, 1 unsynced" in html
    # The ten most recently updated customers, newest first.
    recent_ids = [int(pk) for pk in re.findall(r'<tr data-customer-id="(\d+)"', html)]
    assert len(recent_ids) == 10 and recent_ids[:5] == [c.pk for c in reversed(extra)]
    assert customers["synced"][0].pk not in recent_ids
    assert 'href="/customers/"' in html and 'href="/integrations/"' in html


def test_chart_of_an_empty_catalog(staff):
    html = staff.get("/").content.decode()
    assert "No customers yet" in html and "chart-segment" not in html


# --- Customers ----------------------------------------------------------------------------------


def row_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr data-customer-id="(\d+)"', html)]


def test_customer_list_query_count_does_not_grow_with_the_rows(staff, django_assert_max_num_queries):
    for customer in CustomerFactory.create_batch(30):
        synced(customer)
    # Savepoint, session, user, count, page, release: whatever the number of rows shown.
    with django_assert_max_num_queries(6):
        response = staff.get("/customers/")
    assert len(row_ids(response.content.decode())) == 20
    with django_assert_max_num_queries(6):
        response = staff.get("/customers/?page=2&sort=name")
    assert len(row_ids(response.content.decode())) == 10


def test_customer_list_searches_filters_and_sorts(staff):
    ada = CustomerFactory(name="Ada Lovelace", email="ada@analytical.example")
    grace = CustomerFactory(name="Grace Hopper", email="grace@navy.example")
    alan = CustomerFactory(name="Alan Turing", email="alan@bletchley.example")
    synced(ada)
    failed(grace)

    assert row_ids(staff.get("/customers/?q=hopper").content.decode()) == [grace.pk]
    assert row_ids(staff.get("/customers/?q=BLETCHLEY").content.decode()) == [alan.pk]
    assert row_ids(staff.get("/customers/?status=failed").content.decode()) == [grace.pk]
    assert row_ids(staff.get("/customers/?status=unsynced").content.decode()) == []
    pending(alan)
    assert row_ids(staff.get("/customers/?status=pending").content.decode()) == [alan.pk]

    assert row_ids(staff.get("/customers/?sort=name").content.decode()) == [ada.pk, alan.pk, grace.pk]
    assert row_ids(staff.get("/customers/?sort=-name").content.decode()) == [grace.pk, alan.pk, ada.pk]
    assert row_ids(staff.get("/customers/?sort=email").content.decode()) == [ada.pk, alan.pk, grace.pk]
    html = staff.get("/customers/?sort=name").content.decode()
    assert re.search(r'aria-sort="ascending">\s*<a[^>]*href="\?sort=-name"', html)
    # Unknown sorts and filters fall back to the defaults (newest first, all) rather than failing.
    assert row_ids(staff.get("/customers/?sort=password&status=nonsense").content.decode()) == [
        alan.pk,
        grace.pk,
        ada.pk,
    ]

    # Only failed rows show their resync button and error.
    html = staff.get("/customers/").content.decode()
    rows = dict(re.findall(r'<tr data-customer-id="(\d+)">(.*?)</tr>', html, re.DOTALL))
    assert "data-resync hidden" not in rows[str(grace.pk)] and "Stripe said no" in rows[str(grace.pk)]
    assert "data-resync hidden" in rows[str(ada.pk)]


def test_statuses_json_reports_the_visible_rows(staff):
    ada, grace, alan = CustomerFactory.create_batch(3)
    synced(ada)
    failed(grace, "card_declined")
    data = staff.get(f"/customers/statuses.json?ids={ada.pk},{grace.pk},{alan.pk},999999").json()["statuses"]
    assert data[str(ada.pk)] == {"status": "synced", "error": "", "label": "Synced", "badge_class": "text-bg-success"}
    assert data[str(grace.pk)]["status"] == "failed" and data[str(grace.pk)]["error"] == "card_declined"
    assert data[str(alan.pk)]["status"] == "pending"  # just created: its push is queued
    assert "999999" not in data
    assert staff.get("/customers/statuses.json?ids=1,x").status_code == 400


@pytest.mark.parametrize(
    "payload, field, message",
    [
        ({"name": "", "email": "a@example.com"}, "name", "This field is required."),
        ({"name": "   ", "email": "a@example.com"}, "name", "This field is required."),
        ({"name": "A", "email": "not-an-email"}, "email", "Enter a valid email address."),
        ({"name": "A" * 256, "email": "a@example.com"}, "name", "at most 255 characters"),
        ({"name": "Copy", "email": "TAKEN@Example.com"}, "email", "A customer with this email already exists."),
    ],
)
def test_modal_form_returns_field_errors_beside_the_field(staff, payload, field, message):
    CustomerFactory(email="taken@example.com")
    before = (Customer.objects.count(), OutboxMessage.objects.count())
    response = staff.post("/customers/new/", payload, **FETCH)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "<html" not in html  # a fragment for the modal
    # The message sits right after the field it is about, tied to it for screen readers.
    match = re.search(
        rf'<input[^>]*id="id_{field}"[^>]*is-invalid[^>]*aria-invalid="true" aria-describedby="id_{field}-error">\s*'
        rf'<div class="invalid-feedback" id="id_{field}-error">([^<]*)</div>',
        html.replace("\n", " "),
    )
    assert match, html
    assert message in match.group(1).replace("&#x27;", "'")
    assert (Customer.objects.count(), OutboxMessage.objects.count()) == before


def test_modal_form_creates_and_edits_through_the_services(staff):
    form = staff.get("/customers/new/", **FETCH).content.decode()
    assert 'id="customer-modal-title">Add customer<' in form and "<html" not in form
    assert "<html" in staff.get("/customers/new/").content.decode()  # without JavaScript: a page

    response = staff.post("/customers/new/", {"name": "Ada", "email": " Ada@Example.com "}, **FETCH)
    assert response.status_code == 201 and response["Content-Type"] == "application/json"
    ada = Customer.objects.get(pk=response.json()["id"])
    assert (ada.name, ada.email) == ("Ada", "Ada@Example.com")
    # Saved through the service: its outward sync is queued in the same transaction.
    assert OutboxMessage.objects.filter(key=str(ada.pk)).count() == 1

    grace = CustomerFactory(email="grace@example.com")
    taken = staff.post(f"/customers/{ada.pk}/edit/", {"name": "Ada", "email": "GRACE@example.com"}, **FETCH)
    assert taken["Content-Type"].startswith("text/html") and "already exists" in taken.content.decode()
    edit = staff.post(f"/customers/{ada.pk}/edit/", {"name": "Ada Lovelace", "email": "ada@example.com"}, **FETCH)
    assert edit.status_code == 200
    ada.refresh_from_db()
    assert (ada.name, ada.email) == ("Ada Lovelace", "ada@example.com")
    assert Customer.objects.get(pk=grace.pk).email == "grace@example.com"
    assert "Ada Lovelace" in staff.get("/customers/").content.decode()  # with the flash message
    assert staff.get("/customers/999999/edit/", **FETCH).status_code == 404


def test_form_without_javascript_redirects_back(staff):
    response = staff.post("/customers/new/", {"name": "Ada", "email": "", "next": "/customers/?q=ada"})
    assert response.status_code == 302 and response["Location"] == "/customers/?q=ada"
    assert Customer.objects.get(name="Ada").email is None
    # Never off-site.
    response = staff.post("/customers/new/", {"name": "Eve", "next": "https://evil.example/"})
    assert response["Location"] == "/customers/"


def test_delete_asks_first_and_deletes_on_post(staff):
    ada = CustomerFactory(name="Ada")
    confirm = staff.get(f"/customers/{ada.pk}/delete/")
    assert confirm.status_code == 200 and "Delete <strong>Ada</strong>?" in confirm.content.decode()
    assert Customer.objects.filter(pk=ada.pk).exists()
    response = staff.post(f"/customers/{ada.pk}/delete/", {"next": "/customers/?page=1"})
    assert response["Location"] == "/customers/?page=1"
    assert not Customer.objects.filter(pk=ada.pk).exists()
    assert staff.post(f"/customers/{ada.pk}/delete/").status_code == 404


def test_resync_requeues_a_failed_customer(staff):
    grace = CustomerFactory()
    failed(grace)
    outbox_before = OutboxMessage.objects.filter(key=str(grace.pk)).count()
    assert staff.get(f"/customers/{grace.pk}/resync/").status_code == 405
    response = staff.post(f"/customers/{grace.pk}/resync/")
    assert response.status_code == 302
    assert CatalogIntegration.objects.get(catalog_item=grace).status == SyncStatus.PENDING
    assert OutboxMessage.objects.filter(key=str(grace.pk)).count() == outbox_before + 1


# --- Integrations -------------------------------------------------------------------------------


def test_integrations_page_lists_and_filters_mappings(staff, django_assert_max_num_queries):
    customers = make_mixed_catalog()
    CatalogIntegration.objects.create(
        catalog_item=customers["synced"][0],
        integration_type="salesforce",
        integration_id="003XYZ",
        status="failed",
        last_error="Salesforce is down",
    )
    # As above, plus the integration types of the filter.
    with django_assert_max_num_queries(7):
        html = staff.get("/integrations/").content.decode()
    assert html.count("data-mapping-id=") == 10
    assert "Salesforce is down" in html and "003XYZ" in html and customers["failed"][0].email in html
    assert '<option value="salesforce">' in html and '<option value="stripe">' in html

    assert staff.get("/integrations/?type=salesforce").content.decode().count("data-mapping-id=") == 1
    failed_stripe = staff.get("/integrations/?type=stripe&status=failed").content.decode()
    assert failed_stripe.count("data-mapping-id=") == 2 and "Salesforce is down" not in failed_stripe

    partial = staff.get("/integrations/?status=failed&partial=1").content.decode()
    assert "<html" not in partial and partial.count("data-mapping-id=") == 3


# --- Admin --------------------------------------------------------------------------------------


@pytest.fixture
def admin_client_(client: Client) -> Client:
    client.force_login(get_user_model().objects.create_superuser("root", password="pw-root-123"))
    return client


def test_admin_customer_list_shows_and_filters_sync_status(admin_client_, django_assert_max_num_queries):
    customers = make_mixed_catalog()
    CustomerFactory.create_batch(20)
    with django_assert_max_num_queries(12):
        html = admin_client_.get("/admin/catalog/customer/").content.decode()
    assert "Stripe sync" in html and ">Failed</strong>" in html and ">Unsynced</strong>" in html
    failed_only = admin_client_.get("/admin/catalog/customer/?sync_status=failed").content.decode()
    assert failed_only.count(">Failed</strong>") == 2 and ">Synced</strong>" not in failed_only
    assert str(customers["failed"][0].email) in failed_only
    unsynced_only = admin_client_.get("/admin/catalog/customer/?sync_status=unsynced").content.decode()
    assert unsynced_only.count(">Unsynced</strong>") == 1
    # Sortable by status (the fourth column), and the integrations admin still browses.
    by_status = admin_client_.get("/admin/catalog/customer/?o=4").content.decode()
    shown = re.findall(r">(Synced|Pending|Failed|Unsynced)</strong>", by_status)
    assert len(shown) == 30 and shown == sorted(shown)
    assert admin_client_.get("/admin/catalog/catalogintegration/").status_code == 200


def test_admin_action_resyncs_the_selected_customers(admin_client_):
    customers = make_mixed_catalog()
    chosen = customers["failed"] + customers["unsynced"]
    outbox_before = OutboxMessage.objects.count()
    response = admin_client_.post(
        "/admin/catalog/customer/",
        {"action": "resync_selected", "_selected_action": [c.pk for c in chosen]},
        follow=True,
    )
    assert "Resync requested for 3 customers." in response.content.decode()
    for customer in chosen:
        assert CatalogIntegration.objects.get(catalog_item=customer).status == SyncStatus.PENDING
    assert OutboxMessage.objects.count() == outbox_before + 3


def test_admin_exports_and_imports_customers_as_csv(admin_client_):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from catalog.models import Customer

    existing = Customer.objects.create(name="Ada", email="ada@example.com")
    export = admin_client_.post(
        "/admin/catalog/customer/", {"action": "export_csv", "_selected_action": [existing.pk]}
    )
    assert export["Content-Type"].startswith("text/csv")
    lines = export.content.decode().splitlines()
    assert lines[0] == "id,name,email,sync_status" and lines[1].startswith(f"{existing.pk},Ada,ada@example.com,")

    upload = (
        "id,name,email\n"
        f"{existing.pk},Ada Lovelace,ada@example.com\n"
        ",Grace,grace@example.com\n"
        ",,not-an-email\n"
        ",Dup,GRACE@example.com\n"
    ).encode()
    page = admin_client_.get("/admin/catalog/customer/").content.decode()
    assert "/admin/catalog/customer/import-csv/" in page
    response = admin_client_.post(
        "/admin/catalog/customer/import-csv/", {"file": SimpleUploadedFile("c.csv", upload, "text/csv")}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "2 of 4 rows saved." in html and "Rows not saved" in html
    assert "not-an-email" not in html or "Enter a valid email address." in html
    existing.refresh_from_db()
    assert existing.name == "Ada Lovelace"
    assert sorted(Customer.objects.values_list("email", flat=True)) == ["ada@example.com", "grace@example.com"]

    bad = admin_client_.post(
        "/admin/catalog/customer/import-csv/", {"file": SimpleUploadedFile("c.csv", b"foo,bar\n1,2\n", "text/csv")}
    )
    assert "The first line must name the columns" in bad.content.decode()
